"""The article's equations in NumPy, forward and backward: a reference to read and to check the fast path.

Every layer is a pair ``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache) -> grads``,
``grads`` a dict keyed by the forward's argument names (``"x"``, ``"W"``, ``"b"``, ...). Symbols are the
article's (``W, U, V, b, c, h_t, h_prev``), layouts are torch's (NCHW images, ``(out, in)`` weights,
batch-first sequences), float64 is what the tests use.

=========================  ==============================================  =====================
article                    function                                        module
=========================  ==============================================  =====================
3.1.1 convolution          ``conv2d_forward`` / ``conv2d_backward``        ``conv``
3.1.2 max pooling          ``maxpool2d_forward`` / ``maxpool2d_backward``  ``pool``
3.1.3 fully connected      ``dense_forward`` / ``dense_backward``          ``dense``
softmax + cross-entropy    ``softmax_cross_entropy_forward`` / ``_backward``  ``losses``
3.2.1-3.2.2 tanh RNN       ``rnn_forward`` / ``rnn_backward`` (BPTT)       ``rnn``
3.2.3 Jacobians            ``rnn_jacobians``                               ``rnn``
6.2.2 LSTM, GRU            ``lstm_*``, ``gru_*``                           ``lstm``, ``gru``
=========================  ==============================================  =====================

``layerlab.reference.network`` stacks them into trainable models with SGD and Adam. This package
imports NumPy only, never torch: it is the independent witness the fast path is checked against.
See ``docs/equations.md`` for each equation next to its function and its test.
"""

from .conv import conv2d_backward, conv2d_forward
from .dense import (
    dense_backward,
    dense_forward,
    flatten_backward,
    flatten_forward,
    relu_backward,
    relu_forward,
    sigmoid,
    tanh_backward,
    tanh_forward,
)
from .gru import gru_backward, gru_cell_backward, gru_cell_forward, gru_forward
from .losses import (
    log_softmax,
    mse_backward,
    mse_forward,
    softmax,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .lstm import lstm_backward, lstm_cell_backward, lstm_cell_forward, lstm_forward
from .pool import maxpool2d_backward, maxpool2d_forward
from .rnn import rnn_backward, rnn_cell_backward, rnn_cell_forward, rnn_forward, rnn_jacobians

__all__ = [
    "conv2d_backward",
    "conv2d_forward",
    "dense_backward",
    "dense_forward",
    "flatten_backward",
    "flatten_forward",
    "gru_backward",
    "gru_cell_backward",
    "gru_cell_forward",
    "gru_forward",
    "log_softmax",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse_backward",
    "mse_forward",
    "relu_backward",
    "relu_forward",
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
    "rnn_jacobians",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "tanh_backward",
    "tanh_forward",
]
