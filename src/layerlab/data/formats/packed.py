"""A packed dataset (``layerlab data pack``): see :mod:`layerlab.data.pack`, where it is written and read."""

from __future__ import annotations

from ..pack import load_packed as load_packed
