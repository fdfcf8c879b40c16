"""Importing this module registers the built-in data sets."""

import vaekit.data.arrays  # noqa: F401
import vaekit.data.dsprites  # noqa: F401
import vaekit.data.fsdd  # noqa: F401
import vaekit.data.idxset  # noqa: F401
import vaekit.data.images  # noqa: F401
import vaekit.data.moving_mnist  # noqa: F401
import vaekit.data.oscillator  # noqa: F401
import vaekit.data.shapes3d  # noqa: F401
import vaekit.data.synthetic_speech  # noqa: F401
from vaekit.data import mnist  # noqa: F401
