"""Metrics take a representation (a function of x) and data, never a particular model class.

The disentanglement metrics share one signature, ``metric(ground_truth_data, representation_function,
random_state, **settings) -> dict[str, float]``, with disentanglement_lib's defaults (docs/metrics.md).
"""

from collections.abc import Callable

from vaekit.metrics.active_units import active_units
from vaekit.metrics.beta_vae import beta_vae
from vaekit.metrics.dci import dci
from vaekit.metrics.factor_vae import factor_vae
from vaekit.metrics.mig import mig, mig_sup
from vaekit.metrics.sap import sap

# Disentanglement metrics by name, for configs and sweeps.
METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "beta_vae": beta_vae,
    "factor_vae": factor_vae,
    "mig": mig,
    "mig_sup": mig_sup,
    "dci": dci,
    "sap": sap,
}

__all__ = ["METRICS", "active_units", "beta_vae", "dci", "factor_vae", "mig", "mig_sup", "sap"]
