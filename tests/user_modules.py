"""A module of the user's, written for one test: on ``sys.path`` and on the subprocesses'
``PYTHONPATH``, under a name unique to the test (imports do not leak between tests), and forgotten
afterwards by Python and by layerlab's model registry."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from layerlab import models


@contextmanager
def user_module(tmp_path, monkeypatch, prefix: str, source: str, also: tuple[str, ...] = ()) -> Iterator[str]:
    """Write ``source`` as ``<prefix>_<n>.py`` and yield its module name; the registry entries it (or the
    names in ``also``) added are removed after the test."""
    name = f"{prefix}_{abs(hash(str(tmp_path))) % 10**8}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    try:
        yield name
    finally:
        sys.modules.pop(name, None)
        models._TRUSTED.discard(name)
        for key in [k for k in models._REGISTRY if k.startswith(name) or k in also]:
            models._REGISTRY.pop(key)
