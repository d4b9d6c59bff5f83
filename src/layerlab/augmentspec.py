"""Augmentation as configuration, torch-free: what ``--augment`` / ``[data.augment]`` /
``fit(augment=...)`` say, parsed and checked (:func:`parse`), and written back in one canonical
form (:func:`canonical`) that a run's config records. :mod:`layerlab.data.augment` applies it.

The text form is a comma list of ``name`` or ``name=value``::

    crop=4,flip,rotate=10,zoom=0.1,erase=0.25,color=0.2      (images)
    noise=0.05,scale=0.1,window=0.9                          (sequences)

- ``crop=P``: pad P pixels of zeros on each side and crop back at a random offset;
- ``flip``: flip left-right with probability 0.5 (``flip=P``: with probability P);
- ``rotate=D``: rotate by up to D degrees either way; ``zoom=F``: scale by up to 1 +/- F;
- ``erase=P``: with probability P, set a random rectangle (2% to 25% of the image) to zero;
- ``color=F``: brightness and contrast by up to 1 +/- F (RGB images only);
- ``noise=S``: add Gaussian noise of standard deviation S to every value (jitter);
- ``scale=F``: multiply each sample's features by up to 1 +/- F;
- ``window=F``: take a random window of F times the length, stretched back to the length.
"""

from __future__ import annotations

from .errors import ConfigError

#: Each name, whether it applies to images or sequences, its default value, and its range.
OPS: dict[str, tuple[str, float | None, float, float]] = {
    "crop": ("image", None, 1, 64),
    "flip": ("image", 0.5, 0.0, 1.0),
    "rotate": ("image", None, 0.0, 180.0),
    "zoom": ("image", None, 0.0, 0.9),
    "erase": ("image", None, 0.0, 1.0),
    "color": ("image", None, 0.0, 1.0),
    "noise": ("sequence", None, 0.0, 10.0),
    "scale": ("sequence", None, 0.0, 0.9),
    "window": ("sequence", None, 0.1, 1.0),
}


def parse(text: str | dict | None, where: str = "--augment") -> dict[str, float]:
    """``text`` (the comma list, or a TOML table ``{name = value}``; ``true`` is the default
    value) as ``{name: value}``; ConfigError naming the first unknown name or value out of range."""
    if text is None:
        return {}
    if isinstance(text, dict):
        items = [(str(k), v) for k, v in text.items()]
    elif isinstance(text, str):
        items = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, _, value = part.partition("=")
            items.append((name.strip(), value.strip() if _ else True))
    else:
        raise ConfigError(f"{where} must be a list such as crop=4,flip or a table, got {text!r}")
    out: dict[str, float] = {}
    for name, value in items:
        if name not in OPS:
            raise ConfigError(f"{where}: unknown augmentation {name!r}; known: {', '.join(OPS)}")
        _, default, lo, hi = OPS[name]
        given: object = value
        if given is True:
            if default is None:
                raise ConfigError(f"{where}: {name} needs a value ({name}=X, from {lo} to {hi})")
            given = default
        if isinstance(given, bool):  # false: off
            continue
        try:
            v = float(given)  # type: ignore[arg-type]  # anything else is refused just below
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}") from None
        if not lo <= v <= hi or v != v:
            raise ConfigError(f"{where}: {name} must be from {lo} to {hi}, got {value!r}")
        if name == "crop" and v != int(v):
            raise ConfigError(f"{where}: crop is a whole number of pixels, got {value!r}")
        out[name] = v
    return out


def canonical(ops: dict[str, float]) -> str | None:
    """``ops`` as the comma list (in :data:`OPS` order), or None for no augmentation."""
    parts = [
        f"{k}={int(v) if k == 'crop' else v:g}" for k, v in sorted(ops.items(), key=lambda kv: list(OPS).index(kv[0]))
    ]
    return ",".join(parts) or None


def check(value, where: str) -> None:
    """A config field's check (:func:`layerlab.config._opt`)."""
    parse(value, where)


def from_table(value, where: str) -> str | None:
    """A ``[data.augment]`` table as the field's text."""
    return canonical(parse(value, where))


def parse_size(text: str, where: str = "--image-size") -> tuple[int, int]:
    """``H,W`` (or ``N`` for N x N) as two whole numbers from 1 to 4096."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and 1 <= int(p) <= 4096 for p in parts):
        raise ConfigError(f"{where} must be H,W (or N), whole numbers from 1 to 4096, got {text!r}")
    return int(parts[0]), int(parts[1])


def check_size(value, where: str) -> None:
    parse_size(value, where)
