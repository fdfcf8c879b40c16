"""The explorers, one module per kind of model. Importing this package registers them in the order the first
match is taken: speech, sequence, conditional, hierarchy, then a single latent; any other model gets ``NoLatent``."""

from vaekit.views.explore.base import ExploreError, Explorer, NoLatent, describe, explorer_for, image_png
from vaekit.views.explore.kinds import conditional, hierarchy, latent, sequence, speech  # noqa: F401 (order: above)

__all__ = ["ExploreError", "Explorer", "NoLatent", "describe", "explorer_for", "image_png"]
