"""What the explorer computes with a run's model (torch): imported only when a view needs it.

Arrays go to the page as ``{"shape": [...], "b64": ...}``, little-endian float32 in base64 (a
Float32Array in the page), so a layer's maps cost four bytes a value and no JSON parsing.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import LayerlabError
from ..inspect.conv import CONVS, feature_maps
from ..inspect.summary import layer_aliases
from ..models import contract
from ..rundir import RunDir

#: Test samples a page can list and the excitation view reads (the first ones of the test split).
MAX_SAMPLES = 2000
#: Inputs kept per run (the test samples the page asked for and uploaded ones).
KEEP_INPUTS = 32
TOP_K = 5
#: Tasks whose outputs are class scores (one per sample, or one per step).
CLASSES_OUT = ("classification", "sequence-classification")


def pack(a) -> dict:
    """An array for the page: ``{"shape", "b64"}`` (float32, little-endian)."""
    a = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
    return {"shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def _padding(conv: Any) -> tuple[int, ...]:  # a Conv1d, Conv2d or Conv3d
    """A conv's zero padding per spatial axis (torch keeps 'same' and 'valid' as words)."""
    k = conv.kernel_size
    if conv.padding == "valid":
        return tuple(0 for _ in k)
    if conv.padding == "same":
        return tuple((n - 1) // 2 for n in k)
    return tuple(conv.padding)


class RunViews:
    """One run's model and test data, loaded once (a lock: the server answers on several threads)."""

    def __init__(self, path: Path, family: str):
        self.path = path
        self.family = family
        self.run = RunDir(path)
        self._lock = threading.RLock()
        self._model: nn.Module | None = None
        self._ds = None
        self._inputs: OrderedDict[str, tuple[torch.Tensor, int | None]] = OrderedDict()
        self._forward: OrderedDict[str, dict] = OrderedDict()
        self._uploads = 0
        self._cached: dict[tuple, dict] = {}  # answers that depend on the run alone (confusion, excitation)

    # --- what is loaded once
    @property
    def model(self) -> nn.Module:
        with self._lock:
            if self._model is None:
                self._model = self.run.model("auto", device="cpu")
            return self._model

    @property
    def data(self):
        with self._lock:
            if self._ds is None:
                self._ds = self.run.dataset()
            return self._ds

    @property
    def classes(self) -> list[str]:
        return self.run.classes

    def weights(self) -> str:
        return self.run.resolve_weights("auto")

    # --- inputs: a test sample by index, or one the page sent
    def n_test(self) -> int:
        return min(len(self.data.test), MAX_SAMPLES)

    def sample(self, k: int) -> tuple[torch.Tensor, int | None]:
        test = self.data.test
        if not 0 <= k < self.n_test():
            raise LayerlabError(f"no test sample {k} (the page lists 0..{self.n_test() - 1})")
        x = test.x[k]
        if test.lengths is not None:
            x = x[: int(test.lengths[k])]
        y = test.y[k]
        return x, (int(y) if y.dim() == 0 and self.data.task == "classification" else None)

    def samples(self, indices: list[int]) -> list[dict]:
        out = []
        for k in indices:
            x, y = self.sample(k)
            out.append({"index": k, "x": pack(x.float()), "label": y})
        return out

    def get_input(self, key: str) -> tuple[torch.Tensor, int | None]:
        """``test:K`` or an uploaded input's key."""
        if key.startswith("test:"):
            try:
                return self.sample(int(key[5:]))
            except ValueError:
                raise LayerlabError(f"not a test sample: {key[5:]!r}") from None
        with self._lock:
            if key not in self._inputs:
                raise LayerlabError("that input is no longer kept; choose it again")
            self._inputs.move_to_end(key)
            return self._inputs[key]

    def upload(self, body: dict) -> str:
        """An input the page sent: ``{"pixels": [...]}`` (an image's 8-bit values, channels first, at
        the run's image size) or ``{"text": "..."}`` for a character model; returns its key."""
        spec = self.run.spec
        if "pixels" in body:
            if spec.image_shape is None and spec.kind not in ("image",):
                raise LayerlabError("this run does not take images")
            shape = tuple(spec.image_shape or spec.shape)
            try:
                px = np.asarray(body["pixels"], dtype=np.float32)
            except (TypeError, ValueError):
                raise LayerlabError("pixels must be numbers") from None
            if px.size != int(np.prod(shape)) or not np.all(np.isfinite(px)) or px.min() < 0 or px.max() > 255:
                raise LayerlabError(f"pixels must be {int(np.prod(shape))} values in 0..255 for an image of {shape}")
            img = torch.from_numpy(px.reshape(shape)) / 255.0
            x = spec.images(img[None])[0]
        elif "sequence" in body and spec.kind == "sequence" and spec.image_shape is None:
            F = spec.shape[-1]
            try:
                seq = np.asarray(body["sequence"], dtype=np.float32)
            except (TypeError, ValueError):
                raise LayerlabError("a sequence must be rows of numbers") from None
            if seq.ndim == 1 and F == 1:
                seq = seq[:, None]
            if seq.ndim != 2 or seq.shape[1] != F or not 1 <= seq.shape[0] <= 100_000 or not np.all(np.isfinite(seq)):
                raise LayerlabError(f"a sequence must be 1 to 100000 rows of {F} finite numbers (steps by features)")
            x = spec.sequences([seq])[0][0]
        elif "text" in body and spec.kind == "tokens":
            text = body["text"]
            if not isinstance(text, str) or not 1 <= len(text) <= 2000:
                raise LayerlabError("text must be 1 to 2000 characters")
            x = spec.tokens(text)
        else:
            raise LayerlabError("send pixels (an image), a sequence (rows of numbers) or text (a character model)")
        with self._lock:
            self._uploads += 1
            key = f"upload:{self._uploads}"
            self._inputs[key] = (x, None)
            while len(self._inputs) > KEEP_INPUTS:
                self._inputs.popitem(last=False)
        return key

    # --- convolutional views
    def _cnn_forward(self, key: str) -> dict:
        """The maps of every conv/pool layer and each conv's input, for one input (kept)."""
        with self._lock:
            if key in self._forward:
                self._forward.move_to_end(key)
                return self._forward[key]
        x, y = self.get_input(key)
        model = self.model
        aliases = layer_aliases(model)
        conv_inputs: dict[str, torch.Tensor] = {}
        # hooks see every forward pass of the model: one input at a time per run (the server answers
        # on several threads, and a second request's pass would write into this one's maps)
        with self._lock:
            handles = [
                m.register_forward_hook(
                    lambda mod, inp, out, n=n: conv_inputs.__setitem__(n, inp[0].detach()[0].clone())
                )
                for n, m in model.named_modules()
                if isinstance(m, CONVS)
            ]
            try:
                maps = feature_maps(model, x.float())
                with torch.no_grad():
                    logits = model(x[None].float())
            finally:
                for h in handles:
                    h.remove()
        convs = {n: m for n, m in model.named_modules() if isinstance(m, CONVS)}
        alias_to_conv = {aliases.get(n, n): n for n in convs}
        result = {"x": x, "y": y, "maps": maps, "logits": logits[0], "conv_inputs": conv_inputs}
        result["conv_of"] = [alias_to_conv.get(fm.alias) for fm in maps]
        with self._lock:
            self._forward[key] = result
            while len(self._forward) > KEEP_INPUTS:
                self._forward.popitem(last=False)
        return result

    def prediction(self, logits: torch.Tensor, y: int | None) -> dict:
        if self.data.task not in CLASSES_OUT:
            return {"values": [float(v) for v in logits.flatten()[:16]], "label": y}
        p = torch.softmax(logits.float().flatten(), 0)
        top = torch.topk(p, min(TOP_K, p.numel()))
        names = self.classes
        return {
            "top": [
                {"class": names[i], "index": int(i), "p": float(v)}
                for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ],
            "label": y,
            "label_name": names[y] if y is not None else None,
        }

    def cnn(self, key: str) -> dict:
        f = self._cnn_forward(key)
        layers = []
        modules = dict(self.model.named_modules())
        for i, (fm, conv) in enumerate(zip(f["maps"], f["conv_of"], strict=True)):
            layer = {"index": i, "name": fm.alias, "label": fm.label, "conv": conv, "maps": pack(fm.maps)}
            if conv is not None:
                # what the conv read: the input (-1) or a map shown before it (so a page without a
                # server can redo the multiply-add), or None when it read something not shown
                seen = f["conv_inputs"][conv]
                layer["input_from"] = next(
                    (
                        k
                        for k, src in [(-1, f["x"].float()), *((k, m.maps) for k, m in enumerate(f["maps"][:i]))]
                        if src.shape == seen.shape and torch.equal(src.float(), seen.float())
                    ),
                    None,
                )
                layer["stride"] = list(modules[conv].stride)
                layer["padding"] = list(_padding(modules[conv]))
            layers.append(layer)
        return {
            "input": key,
            "x": pack(f["x"].float()),
            "prediction": self.prediction(f["logits"], f["y"]),
            "layers": layers,
            "weights": self.weights(),
        }

    def conv_detail(self, key: str, layer: int, channel: int, pos: list[int]) -> dict:
        """The multiply-add of article eq. 3.1.1 behind one value of a conv layer's map:
        ``y[o, i, j] = sum_{c,m,n} x_pad[c, s*i+m, s*j+n] W[o,c,m,n] + b[o]``, in float64."""
        f = self._cnn_forward(key)
        if not 0 <= layer < len(f["maps"]):
            raise LayerlabError(f"no layer {layer}")
        name = f["conv_of"][layer]
        if name is None:
            raise LayerlabError(f"{f['maps'][layer].alias} is a pooling layer: its values are maxima, not sums")
        conv = dict(self.model.named_modules())[name]
        if conv.groups != 1 or any(d != 1 for d in conv.dilation):
            raise LayerlabError("only plain convolutions (no groups, no dilation) are shown as a multiply-add")
        fm = f["maps"][layer].maps
        if not 0 <= channel < fm.shape[0] or len(pos) != fm.dim() - 1:
            raise LayerlabError(f"{f['maps'][layer].alias} has {fm.shape[0]} channels of shape {tuple(fm.shape[1:])}")
        if any(not 0 <= p < s for p, s in zip(pos, fm.shape[1:], strict=True)):
            raise LayerlabError(f"position {pos} is outside the map of shape {tuple(fm.shape[1:])}")
        x_in = f["conv_inputs"][name].double().numpy()  # (C_in, *S)
        W = conv.weight.detach().double().numpy()[channel]  # (C_in, *k)
        b = float(conv.bias.detach()[channel]) if conv.bias is not None else 0.0
        pad = _padding(conv)
        x_pad = np.pad(x_in, [(0, 0), *[(p, p) for p in pad]])
        start = [s * p for s, p in zip(conv.stride, pos, strict=True)]
        window = x_pad[(slice(None), *[slice(a, a + k) for a, k in zip(start, W.shape[1:], strict=True)])]
        products = window * W
        total = float(products.sum()) + b
        # torch's own conv output at that place (before any activation), to show they agree; under the
        # run's lock: calling the module fires the hooks another request's pass may have registered
        with self._lock, torch.no_grad():
            y = conv(f["conv_inputs"][name][None].float())[0]
        return {
            "layer": layer,
            "name": f["maps"][layer].alias,
            "channel": channel,
            "pos": pos,
            "start": start,
            "padding": list(pad),
            "stride": list(conv.stride),
            "window": window.tolist(),
            "kernel": W.tolist(),
            "products": products.tolist(),
            "bias": b,
            "sum": total,
            "torch": float(y[(channel, *pos)]),
            "shown": float(fm[(channel, *pos)]),
        }

    def filters(self) -> dict:
        model = self.model
        aliases = layer_aliases(model)
        return {
            "layers": [
                {
                    "name": aliases.get(n, n),
                    "module": n,
                    "weight": pack(m.weight.detach().float()),
                    "bias": None if m.bias is None else m.bias.detach().float().tolist(),
                }
                for n, m in model.named_modules()
                if isinstance(m, CONVS)
            ]
        }

    def _once(self, key: tuple, compute) -> dict:
        with self._lock:
            if key not in self._cached:
                self._cached[key] = compute()
            return self._cached[key]

    def excite(self, layer: int, top: int = 6, limit: int = 500) -> dict:
        """For each channel of one conv/pool layer, the test samples (of the first ``limit``) whose
        map has the largest mean (computed once per layer)."""
        return self._once(("excite", layer, top, limit), lambda: self._excite(layer, top, limit))

    def _excite(self, layer: int, top: int, limit: int) -> dict:
        model = self.model
        n = min(self.n_test(), limit)
        test = self.data.test
        target = None
        probe = self._cnn_forward("test:0")
        if not 0 <= layer < len(probe["maps"]):
            raise LayerlabError(f"no layer {layer}")
        wanted = probe["maps"][layer].name
        target = dict(model.named_modules())[wanted]
        got: list[torch.Tensor] = []
        h = target.register_forward_hook(lambda mod, inp, out: got.append(out.detach().flatten(2).mean(-1)))
        try:
            with torch.no_grad():
                for s in range(0, n, 250):
                    model(test.x[s : min(n, s + 250)].float())
        finally:
            h.remove()
        means = torch.cat(got)  # (n, C)
        k = min(top, n)
        idx = torch.topk(means, k, dim=0).indices.T  # (C, k)
        return {"layer": layer, "samples": n, "top": idx.tolist()}

    def confusion(self, per_cell: int = 60) -> dict:
        """The confusion matrix on the test split, each cell's mistakes (computed once)."""
        return self._once(("confusion", per_cell), lambda: self._confusion(per_cell))

    def _confusion(self, per_cell: int) -> dict:
        from ..inspect.evaluation import predict_test

        if self.data.task != "classification":
            raise LayerlabError("a confusion matrix needs a classification run")
        with self._lock:
            pred = predict_test(self.model, self.data)
        y, p = pred.y.long().flatten(), pred.predicted.long().flatten()
        K = len(self.classes)
        cm = np.zeros((K, K), dtype=int)
        cells: dict[str, list[int]] = {}
        for i, (t, q) in enumerate(zip(y.tolist(), p.tolist(), strict=True)):
            cm[t, q] += 1
            if t != q and i < self.n_test():
                lst = cells.setdefault(f"{t},{q}", [])
                if len(lst) < per_cell:
                    lst.append(i)
        return {"classes": self.classes, "matrix": cm.tolist(), "mistakes": cells, "n": len(y)}

    # --- recurrent views
    def rnn(self, key: str) -> dict:
        """Hidden states, gates and cell state (LSTM, GRU), the per-step prediction and the gradient of
        the loss with respect to every ``h_t`` (article eq. 3.2.3), for one input."""
        x, y = self.get_input(key)
        model = self.model
        steps_target = None  # a test sequence with one target per step (a character model's next characters)
        if key.startswith("test:") and self.data.task in CLASSES_OUT:
            t = self.data.test.y[int(key[5:])]
            if t.dim() == 1:
                steps_target = t[: x.shape[0]].long()
        if contract.states_forward(model) is None:
            raise LayerlabError(f"{type(model).__name__} does not expose its hidden states")
        xb = x[None] if contract.reads_tokens(model) else x[None].float()
        with self._lock, torch.enable_grad():
            out, states = cast(Any, model).forward_with_states(xb)  # (a recurrent model's)
            logits = out[0]  # (K,) or (T, K)
            if y is None:  # an uploaded input: the loss of the model's own prediction
                y_use = int(logits.reshape(-1, logits.shape[-1])[-1].argmax())
            else:
                y_use = y
            last = logits if logits.dim() == 1 else logits[-1]
            if self.data.task not in CLASSES_OUT:
                loss = None
            elif steps_target is not None and logits.dim() == 2:  # the training loss: the mean over steps
                loss = F.cross_entropy(logits, steps_target)
            else:
                loss = F.cross_entropy(last[None], torch.tensor([y_use]))
            flat = [h for layer in states for h in layer]
            grads = (
                torch.autograd.grad(loss, flat, allow_unused=True)
                if loss is not None
                else [torch.zeros_like(h) for h in flat]
            )
        layers = []
        g_iter = iter(grads)
        for layer in states:
            hs = torch.stack([h.detach()[0] for h in layer])  # (T, H)
            gs = torch.stack(
                [
                    (g if g is not None else torch.zeros_like(h))[0]
                    for g, h in zip([next(g_iter) for _ in layer], layer, strict=True)
                ]
            )
            layers.append({"hidden": pack(hs.T), "grad": pack(gs.T), "grad_norm": gs.double().norm(dim=1).tolist()})
        gates = self._gates(model, xb)
        with torch.no_grad():
            seq = torch.stack([h.detach()[0] for h in states[-1]])  # (T, H) last layer
            if logits.dim() == 2:
                step = logits.detach()
            elif not contract.bidirectional(model):
                step = cast(Any, model).out(seq)
            else:
                step = None
        per_step = None
        if step is not None and self.data.task in CLASSES_OUT:
            p = torch.softmax(step.float(), -1)
            per_step = {"p": pack(p.T), "predicted": p.argmax(-1).tolist()}
        return {
            "input": key,
            "x": pack(x.float()) if x.is_floating_point() else {"tokens": x.tolist()},
            "cell": model.cell,
            "prediction": self.prediction(last.detach(), y),
            "target": y_use,
            "steps_target": None if steps_target is None else steps_target.tolist(),
            "loss": None if loss is None else float(loss.detach()),
            "layers": layers,
            "gates": gates,
            "per_step": per_step,
            "classes": self.classes,
            "weights": self.weights(),
        }

    @staticmethod
    def _gates(model, xb) -> list[dict]:
        """The gates of each layer (forward direction), recomputed from the layer's weights and its
        states: LSTM i, f, g, o and the cell state c; GRU r, z, n."""
        if model.cell not in ("lstm", "gru"):
            return []
        stack = model.rnn
        out = []
        with torch.no_grad():
            inp = model.as_sequence(xb).float()
            for k in range(stack.num_layers):
                W, U, b, b_U = stack.weights(k, 0)
                U = stack.cell_impl.recurrent_matrix(U)
                xw = F.linear(inp, W, b)[0]  # (T, G*H)
                H = U.shape[1]
                h = xw.new_zeros(H)
                c = xw.new_zeros(H)
                rows: dict[str, list[torch.Tensor]] = {}
                hs = []
                for t in range(xw.shape[0]):
                    u = U @ h + (b_U if b_U is not None else 0)
                    if model.cell == "lstm":
                        a_i, a_f, a_g, a_o = (xw[t] + u).chunk(4)
                        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
                        c = f * c + i * g
                        h = o * torch.tanh(c)
                        vals = {
                            "input gate i": i,
                            "forget gate f": f,
                            "candidate g": g,
                            "output gate o": o,
                            "cell c": c,
                        }
                    else:
                        x_r, x_z, x_n = xw[t].chunk(3)
                        u_r, u_z, u_n = u.chunk(3)
                        r, z = torch.sigmoid(x_r + u_r), torch.sigmoid(x_z + u_z)
                        n = torch.tanh(x_n + r * u_n)
                        h = (1 - z) * n + z * h
                        vals = {"reset gate r": r, "update gate z": z, "candidate n": n}
                    for name, v in vals.items():
                        rows.setdefault(name, []).append(v)
                    hs.append(h)
                out.append({"layer": k + 1, "gates": {n: pack(torch.stack(v).T) for n, v in rows.items()}})
                if stack.directions != 1:
                    break
                inp = torch.stack(hs)[None]
        return out

    def rnn_many(self, count: int = 24) -> dict:
        """The last layer's hidden states of the first ``count`` test sequences (LSTMVis's selection
        runs on these in the page)."""
        model = self.model
        n = min(self.n_test(), count)
        seqs = []
        with torch.no_grad():
            for k in range(n):
                x, y = self.sample(k)
                xb = x[None] if contract.reads_tokens(model) else x[None].float()
                _, states = cast(Any, model).forward_with_states(xb)
                seqs.append({"index": k, "label": y, "hidden": pack(torch.stack([h[0] for h in states[-1]]).T)})
        return {"sequences": seqs}
