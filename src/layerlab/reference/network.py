"""A small NumPy network API on the reference layers: enough to train the article's models without torch.

A model is a :class:`Sequential` of layers. Each layer wraps one ``*_forward``/``*_backward`` pair,
owns a parameter dict (the article's names: ``W``, ``b``, ``U``, ``V``, ``c``) and, after
``backward``, a gradient dict with the same keys. ``Sequential.parameters()`` and ``.gradients()``
flatten them to ``{"0.W": array, ...}`` (torch ``state_dict`` style names); the optimisers update
those arrays in place, so the layers see the new values without any copying back.

One training step, written out (this is all :func:`train_step` does)::

    logits = model.forward(x)                                   # (B, K)
    loss, cache = softmax_cross_entropy_forward(logits, y)
    model.backward(softmax_cross_entropy_backward(1.0, cache)["logits"])
    optimizer.step(model.gradients())

Initialisation follows Keras's defaults, the ones the article's code ran with (section 4):
Glorot-uniform kernels, zero biases, orthogonal recurrent matrices, LSTM forget-gate bias 1; Adam's
defaults are Keras's too (lr 1e-3, betas 0.9/0.999, eps 1e-7).
"""

from __future__ import annotations

import math

import numpy as np

from .conv import conv2d_backward, conv2d_forward, output_size
from .dense import (
    dense_backward,
    dense_forward,
    flatten_backward,
    flatten_forward,
    relu_backward,
    relu_forward,
    tanh_backward,
    tanh_forward,
)
from .gru import gru_backward, gru_forward
from .losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .lstm import lstm_backward, lstm_forward
from .pool import maxpool2d_backward, maxpool2d_forward
from .rnn import rnn_backward, rnn_forward

# ---------------------------------------------------------------------------------------------
# Initialisers (Keras defaults)


def glorot_uniform(shape: tuple, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on ``[-l, l]``, ``l = sqrt(6 / (fan_in + fan_out))``: keeps activation variance steady."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(rows, cols)`` matrix with orthonormal rows or columns (Keras's recurrent initialiser).

    All singular values are 1, so at initialisation ``U`` neither shrinks nor grows the gradient
    (eq. 3.2.3's factors then have norm ``max(1 - h_t^2) <= 1``, set by the tanh alone).
    """
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # makes the distribution uniform over orthogonal matrices
    return q if rows >= cols else q.T


def _stacked_orthogonal(blocks: int, H: int, rng: np.random.Generator) -> np.ndarray:
    """Keras draws one orthogonal ``(H, blocks*H)`` recurrent kernel; in torch layout that is ``(blocks*H, H)``."""
    return orthogonal(H, blocks * H, rng).T


# ---------------------------------------------------------------------------------------------
# Layers


class Layer:
    """A forward/backward pair with its parameters. Subclasses set ``params`` and implement the two calls."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: dict | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Store ``dL/dparam`` in ``self.grads`` and return ``dL/dx``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class _Functional(Layer):
    """A layer whose forward is ``fn(x, **self.params, **options)`` and backward returns ``{"x", *params}``."""

    forward_fn = backward_fn = None

    def __init__(self, **options) -> None:
        super().__init__()
        self.options = options

    def forward(self, x):
        out, self._cache = type(self).forward_fn(x, **self.params, **self.options)
        return out

    def backward(self, dout):
        g = type(self).backward_fn(dout, self._cache)
        self.grads = {k: g[k] for k in self.params}
        return g["x"]


class Conv2d(_Functional):
    """Eq. 3.1.1: ``W`` ``(C_out, C_in, k, k)`` Glorot-uniform, ``b`` ``(C_out,)`` zeros."""

    forward_fn, backward_fn = staticmethod(conv2d_forward), staticmethod(conv2d_backward)

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel: int = 3,
        stride: int = 1,
        padding: int = 0,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(stride=stride, padding=padding)
        rng = rng or np.random.default_rng()
        field = kernel * kernel
        self.params = {
            "W": glorot_uniform((C_out, C_in, kernel, kernel), C_in * field, C_out * field, rng),
            "b": np.zeros(C_out),
        }


class MaxPool2d(_Functional):
    """Eq. 3.1.2: max over ``kernel x kernel`` windows, stride ``kernel`` unless given."""

    forward_fn, backward_fn = staticmethod(maxpool2d_forward), staticmethod(maxpool2d_backward)

    def __init__(self, kernel: int = 2, stride: int | None = None) -> None:
        super().__init__(kernel=kernel, stride=stride)


class Dense(_Functional):
    """Eq. 3.1.3: ``W`` ``(K, D)`` Glorot-uniform, ``b`` ``(K,)`` zeros; works on ``(..., D)``."""

    forward_fn, backward_fn = staticmethod(dense_forward), staticmethod(dense_backward)

    def __init__(self, D: int, K: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng or np.random.default_rng()
        self.params = {"W": glorot_uniform((K, D), D, K, rng), "b": np.zeros(K)}


class ReLU(_Functional):
    forward_fn, backward_fn = staticmethod(relu_forward), staticmethod(relu_backward)


class Tanh(_Functional):
    forward_fn, backward_fn = staticmethod(tanh_forward), staticmethod(tanh_backward)


class Flatten(_Functional):
    """``(B, C, H, W) -> (B, C*H*W)``, C order (torch's)."""

    forward_fn, backward_fn = staticmethod(flatten_forward), staticmethod(flatten_backward)


class RNN(Layer):
    """The article's tanh RNN with per-step output (eqs. 3.2.1-3.2.2), ``(B, T, D) -> (B, T, O)``.

    ``h_0`` is zeros. With ``O=None`` there is no ``V, c`` and the output is ``h_1..h_T`` ``(B, T, H)``.
    After ``forward``, ``self.hidden`` holds ``h_1..h_T`` for inspection.
    """

    def __init__(self, D: int, H: int, O: int | None = None, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng or np.random.default_rng()
        self.params = {"W": glorot_uniform((H, D), D, H, rng), "U": orthogonal(H, H, rng), "b": np.zeros(H)}
        if O is not None:
            self.params.update(V=glorot_uniform((O, H), H, O, rng), c=np.zeros(O))
        self.hidden: np.ndarray | None = None

    def forward(self, x):
        y, self._cache = rnn_forward(x, None, **self.params)
        self.hidden = self._cache["h"]  # (B, T, H)
        return y

    def backward(self, dout):
        g = rnn_backward(dout, self._cache)
        self.grads = {k: g[k] for k in self.params}
        return g["x"]


class LSTM(Layer):
    """LSTM over a sequence, ``(B, T, D) -> (B, T, H)``, zero initial state, torch gate order i, f, g, o.

    Keras initialisation: Glorot kernel, orthogonal recurrent kernel, forget-gate bias 1 (so the
    cell starts by remembering: ``c_t ~ 0.73 c_{t-1} + ...`` instead of halving every step).
    """

    def __init__(self, D: int, H: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng or np.random.default_rng()
        b = np.zeros(4 * H)
        b[H : 2 * H] = 1.0  # the f block
        self.params = {"W": glorot_uniform((4 * H, D), D, 4 * H, rng), "U": _stacked_orthogonal(4, H, rng), "b": b}

    def forward(self, x):
        h, self._cache = lstm_forward(x, None, None, **self.params)
        return h

    def backward(self, dout):
        g = lstm_backward(dout, self._cache)
        self.grads = {k: g[k] for k in self.params}
        return g["x"]


class GRU(Layer):
    """GRU over a sequence, ``(B, T, D) -> (B, T, H)``, zero initial state, torch gate order r, z, n."""

    def __init__(self, D: int, H: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng or np.random.default_rng()
        self.params = {
            "W": glorot_uniform((3 * H, D), D, 3 * H, rng),
            "U": _stacked_orthogonal(3, H, rng),
            "b": np.zeros(3 * H),
            "b_U": np.zeros(3 * H),
        }

    def forward(self, x):
        h, self._cache = gru_forward(x, None, **self.params)
        return h

    def backward(self, dout):
        g = gru_backward(dout, self._cache)
        self.grads = {k: g[k] for k in self.params}
        return g["x"]


class LastStep(Layer):
    """``(B, T, H) -> (B, H)``: keep ``h_T`` only, as Keras's ``LSTM(..., return_sequences=False)`` does."""

    def forward(self, x):
        self._cache = x.shape
        return x[:, -1]

    def backward(self, dout):
        dx = np.zeros(self._cache, dtype=dout.dtype)  # (B, T, H)
        dx[:, -1] = dout
        return dx


class Sequential(Layer):
    """Layers applied in order; ``backward`` runs them in reverse (the chain rule, one layer at a time)."""

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self) -> dict[str, np.ndarray]:
        """``{"<layer index>.<name>": array}``; the arrays are the layers' own, not copies."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """Same keys as :meth:`parameters`, from the last ``backward``."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def num_parameters(self) -> int:
        return sum(v.size for v in self.parameters().values())

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


# ---------------------------------------------------------------------------------------------
# Optimisers: they update the parameter arrays in place


class SGD:
    """``p <- p - lr * v``, ``v <- momentum * v + g`` (torch's form of momentum; plain SGD when 0)."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 0.01, momentum: float = 0.0) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        for k, p in self.params.items():
            v = self.velocity[k]
            v *= self.momentum
            v += grads[k]
            p -= self.lr * v


class Adam:
    """Adam (Kingma & Ba) with Keras's defaults, the article's optimiser.

    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)``.
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-7,
    ) -> None:
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for k, p in self.params.items():
            g = grads[k]
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm`` (in place).

    The cure for the vanishing gradient's twin: when eq. 3.2.3's factors have norm above 1 the
    product explodes, and one step can throw an RNN's weights far away.

    Returns:
        The norm before clipping.
    """
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


# ---------------------------------------------------------------------------------------------
# Models from the article, and a training step


def article_cnn(
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    layers=(32, "M", 64, "M"),
    kernel: int = 3,
    rng: np.random.Generator | None = None,
) -> Sequential:
    """The article's CNN (section 4): conv3x3 > relu > pool > conv3x3 > relu > pool > flatten > dense.

    ``layers`` is the architecture as data (the fast path's ``models/cnn.py`` uses the same list): an
    int is a valid-padded ``kernel x kernel`` conv with that many filters followed by ReLU, ``"M"`` a
    2x2 max pool. The defaults give the article's 34,826 parameters on 1x28x28 inputs. Outputs are
    logits; the softmax lives in the loss.

    Args:
        input_shape: ``(C, H, W)`` of one image.
        num_classes: outputs of the final dense layer.
    """
    rng = rng or np.random.default_rng()
    C, H, W = input_shape
    seq: list[Layer] = []
    for spec in layers:
        if spec == "M":
            seq.append(MaxPool2d(2))
            H, W = H // 2, W // 2
        else:
            seq += [Conv2d(C, int(spec), kernel, rng=rng), ReLU()]
            C, H, W = int(spec), output_size(H, kernel, 1, 0), output_size(W, kernel, 1, 0)
        if H < 1 or W < 1:
            raise ValueError(
                f"input of shape {tuple(input_shape)} is too small for layers {list(layers)}: "
                f"the feature map vanishes at {spec!r}"
            )
    seq += [Flatten(), Dense(C * H * W, num_classes, rng=rng)]
    return Sequential(*seq)


def train_step(
    model: Layer, optimizer, x: np.ndarray, targets: np.ndarray, max_grad_norm: float | None = None
) -> float:
    """One step of softmax cross-entropy training on one batch; returns the batch loss.

    Args:
        x: a batch, e.g. ``(B, C, H, W)`` or ``(B, T, D)``.
        targets: integer labels matching the logits' leading axes, ``(B,)`` or ``(B, T)``.
        max_grad_norm: clip the global gradient norm to this, or None.
    """
    logits = model.forward(x)
    loss, cache = softmax_cross_entropy_forward(logits, targets)
    model.backward(softmax_cross_entropy_backward(1.0, cache)["logits"])
    grads = model.gradients()
    if max_grad_norm is not None:
        clip_grad_norm(grads, max_grad_norm)
    optimizer.step(grads)
    return loss


def fit(
    model: Layer,
    optimizer,
    x: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    batch_size: int = 32,
    rng: np.random.Generator | None = None,
    max_grad_norm: float | None = None,
    on_epoch=None,
) -> list[float]:
    """Plain minibatch training: shuffle, :func:`train_step` on each batch, repeat ``epochs`` times.

    Args:
        x, targets: the whole training set, e.g. ``(N, C, H, W)`` and ``(N,)``.
        rng: the shuffling generator (seed it for a reproducible run).
        on_epoch: called as ``on_epoch(epoch, mean_loss)`` after each epoch (the example prints
            from it; the library itself never prints).
    Returns:
        The mean training loss of each epoch.
    """
    rng = rng or np.random.default_rng()
    history = []
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = [
            train_step(model, optimizer, x[idx], targets[idx], max_grad_norm)
            for idx in (order[i : i + batch_size] for i in range(0, len(x), batch_size))
        ]
        history.append(float(np.mean(losses)))
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    return history


def predict(model: Layer, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class predictions (argmax of the logits) in batches, to bound the caches' memory."""
    return np.concatenate([model.forward(x[i : i + batch_size]).argmax(axis=-1) for i in range(0, len(x), batch_size)])


def accuracy(model: Layer, x: np.ndarray, targets: np.ndarray, batch_size: int = 256) -> float:
    """Fraction of positions where the argmax of the logits equals the target."""
    return float(np.mean(predict(model, x, batch_size) == targets))
