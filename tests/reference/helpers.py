"""One helper compares a reference layer with PyTorch and with finite differences (tinygrad's
``helper_test_op`` style), so that each reference test is a few lines.

The comparison runs through a scalar ``L = sum_k <out_k, dout_k>`` with a fixed random ``dout``: its
gradient with respect to any input is exactly what ``ref_backward(dout, cache)`` must return, autograd
computes it for torch, and central differences estimate it from ``ref_forward`` alone.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

TORCH_TOL = 1e-10  # reference vs torch, outputs and gradients, float64
FD_TOL = 1e-6  # relative error of the analytic gradient against central differences
FD_EPS = 1e-6
FD_MAX_ENTRIES = 24  # per array, entry by entry; larger arrays are sampled...
FD_DIRECTIONS = 4  # ...and every array is also checked along random directions through all entries


def rand(*shape, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A float64 standard-normal array; a distinct ``seed`` per argument keeps tests independent."""
    return scale * np.random.default_rng(seed).standard_normal(shape)


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _like(structure, arrays):
    return arrays if isinstance(structure, tuple) else arrays[0]


def _differentiable(values: dict, no_grad) -> list[str]:
    return [k for k, v in values.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f" and k not in no_grad]


def _assert_close(name: str, ref: np.ndarray, other: np.ndarray, tol: float, what: str) -> None:
    ref, other = np.asarray(ref, dtype=np.float64), np.asarray(other, dtype=np.float64)
    assert ref.shape == other.shape, f"{name}: reference shape {ref.shape}, {what} shape {other.shape}"
    # Absolute for values of order one, relative for large ones (a 50-step sum can reach 100s).
    err = float(np.max(np.abs(ref - other), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(other), initial=0.0)))
    assert err <= tol * scale, f"{name}: reference and {what} differ by {err:.3e} (scale {scale:.3g})"


def check_against_torch(
    ref_forward,
    ref_backward,
    torch_fn,
    inputs: dict,
    params: dict | None = None,
    *,
    no_grad=(),
    fd: bool = True,
    seed: int = 1234,
) -> dict:
    """Check a reference layer's forward and backward against torch (1e-10) and finite differences (1e-6).

    Args:
        ref_forward: ``ref_forward(*inputs.values(), *params.values()) -> (out, cache)``: positional,
            in order, so that reference and torch signatures need not share argument names;
            ``out`` is an array, a float or a tuple of arrays.
        ref_backward: ``ref_backward(dout, cache) -> grads``, ``dout`` shaped like ``out``; ``grads``
            must hold a gradient for every float array in ``inputs`` and ``params`` not in ``no_grad``.
        torch_fn: called like ``ref_forward`` with float64 tensors, returning a tensor or a tuple of
            tensors shaped like ``out``.
        inputs, params: named arrays (data, then weights; the split is only for reading). The names
            are the keys ``ref_backward`` must use in ``grads``.
        no_grad: names that are not differentiated (integer labels, fixed masks).
        fd: also check every gradient against central differences.
    Returns:
        The reference gradients, for extra assertions.
    """
    values = {**inputs, **(params or {})}
    wrt = _differentiable(values, no_grad)
    rng = np.random.default_rng(seed)

    out, cache = ref_forward(*values.values())
    outs = tuple(np.asarray(o, dtype=np.float64) for o in _as_tuple(out))
    douts = tuple(rng.standard_normal(o.shape) for o in outs)
    # A scalar output (a loss) takes a float upstream gradient, as its backward expects.
    grads = ref_backward(_like(out, tuple(float(d) if d.ndim == 0 else d for d in douts)), cache)
    missing = [k for k in wrt if k not in grads]
    assert not missing, f"ref_backward returned no gradient for {missing}"

    tensors = {
        k: torch.tensor(v, requires_grad=k in wrt) if isinstance(v, np.ndarray) else v for k, v in values.items()
    }
    touts = _as_tuple(torch_fn(*tensors.values()))
    assert len(touts) == len(outs), f"reference returns {len(outs)} outputs, torch {len(touts)}"
    for n, (o, to) in enumerate(zip(outs, touts, strict=True)):
        _assert_close(f"output {n}", o, to.detach().numpy(), TORCH_TOL, "torch")
    loss = sum((to * torch.from_numpy(d)).sum() for to, d in zip(touts, douts, strict=True))
    loss.backward()
    for k in wrt:
        tgrad = tensors[k].grad
        tgrad = np.zeros_like(values[k]) if tgrad is None else tgrad.numpy()
        _assert_close(f"d{k}", grads[k], tgrad, TORCH_TOL, "torch")

    if fd:

        def scalar_loss() -> float:
            o, _ = ref_forward(*values.values())
            return float(sum(np.sum(np.asarray(a) * d) for a, d in zip(_as_tuple(o), douts, strict=True)))

        for k in wrt:
            check_finite_differences(scalar_loss, values[k], grads[k], k, rng)
    return grads


def check_finite_differences(scalar_loss, x: np.ndarray, grad: np.ndarray, name: str, rng: np.random.Generator) -> None:
    """Central differences of ``scalar_loss()`` while ``x`` is perturbed in place.

    Entry by entry for up to ``FD_MAX_ENTRIES`` entries (a random sample beyond that, always with the
    first and the last: for a sequence, the steps farthest from and nearest to the end), then along
    ``FD_DIRECTIONS`` random directions through the whole array, which a wrong entry anywhere spoils.
    """
    flat = x.reshape(-1)  # a view: perturbing it perturbs what scalar_loss reads
    assert np.shares_memory(flat, x)
    g = np.asarray(grad).reshape(-1)

    def derivative(direction: np.ndarray) -> float:
        old = flat.copy()
        flat[:] = old + FD_EPS * direction
        plus = scalar_loss()
        flat[:] = old - FD_EPS * direction
        minus = scalar_loss()
        flat[:] = old
        return (plus - minus) / (2 * FD_EPS)

    idx = np.arange(flat.size)
    if flat.size > FD_MAX_ENTRIES:
        idx = np.unique(np.r_[0, flat.size - 1, rng.choice(flat.size, FD_MAX_ENTRIES - 2, replace=False)])
    unit = np.zeros(flat.size)
    numeric, analytic = [], []
    for i in idx:
        unit[i] = 1.0
        numeric.append(derivative(unit))
        analytic.append(g[i])
        unit[i] = 0.0
    for _ in range(FD_DIRECTIONS):
        v = rng.standard_normal(flat.size)
        numeric.append(derivative(v) / np.sqrt(flat.size))
        analytic.append(g @ v / np.sqrt(flat.size))
    numeric, analytic = np.array(numeric), np.array(analytic)
    rel = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-12)
    assert rel < FD_TOL, f"d{name}: relative error {rel:.2e} against finite differences"


# ---------------------------------------------------------------------------------------------
# The torch side of the recurrent comparisons: the reference's arrays loaded into nn.RNN / nn.LSTM /
# nn.GRU as their parameters (functional_call), so autograd differentiates with respect to them.


def torch_rnn(x, h0, W, U, b, V=None, c=None):
    """nn.RNN has no output layer and two biases: b goes in bias_ih, bias_hh is 0, y_t = F.linear(h_t, V, c)."""
    rnn = nn.RNN(W.shape[1], W.shape[0], batch_first=True, dtype=torch.float64)
    weights = {"weight_ih_l0": W, "weight_hh_l0": U, "bias_ih_l0": b, "bias_hh_l0": torch.zeros_like(b)}
    h, _ = functional_call(rnn, weights, (x, None if h0 is None else h0[None]))
    return h if V is None else F.linear(h, V, c)


def torch_lstm(x, h0, c0, W, U, b):
    """Returns (h_1..h_T, c_T), the reference's outputs when it also returns its last cell state."""
    lstm = nn.LSTM(W.shape[1], W.shape[0] // 4, batch_first=True, dtype=torch.float64)
    weights = {"weight_ih_l0": W, "weight_hh_l0": U, "bias_ih_l0": b, "bias_hh_l0": torch.zeros_like(b)}
    state = None if h0 is None else (h0[None], c0[None])
    out, (_, c_n) = functional_call(lstm, weights, (x, state))
    return out, c_n[0]


def torch_gru(x, h0, W, U, b, b_U):
    """Same two biases in the same places as the reference: b is bias_ih, b_U is bias_hh."""
    gru = nn.GRU(W.shape[1], W.shape[0] // 3, batch_first=True, dtype=torch.float64)
    weights = {"weight_ih_l0": W, "weight_hh_l0": U, "bias_ih_l0": b, "bias_hh_l0": b_U}
    out, _ = functional_call(gru, weights, (x, None if h0 is None else h0[None]))
    return out
