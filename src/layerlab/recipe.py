"""The open training recipe, as text a config holds (torch-free, so the command line checks it
before anything loads): an optimizer's options (``--optimizer-arg KEY=VALUE``), class weights
(``--class-weight balanced|FILE|W0,W1,...``) and metrics by name (``--metrics f1_macro,auroc``).

Values are TOML values (``nesterov=true``, ``betas=[0.9, 0.95]``, ``alpha=0.9``), so one syntax reads
them in a preset, on the command line and in ``config.toml``; Python's ``fit`` takes a dict, a list
or a sequence of names instead and writes them in this form (:func:`format_args`,
:func:`format_class_weight`, :func:`format_metrics`).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

from .errors import ConfigError

#: Losses by name (None: the task's own: cross-entropy, binary cross-entropy for multi-label, MSE).
LOSSES = ("cross-entropy", "bce", "mse", "huber")
#: Metrics by name, besides ``top{K}_accuracy`` (``top5_accuracy``).
METRICS = (
    "precision_macro",
    "precision_weighted",
    "recall_macro",
    "recall_weighted",
    "f1_macro",
    "f1_weighted",
    "auroc",
)
_TOP_K = re.compile(r"top([1-9][0-9]*)_accuracy")


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes (``betas=[0.9, 0.95],amsgrad=true``)."""
    items: list[str] = []
    cur: list[str] = []
    depth, quote = 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur))
    return [s.strip() for s in items]


def parse_args(text: str | None, where: str = "--optimizer-arg") -> dict:
    """``KEY=VALUE[,KEY=VALUE]`` (TOML values) as a dict; one sentence for what is wrong."""
    if not text:
        return {}
    out: dict = {}
    for item in _split_top(text):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier() or not value.strip():
            raise ConfigError(f"{where} takes KEY=VALUE pairs separated by commas (nesterov=true), got {item!r}")
        try:
            out[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(
                f"{where} {key}: {value.strip()!r} is not a value (a number, true/false, a quoted string or a [list])"
            ) from None
        if isinstance(out[key], dict):
            raise ConfigError(f"{where} {key}: a table is not an option value")
    return out


def check_args(text: str, where: str) -> None:
    parse_args(text, where)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"option value {v!r} must be finite")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"an option value must be a number, a bool, a string or a list of them, got {type(v).__name__}")


def format_args(args: dict | str | None) -> str | None:
    """A dict of optimizer options as the ``KEY=VALUE,...`` text a config keeps (a string as it is)."""
    if args is None or isinstance(args, str):
        return args
    if not isinstance(args, dict):
        raise ConfigError(f"optimizer_args must be a dict of options, got {type(args).__name__}")
    return ",".join(f"{k}={_toml_value(v)}" for k, v in args.items()) or None


# ----------------------------------------------------------------------------------------------
# Class weights
# ----------------------------------------------------------------------------------------------
def _weights_list(values, where: str) -> list[float]:
    try:
        ws = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: class weights must be numbers") from None
    if not ws or not all(math.isfinite(w) and w >= 0 for w in ws):
        raise ConfigError(f"{where}: class weights must be finite numbers of at least 0, got {values!r}")
    if not any(w > 0 for w in ws):
        raise ConfigError(f"{where}: at least one class weight must be above 0")
    return ws


def check_class_weight(text: str, where: str) -> None:
    """``balanced``, a weight per class by commas, or a file (checked when the data is known)."""
    if text == "balanced" or ("," not in text and not _is_number(text)):
        return
    _weights_list(text.split(","), where)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_class_weight(value) -> str | None:
    """``fit``'s ``class_weight`` (``"balanced"``, a path, a list of weights or a dict class -> weight)
    as the text a config keeps; a dict keeps its keys for :func:`resolve_class_weight`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return "json:" + json.dumps({str(k): float(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ",".join(repr(float(v)) for v in _weights_list(value, "class_weight"))
    raise ConfigError(f"class_weight must be 'balanced', a file, a list or a dict, got {type(value).__name__}")


def resolve_class_weight(text: str, classes: list[str], counts: list[int], where: str = "--class-weight") -> str:
    """The weights ``text`` names, one per class in class order, as ``W0,W1,...`` (what a run's
    config keeps, so a resumed run trains with the same numbers). ``balanced`` is Keras's and
    scikit-learn's ``n / (K * count_k)`` over the training labels; a file holds a JSON object (class
    name or id -> weight, others 1) or list (one weight per class)."""
    k = len(classes)
    if text == "balanced":
        n = sum(counts)
        return ",".join(repr(n / (k * c)) if c else "0.0" for c in counts)
    if text.startswith("json:"):
        spec = json.loads(text[5:])
    elif "," in text or _is_number(text):
        spec = _weights_list(text.split(","), where)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"{where} {text}: no such file (give balanced, a file or one weight per class)")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"{where} {text}: not a JSON object or list of weights ({type(e).__name__})") from None
    if isinstance(spec, dict):
        ws = [1.0] * k
        for key, w in spec.items():
            if str(key) in classes:
                i = classes.index(str(key))
            elif str(key).isdigit() and int(key) < k:
                i = int(key)
            else:
                raise ConfigError(f"{where}: {key!r} is not a class of the data (classes {', '.join(classes[:8])})")
            ws[i] = w
        spec = ws
    ws = _weights_list(spec, where)
    if len(ws) != k:
        raise ConfigError(f"{where}: {len(ws)} weights for {k} classes; give one per class")
    return ",".join(repr(w) for w in ws)


# ----------------------------------------------------------------------------------------------
# Metrics by name
# ----------------------------------------------------------------------------------------------
def metric_names(text: str | None, where: str = "--metrics") -> list[str]:
    """The metric names of a comma list, each checked (``top5_accuracy``, ``f1_macro``, ``auroc``)."""
    if not text:
        return []
    names = [s.strip() for s in text.split(",")]
    for name in names:
        if name not in METRICS and not _TOP_K.fullmatch(name):
            raise ConfigError(
                f"{where}: unknown metric {name!r}; known: top{{K}}_accuracy (top5_accuracy), {', '.join(METRICS)}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"{where} names a metric twice: {text!r}")
    return names


def check_metrics(text: str, where: str) -> None:
    metric_names(text, where)


def format_metrics(value) -> str | None:
    """``fit``'s ``metrics`` (a list of names, or a comma list) as the text a config keeps."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value) or None
    raise ConfigError(f"metrics must be a list of metric names, got {value!r}")


def top_k(name: str) -> int | None:
    """``K`` of ``top{K}_accuracy``, else None."""
    m = _TOP_K.fullmatch(name)
    return int(m.group(1)) if m else None
