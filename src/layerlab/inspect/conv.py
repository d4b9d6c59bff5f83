"""Convolutional views: the learned filters of a conv layer and the feature maps of every
conv/pool layer for one input (article section 2: each kernel learns to recognise a pattern;
pooling shrinks the maps), for 1-D, 2-D and 3-D convolutions alike: a sequence ``(T, F)`` or
``(C, L)``, an image ``(C, H, W)``, a volume ``(C, D, H, W)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn as nn

from ..errors import ConfigError, DataError
from .summary import ACTIVATIONS, POOLS, layer_aliases

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def conv_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The convolutions (1-D, 2-D and 3-D) of ``model`` by module name, in definition order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, CONVS)}


def find_layer(model: nn.Module, layer: str | None, kinds=CONVS, what: str = "conv") -> tuple[str, nn.Module]:
    """A layer by module name (``features.0``) or short name (``conv1``); None: the first of ``kinds``."""
    aliases = layer_aliases(model)
    mods = dict(model.named_modules())
    found = [(n, m) for n, m in mods.items() if n and isinstance(m, kinds)]
    if not found:
        raise ConfigError(f"{type(model).__name__} has no {what} layer (it is not a convolutional model)")
    if layer is None:
        return found[0]
    by_alias = {a: n for n, a in aliases.items()}
    name = by_alias.get(layer, layer)
    if name in mods and isinstance(mods[name], kinds):
        return name, mods[name]
    known = ", ".join(f"{aliases.get(n, n)} ({n})" for n, _ in found)
    raise ConfigError(f"no {what} layer named {layer!r} in {type(model).__name__}; its {what} layers are {known}")


def filters(model: nn.Module, layer: str | None = None) -> tuple[str, str, torch.Tensor]:
    """``(name, alias, weight)`` of a conv layer; weight ``(C_out, C_in, *kernel)`` on the CPU:
    ``(C_out, C_in, k)`` for a Conv1d, ``(C_out, C_in, kH, kW)`` for a Conv2d, ``(C_out, C_in, kD,
    kH, kW)`` for a Conv3d."""
    name, mod = find_layer(model, layer)
    weight = cast(torch.Tensor, mod.weight)
    return name, layer_aliases(model).get(name, name), weight.detach().float().cpu().clone()


@dataclass
class FeatureMap:
    name: str  # module whose output this is (features.1 for conv1 + ReLU)
    alias: str  # conv1, pool1
    label: str  # "conv1 (Conv2d + ReLU)"
    maps: torch.Tensor  # (C, L), (C, H, W) or (C, D, H, W) for the one input


def feature_maps(model: nn.Module, x: torch.Tensor) -> list[FeatureMap]:
    """Outputs of every conv and pool layer for one input ``x``, in the order they run.

    ``x`` is one sample as the model takes it: ``(C, H, W)`` for a 2-D CNN, ``(C, D, H, W)`` for a
    3-D one, and for a 1-D one ``(C, L)``, or ``(T, F)`` for layerlab's sequence CNN (which reads
    the F features as channels over the T steps). Each map is ``(C, *S)``, channels first: a
    Conv1d's ``(C, L)`` whatever the input's layout.

    A conv followed directly by an activation module (Keras's ``Conv2D(..., activation='relu')``)
    is shown after the activation, as Keras's layer output would be.
    """
    if x.dim() not in (2, 3, 4):
        raise DataError(
            f"feature maps need one sample: (steps, features) or (channels, length), (channels, height, "
            f"width) or (channels, depth, height, width); got shape {tuple(x.shape)}"
        )
    aliases = layer_aliases(model)
    record: list[tuple[str, nn.Module, torch.Tensor]] = []

    def hook(name):
        def fn(mod, inp, out):
            if isinstance(out, torch.Tensor):
                # clone: an in-place ReLU would otherwise overwrite the conv output we keep
                record.append((name, mod, out.detach()[0].float().cpu().clone()))

        return fn

    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves if isinstance(m, CONVS + POOLS + ACTIVATIONS)]
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x[None].to(p.device, p.dtype))
    except RuntimeError as e:
        what = "an image" if x.dim() == 3 else "a sample"
        raise DataError(
            f"the model does not take {what} of shape {tuple(x.shape)} ({str(e).splitlines()[0]})"
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out: list[FeatureMap] = []
    for i, (name, mod, t) in enumerate(record):
        if isinstance(mod, CONVS):
            nxt = record[i + 1] if i + 1 < len(record) else None
            if nxt is not None and isinstance(nxt[1], ACTIVATIONS) and nxt[2].shape == t.shape:
                out.append(
                    FeatureMap(
                        nxt[0],
                        aliases.get(name, name),
                        f"{aliases.get(name, name)} ({type(mod).__name__} + {type(nxt[1]).__name__})",
                        nxt[2],
                    )
                )
            else:
                out.append(
                    FeatureMap(name, aliases.get(name, name), f"{aliases.get(name, name)} ({type(mod).__name__})", t)
                )
        elif isinstance(mod, POOLS):
            out.append(
                FeatureMap(name, aliases.get(name, name), f"{aliases.get(name, name)} ({type(mod).__name__})", t)
            )
    if not out:
        raise ConfigError(f"{type(model).__name__} has no conv or pool layers to show feature maps of")
    return out
