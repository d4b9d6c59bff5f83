"""The training functions under their older home: everything here is :mod:`layerlab.training`
(the loop, schedules, metrics, CUDA graphs and runtime set-up, one module each), re-exported so
that ``from layerlab.engine import fit`` and ``engine.fit(...)`` keep working."""

from .training import *  # noqa: F403
from .training import __all__  # noqa: F401
