"""A model factory's own keyword options (``--model-arg KEY=VALUE``, ``fit("pkg.mod:factory", width=8)``),
kept in a run's config as one text, ``width=8,act="relu"``, so every command after ``train`` rebuilds the
model with them. Torch-free: the config and the command line's parser use it.

A value is read as JSON (``8``, ``0.5``, ``true``, ``"text"``, ``[16, 32]``, ``{"k": 1}``, ``null``), or as
Python's ``True``/``False``; anything else is the text as typed (``act=relu``). The config keeps each value
JSON-encoded, so a text that looks like a number stays a text (``tag="8"``).
"""

from __future__ import annotations

import json
import math

from .errors import ConfigError

_PYTHON_BOOLS = {"True": True, "False": False}


def parse_value(text: str):
    """One ``--model-arg`` value: a JSON literal, Python's ``True``/``False``, or else the text itself."""
    text = text.strip()
    if text in _PYTHON_BOOLS:
        return _PYTHON_BOOLS[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def split_pairs(text: str) -> list[str]:
    """``text`` split at the commas outside JSON strings (with their backslash escapes), brackets and braces."""
    items: list[str] = []
    cur: list[str] = []
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur).strip())
    return items


def parse_model_args(text: str | None, where: str = "--model-arg") -> dict:
    """``KEY=VALUE[,KEY=VALUE]`` as a dict of the factory's keyword options; one sentence for a pair
    that is not ``KEY=VALUE`` or a key given twice."""
    if not text:
        return {}
    out: dict = {}
    for item in split_pairs(text):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier() or not value.strip():
            raise ConfigError(f"{where} takes KEY=VALUE (width=8, act=relu, sizes=[16,32]), got {item!r}")
        if key in out:
            raise ConfigError(f"{where} {key} is given twice")
        out[key] = parse_value(value)
    return out


def check_model_args(text: str, where: str) -> None:
    parse_model_args(text, where)


def _json(key: str, value, where: str) -> str:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where} {key}: a {type(value).__name__} cannot be kept in the run's config; give a number, a bool, "
            f"a text, or a list or dict of them"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - allow_nan refuses it
        raise ConfigError(f"{where} {key} must be finite")
    return text


def format_model_args(args: dict | str | None, where: str = "model option") -> str | None:
    """A dict of factory options as the ``KEY=VALUE,...`` text a config keeps (a text as it is)."""
    if args is None or isinstance(args, str):
        return args or None
    if not isinstance(args, dict):
        raise ConfigError(f"{where}s must be a dict of KEY: VALUE, got {type(args).__name__}")
    for key in args:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"{where} {key!r} is not a keyword name")
    return ",".join(f"{k}={_json(k, v, where)}" for k, v in args.items()) or None


def model_args_table(value: dict, where: str) -> str | None:
    """A ``[model.args]`` TOML table (``width = 8``) as the config's text."""
    return format_model_args(value, where)
