"""Save and load a trained model outside run directories: one safetensors file holding the weights
and, in its metadata (strings, no pickle), how to rebuild and read the model: the builder's name
(a registered model or ``package.module:factory``), its options, the input shape and spec, the
task, the number of outputs and the class names.

:func:`load` rebuilds the model with :func:`layerlab.models.create_model` and loads the weights
into it; nothing in the file is ever executed (a ``package.module:factory`` builder is imported
only when the user has named its module, as for run directories).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch.nn as nn

from .errors import LayerlabError

if TYPE_CHECKING:
    from .api.front import History
    from .rundir import RunDir

#: The metadata key that marks a file as a model saved by layerlab, and its format version.
FORMAT_KEY = "layerlab_model"
FORMAT = "1"


def _source(obj, which: str | None):
    """(model, builder name, options, spec, task, classes, num_outputs) of what ``save`` is given."""
    from .api.front import History
    from .rundir import RunDir

    if isinstance(obj, History):
        return obj.model, obj.model_name, obj.model_options or {}, obj.spec, obj.task, obj.classes, obj.num_outputs
    if isinstance(obj, (str, Path, RunDir)):
        run = obj if isinstance(obj, RunDir) else RunDir(obj)
        info = run.info()
        ds = info["dataset"]
        model = run.model(which, "cpu")
        return (
            model,
            info["model"]["name"],
            info["model"].get("options", {}),
            run.spec,
            ds["task"],
            run.classes,
            ds["num_outputs"],
        )
    if isinstance(obj, nn.Module):
        raise LayerlabError(
            "save() needs to know how to rebuild the model: give it the History that layerlab.fit returned, or "
            "a run directory"
        )
    raise LayerlabError(f"save() takes a History from layerlab.fit or a run directory, got {type(obj).__name__}")


def save(obj: History | RunDir | str | Path, path: str | Path, *, which: str | None = None) -> Path:
    """Write a trained model to one ``.safetensors`` file: its weights, and how to rebuild it and
    read its input (written to a temporary name, then renamed).

    Args:
        obj: the :class:`~layerlab.api.History` that :func:`layerlab.fit` returned, or a run directory.
        path: the file to write (``MODEL.safetensors``).
        which: a run's weights (see :func:`layerlab.load_run`).

    Returns:
        The path written.

    Raises:
        LayerlabError: an ``obj`` that does not say how to rebuild its model, or a path that cannot
            be written.
    """
    from safetensors.torch import save_model

    model, name, options, spec, task, classes, num_outputs = _source(obj, which)
    if name is None or name.startswith("<object"):
        raise LayerlabError(
            f"this model ({type(model).__name__}) was not built by a registered name, so load() could not rebuild "
            f"it; fit a registered name or a package.module:factory (then save), or keep its state_dict yourself"
        )
    if spec is None:
        raise LayerlabError("save() needs how the model reads its input; give it the History that fit returned")
    metadata = {
        FORMAT_KEY: FORMAT,
        "builder": name,
        "options": json.dumps(options),
        "input_spec": json.dumps(spec.to_dict()),
        "task": str(task),
        "num_outputs": str(int(num_outputs)),
        "classes": json.dumps(list(classes) if classes is not None else None),
    }
    from . import __version__

    metadata["layerlab_version"] = __version__
    path = Path(path)
    if path.suffix != ".safetensors":
        raise LayerlabError(f"{path}: a saved model is one .safetensors file; name it MODEL.safetensors")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_model(copy.deepcopy(model).cpu(), str(tmp), metadata)  # the user's model stays where it is
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise LayerlabError(f"cannot write {path} ({e.strerror or e})") from None
    return path


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # a file that is not safetensors, truncated or damaged
        raise LayerlabError(f"{path}: not a safetensors file ({type(e).__name__})") from None
    if meta.get(FORMAT_KEY) != FORMAT:
        raise LayerlabError(f"{path}: not a model saved by layerlab.save (its metadata has no {FORMAT_KEY})")
    try:
        record = {
            "builder": meta["builder"],
            "options": json.loads(meta["options"]),
            "input_spec": json.loads(meta["input_spec"]),
            "task": meta["task"],
            "num_outputs": int(meta["num_outputs"]),
            "classes": json.loads(meta["classes"]),
        }
    except (KeyError, ValueError) as e:
        raise LayerlabError(f"{path}: its layerlab metadata is damaged ({type(e).__name__}: {e})") from None
    if not isinstance(record["options"], dict) or not isinstance(record["input_spec"], dict):
        raise LayerlabError(f"{path}: its layerlab metadata is damaged (options and input_spec must be objects)")
    classes = record["classes"]
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise LayerlabError(f"{path}: its layerlab metadata is damaged (classes must be a list of names)")
    return record


def load(path: str | Path, *, device: str = "cpu") -> History:
    """Read back the model :func:`save` wrote, rebuilt and with its weights.

    Args:
        path: the ``.safetensors`` file.
        device: where the model is put.

    Returns:
        A :class:`~layerlab.api.History` (with an empty history) that :func:`layerlab.predict` and
        :func:`layerlab.evaluate` take: ``.model`` is the ``nn.Module`` (in eval mode), ``.spec``,
        ``.task``, ``.classes`` and ``.num_outputs`` say how it reads input and what it predicts.

    Raises:
        LayerlabError: a missing file, or one that is not a model saved by :func:`save` (its
            metadata is checked; nothing in the file is executed).
    """
    from safetensors.torch import load_model

    from .api.front import History
    from .data.transforms import InputSpec
    from .engine import resolve_device
    from .models import create_model

    path = Path(path)
    if not path.is_file():
        raise LayerlabError(f"{path}: no such file")
    record = _metadata(path)
    spec = InputSpec.from_dict(record["input_spec"])
    options = dict(record["options"])
    if spec.head != "last":
        options["head"] = spec.head
    model = create_model(record["builder"], tuple(spec.shape), record["num_outputs"], **options)
    try:
        load_model(model, str(path), strict=True)
    except (RuntimeError, ValueError) as e:
        raise LayerlabError(
            f"{path}: its weights do not fit the model {record['builder']} rebuilds ({' '.join(str(e).split())[:200]})"
        ) from None
    model = model.to(resolve_device(device)).eval()
    return History(
        {},
        [],
        model,
        None,
        [],
        0,
        spec,
        record["task"],
        record["classes"],
        record["num_outputs"],
        record["builder"],
        record["options"],
    )
