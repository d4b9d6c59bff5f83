"""A model summary: each layer's output shape, parameters, FLOPs and the elements it passes on.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, torch's own counter, which
counts a multiply-add as 2 FLOPs for convolutions and matrix products and counts nothing for
element-wise work (bias, ReLU, max pooling). For the article's CNN on 28x28x1::

    conv1  26*26*32 outputs * 3*3*1  MACs * 2 =   389,376
    conv2  11*11*64 outputs * 3*3*32 MACs * 2 = 4,460,544
    dense  1600 * 10 MACs * 2                 =    32,000     total 4,881,920 FLOPs per image

The ``elements`` column is what a layer hands to the next one per sample: it shows the article's
claim (section 2) that pooling shrinks what follows, and :attr:`ModelSummary.without_pools` says
how many parameters the first Dense layer would need if the pools were taken out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..errors import DataError
from ..models import contract

POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softmax)


def _alias_kind(m: nn.Module) -> str:
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "conv"
    if isinstance(m, POOLS):
        return "pool"
    if isinstance(m, nn.Linear):
        return "dense"
    if isinstance(m, nn.RNNBase) or "recurrent" in type(m).__name__.lower():
        return "rnn"
    if isinstance(m, ACTIVATIONS):
        return type(m).__name__.lower()
    return type(m).__name__.lower()


def layer_aliases(model: nn.Module) -> dict[str, str]:
    """Short names by kind and order (``conv1``, ``pool1``, ``conv2``, ``dense1``) for the leaf
    modules and modules holding parameters, keyed by their full module name."""
    counts: dict[str, int] = {}
    out = {}
    for name, m in _layers(model):
        k = _alias_kind(m)
        counts[k] = counts.get(k, 0) + 1
        out[name] = f"{k}{counts[k]}"
    return out


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules, plus modules with parameters of their own (a custom cell), in definition order."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if n and (not any(True for _ in m.children()) or any(True for _ in m.parameters(recurse=False)))
    ]


@dataclass
class LayerRow:
    name: str  # module name (features.0)
    alias: str  # conv1
    kind: str  # Conv2d
    output_shape: tuple  # per sample, e.g. (32, 26, 26); () when the layer did not run
    parameters: int
    flops: int  # per sample, for every call (a cell called T times counts T times)
    elements: int  # numel of the output per sample
    calls: int = 1


@dataclass
class ModelSummary:
    model: str
    input_shape: tuple
    rows: list[LayerRow] = field(default_factory=list)
    total_parameters: int = 0
    total_flops: int = 0
    frozen_parameters: int = 0
    without_pools: dict | None = None

    @property
    def input_elements(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= int(s)
        return n

    def csv_rows(self) -> list[dict]:
        return [
            {
                "layer": r.name,
                "alias": r.alias,
                "type": r.kind,
                "output_shape": "x".join(map(str, r.output_shape)),
                "elements": r.elements,
                "parameters": r.parameters,
                "flops": r.flops,
                "calls": r.calls,
            }
            for r in self.rows
        ]

    def pooling_line(self) -> str:
        w = self.without_pools
        if not w:
            return ""
        return (
            f"Pooling: the Dense layer {w['layer']} takes {w['inputs_with_pools']:,} inputs "
            f"({w['parameters_with_pools']:,} parameters); without the {w['pools']} pooling layer(s) it "
            f"would take {w['inputs_without_pools']:,} inputs and need {w['parameters_without_pools']:,} "
            f"parameters ({w['parameters_without_pools'] / max(w['parameters_with_pools'], 1):.1f}x as many; "
            f"{w['total_parameters_without_pools']:,} in the whole model instead of {self.total_parameters:,})."
        )

    def to_text(self) -> str:
        head = f"{'layer':<22} {'type':<20} {'output shape':<16} {'elements':>10} {'parameters':>11} {'FLOPs':>13}"
        lines = [
            f"{self.model}: input {tuple(self.input_shape)} ({self.input_elements:,} elements)",
            head,
            "-" * len(head),
        ]
        for r in self.rows:
            shape = "x".join(map(str, r.output_shape)) + (f" (x{r.calls})" if r.calls > 1 else "")
            lines.append(
                f"{r.alias + ' ' + r.name:<22.22} {r.kind:<20.20} {shape:<16} {r.elements:>10,} "
                f"{r.parameters:>11,} {r.flops:>13,}"
            )
        lines.append("-" * len(head))
        lines.append(f"{'total':<22} {'':<20} {'':<16} {'':>10} {self.total_parameters:>11,} {self.total_flops:>13,}")
        if self.frozen_parameters:
            lines.append(
                f"(parameters are trainable ones; {self.frozen_parameters:,} more are frozen, "
                f"e.g. torch's second recurrent bias held at zero)"
            )
        if self.without_pools:
            lines.append(self.pooling_line())
        return "\n".join(lines)


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def _example_input(model: nn.Module, input_shape: tuple) -> torch.Tensor:
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    if contract.reads_tokens(model):  # a model that reads token ids (text, copy task)
        return torch.zeros(1, *input_shape, device=device, dtype=torch.int64)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(1, *input_shape, device=device, dtype=dtype)


def summarize(model: nn.Module, input_shape: tuple, name: str | None = None) -> ModelSummary:
    """Run one sample of ``input_shape`` through ``model`` and describe every layer."""
    from torch.utils.flop_counter import FlopCounterMode

    input_shape = tuple(int(s) for s in input_shape)
    layers = _layers(model)
    aliases = layer_aliases(model)
    shapes: dict[str, tuple] = {}
    calls: dict[str, int] = {}

    def hook(mod_name):
        def fn(mod, inp, out):
            t = _first_tensor(out)
            calls[mod_name] = calls.get(mod_name, 0) + 1
            if t is not None and mod_name not in shapes:
                shapes[mod_name] = tuple(t.shape[1:])

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    x = _example_input(model, input_shape)
    try:
        with torch.no_grad():
            model(x)  # output shapes through the hooks
        for h in handles:
            h.remove()
        # torch's fused RNN kernels are opaque to the counter; the explicit step loop of a recurrent
        # model (same weights, same function) shows its matrix products
        loop = contract.states_forward(model)
        if loop is not None:
            model.forward = loop  # through __call__, so modules are tracked
        with torch.no_grad(), counter:
            model(x)
    except (RuntimeError, ValueError, DataError) as e:
        raise DataError(
            f"{name or type(model).__name__} does not take samples of shape {input_shape} ({str(e).splitlines()[0]})"
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.__dict__.pop("forward", None)
        model.train(was_training)
    counts = {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    summary = ModelSummary(model=name or root, input_shape=input_shape)
    for n, m in layers:
        shape = shapes.get(n, ())
        elements = 1
        for d in shape:
            elements *= int(d)
        summary.rows.append(
            LayerRow(
                name=n,
                alias=aliases[n],
                kind=type(m).__name__,
                output_shape=shape,
                parameters=_trainable(m.parameters(recurse=False)),
                flops=counts.get(f"{root}.{n}", 0),
                elements=elements if shape else 0,
                calls=calls.get(n, 0),
            )
        )
    summary.total_flops = int(counter.get_total_flops())
    leftover = summary.total_flops - sum(r.flops for r in summary.rows)
    if leftover > 0:
        # work the counter saw outside any listed layer: a recurrent step loop run by the model
        # itself with the weights of its recurrent layer; give it to that layer when it is the only
        # one with weights and no counted work, else list it on its own
        idle = [r for r in summary.rows if r.parameters and not r.flops]
        if len(idle) == 1:
            idle[0].flops = leftover
            idle[0].kind += " (step loop)"
        else:
            summary.rows.append(
                LayerRow(
                    name="(other)",
                    alias="other",
                    kind="ops outside layers",
                    output_shape=(),
                    parameters=0,
                    flops=leftover,
                    elements=0,
                    calls=0,
                )
            )
    summary.total_parameters = _trainable(model.parameters())
    summary.frozen_parameters = sum(p.numel() for p in model.parameters()) - summary.total_parameters
    summary.without_pools = _without_pools(model, input_shape, summary.total_parameters)
    return summary


def _trainable(params) -> int:
    """Trainable parameters, as ``layerlab.api.count_parameters`` counts them (a bias frozen at zero,
    like torch's second LSTM bias that Keras does not have, is not a parameter of the model)."""
    return sum(p.numel() for p in params if p.requires_grad)


class _Stop(Exception):
    pass


def _without_pools(model: nn.Module, input_shape: tuple, total: int) -> dict | None:
    """How many inputs and parameters the first Dense layer after the pools would need without them."""
    pools = [n for n, m in model.named_modules() if isinstance(m, POOLS)]
    if not pools:
        return None
    order = [n for n, _ in model.named_modules()]
    dense = [
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and order.index(n) > order.index(pools[-1])
    ]
    if not dense:
        return None
    dname, dmod = dense[0]
    clone = copy.deepcopy(model)
    for pname in pools:
        parent_name, _, child = pname.rpartition(".")
        parent = clone.get_submodule(parent_name) if parent_name else clone
        ident = nn.Identity()
        # a hook marks the layers as watched: a model that reorders its layers for speed when
        # nobody looks (ConvNet runs pool before ReLU) then runs them literally, identities included
        ident.register_forward_hook(lambda mod, inp, out: None)
        setattr(parent, child, ident)
    seen = {}

    def pre(mod, args):
        seen["in"] = int(args[0].shape[-1])
        raise _Stop

    clone.get_submodule(dname).register_forward_pre_hook(pre)
    clone.eval()
    try:
        with torch.no_grad():
            clone(_example_input(clone, input_shape))
    except _Stop:
        pass
    except RuntimeError:
        return None
    if "in" not in seen:
        return None
    bias = dmod.out_features if dmod.bias is not None else 0
    with_p = dmod.in_features * dmod.out_features + bias
    without_p = seen["in"] * dmod.out_features + bias
    return {
        "layer": dname,
        "pools": len(pools),
        "inputs_with_pools": dmod.in_features,
        "parameters_with_pools": with_p,
        "inputs_without_pools": seen["in"],
        "parameters_without_pools": without_p,
        "total_parameters_without_pools": total - with_p + without_p,
    }
