"""The TOML presets that ship with layerlab (``article_cnn``, ``article_lstm``, ``adding``, ...), so
``layerlab train --config article_cnn`` works wherever layerlab is installed, not only in a checkout.

Each preset is a ``NAME.toml`` file in this package whose first comment line says what it trains;
:func:`list_presets` shows those lines and :func:`resolve` turns what ``--config`` was given into a file.

A path that exists wins over a preset of the same name: ``--config article_cnn.toml`` in a folder
holding an edited copy of that file reads the copy, as any command reads the file it is pointed at.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger(__name__)

SUFFIX = ".toml"


def _preset_files() -> dict[str, Path]:
    """Preset name to its file, read from the installed package (a wheel, an editable checkout)."""
    # pip installs wheels unpacked, so the package's resources are plain files with a filesystem path
    root = files(__name__)
    return {
        entry.name.removesuffix(SUFFIX): Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(SUFFIX) and entry.is_file()
    }


def list_presets() -> dict[str, str]:
    """Preset name to its one-line description (the first comment line of its file), sorted by name."""
    out = {}
    for name, path in _preset_files().items():
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "")
        out[name] = first.lstrip("#").strip() if first.lstrip().startswith("#") else ""
    return out


def resolve(name_or_path: str | Path) -> Path:
    """The config file ``--config`` means: ``name_or_path`` itself when it exists (or names a folder,
    so the reader says what is wrong with it), else the packaged preset of that name, with or without
    ``.toml``. Anything else is a :class:`ConfigError` that lists the presets."""
    given = str(name_or_path)
    path = Path(given).expanduser()
    presets = _preset_files()
    name = given.removesuffix(SUFFIX)
    if path.exists():
        if name in presets:
            log.info("--config %s: the file %s is used, not the packaged preset %s", given, path.resolve(), name)
        return path
    if name in presets:
        return presets[name]
    looks_like_path = "/" in given or "\\" in given or given.startswith("~")
    where = f"{given}: no such config file" if looks_like_path else f"{given!r} is neither a config file nor a preset"
    raise ConfigError(f"{where}; the packaged presets are {', '.join(presets)} (`layerlab presets` describes them)")
