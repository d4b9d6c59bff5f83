"""Recurrent models: the article's LSTM (section 4) and the remedies its FAQ names (6.2.2): stacked
(deeper) recurrent layers, a residual recurrent connection, and the gated cells LSTM and GRU.

One family, configured by cell, hidden size, layers, directions, dropout between layers and head:

    rnn        h_t = tanh(W x_t + U h_{t-1} + b)                    the article's cell (3.2.1)
    lstm       gated cell state c_t, torch's nn.LSTM                 (6.2.2)
    gru        gated interpolation, torch's nn.GRU                   (6.2.2)
    residual   h_t = h_{t-1} + z_t * tanh(W x_t + A h_{t-1} + b)     (6.2.2, z_t a gate, A antisymmetric;
                                                                      cells.ResidualCell)

    head "last"  one output per sequence from the last valid step:   y = V h_T + c
    head "step"  one output per step (3.2.2):                         y_t = V h_t + c

Two paths compute the same function with the same weights:

- :meth:`RecurrentNet.forward` is the fast path: torch's fused kernels (oneDNN / cuDNN) for the
  cells torch has, with padded batches packed (``pack_padded_sequence``); for the residual cell, our
  loop with the input projection of all steps in one matrix product.
- :meth:`RecurrentNet.forward_with_states` always runs the explicit loop over time and returns
  every ``h_t``, each with ``retain_grad()``, so ``loss.backward()`` leaves ``h_t.grad`` = the total
  ``dL/dh_t`` through time: what the inspection tools plot as the vanishing gradient (3.2.3).

Inputs: ``(B, T, F)`` float sequences; ``(B, T)`` integer tokens (one-hot over ``num_outputs``
symbols, the language-model case where inputs and outputs share a vocabulary). Images reach a
recurrent model already read as sequences by the data side (``--sequence rows``, the article's 28
steps of 28 pixels; see :mod:`layerlab.data.transforms`). ``lengths`` ``(B,)`` gives each padded
sequence's true length; results do not depend on the padding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..choices import CHRONO, HEADS, parse_forget_bias
from ..errors import ConfigError, DataError
from . import register_model
from .cells import CELLS, Cell


def run_layer(
    cell: Cell,
    x: torch.Tensor,
    W: torch.Tensor,
    U: torch.Tensor,
    b: torch.Tensor | None,
    b_U: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    *,
    reverse: bool = False,
    retain: bool = False,
    initial: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """Run ``cell`` over the time axis of ``x`` ``(B, T, D)`` for one layer and one direction.

    ``mask`` ``(B, T)`` is True at valid steps of right-padded sequences: at padded steps the state is
    carried unchanged (so a reversed pass starts at each sequence's own last step) and the output is 0,
    as ``pad_packed_sequence`` gives. ``initial`` is the state before the first step (zeros if None).
    Returns the outputs ``(B, T, H)``, the list of ``h_t`` (each the very tensor fed to the output
    and to the next step; ``retain_grad()`` if ``retain``) and the final state.
    """
    B, T, _ = x.shape
    xw = F.linear(x, W, b)  # (B, T, G*H), all steps at once
    U = cell.recurrent_matrix(U)  # U itself, or the residual cell's antisymmetric form
    state = cell.init_state(B, U.shape[1], xw) if initial is None else initial
    hs: list[torch.Tensor] = [None] * T  # type: ignore[list-item]
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = cell.step(xw[:, t], state, U, b_U)
        if mask is not None:
            m = mask[:, t, None]  # (B, 1)
            new = tuple(torch.where(m, n, o) for n, o in zip(new, state, strict=True))
        state = new
        h_t = state[0]  # (B, H)
        if retain and h_t.requires_grad:
            h_t.retain_grad()
        hs[t] = h_t
    out = torch.stack(hs, dim=1)  # (B, T, H)
    if mask is not None:
        out = out * mask[..., None]
    return out, hs, state


class RecurrentStack(nn.Module):
    """``layers`` stacked recurrent layers of one cell, one or two directions, dropout between layers.

    For cells torch has, the weights live in one fused ``nn.RNN``/``nn.LSTM``/``nn.GRU``
    (``self.fused``) and :meth:`loop` reuses them step by step; for the others, parameters named
    as torch names them (``weight_ih_l0``, ``bias_ih_l0``, ``..._reverse``; the recurrent weight
    under the cell's :attr:`~layerlab.models.cells.Cell.recurrent_weight`, ``weight_hh_l0`` or the
    residual cell's ``antisym_hh_l0``) live here.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden: int,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.cell_impl = cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden, layers
        self.directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.suffixes = ["", "_reverse"][: self.directions]
        self.recurrent_weight = cell.recurrent_weight
        if cell.torch_module is not None:
            kw = {"nonlinearity": "tanh"} if cell.torch_module is nn.RNN else {}
            self.fused: nn.Module | None = cell.torch_module(
                input_size,
                hidden,
                layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=self.dropout if layers > 1 else 0.0,
                **kw,
            )
        else:
            self.fused = None
            G = cell.gates
            for k in range(layers):
                d_in = input_size if k == 0 else hidden * self.directions
                for sfx in self.suffixes:
                    self.register_parameter(f"weight_ih_l{k}{sfx}", nn.Parameter(torch.empty(G * hidden, d_in)))
                    self.register_parameter(
                        f"{self.recurrent_weight}_l{k}{sfx}", nn.Parameter(torch.empty(G * hidden, hidden))
                    )
                    self.register_parameter(f"bias_ih_l{k}{sfx}", nn.Parameter(torch.zeros(G * hidden)))
                    if cell.two_biases:
                        self.register_parameter(f"bias_hh_l{k}{sfx}", nn.Parameter(torch.zeros(G * hidden)))

    def weights(
        self, layer: int, direction: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(W, U, b, b_U)`` of one layer and direction (0 forward, 1 reverse), torch layouts (``U``
        the parameter; the steps use the cell's ``recurrent_matrix(U)``)."""
        src = self.fused if self.fused is not None else self
        sfx = self.suffixes[direction]
        return (
            getattr(src, f"weight_ih_l{layer}{sfx}"),
            getattr(src, f"{self.recurrent_weight}_l{layer}{sfx}"),
            getattr(src, f"bias_ih_l{layer}{sfx}"),
            getattr(src, f"bias_hh_l{layer}{sfx}", None),
        )

    def keras_init_(self) -> None:
        """Keras's recurrent defaults: glorot-uniform ``W``, orthogonal ``U``, zero biases; for the
        LSTM the forget-gate bias is 1 (``unit_forget_bias``), put in ``b_ih`` with ``b_hh`` = 0 so
        the sum torch uses is Keras's bias."""
        H = self.hidden_size
        with torch.no_grad():
            for k in range(self.num_layers):
                for d in range(self.directions):
                    W, U, b, b_U = self.weights(k, d)
                    nn.init.xavier_uniform_(W)
                    nn.init.orthogonal_(U)
                    b.zero_()
                    if b_U is not None:
                        b_U.zero_()
                    if self.cell_impl.name == "lstm":
                        b[H : 2 * H] = 1.0
                    if self.cell_impl.gate_bias is not None:  # residual: small first steps
                        b[:H] = self.cell_impl.gate_bias

    def forget_bias_(self, value: float | None = None, *, chrono_t_max: float | None = None) -> None:
        """Set the LSTM's forget-gate bias ``b_f`` (in ``b_ih``; ``b_hh``'s i, f blocks 0): ``value`` for
        every unit, or, with ``chrono_t_max`` = T_max, chrono initialisation (Tallec & Ollivier, "Can
        recurrent neural networks warp time?", ICLR 2018): ``b_f = log(u)``, ``u ~ U(1, T_max - 1)`` per
        unit, drawn from torch's generator (so from the run's seed), and the input-gate bias ``b_i = -b_f``.
        A unit's forget gate then starts near ``1 - 1/u``: its memory lasts about ``u`` steps, spread
        over the lengths up to T_max, where a bias of 1 gives every unit about 3.7 steps."""
        if self.cell_impl.name != "lstm":
            raise ConfigError(f"--forget-bias is the LSTM's forget gate; the {self.cell_impl.name} cell has none")
        H = self.hidden_size
        with torch.no_grad():
            for k in range(self.num_layers):
                for d in range(self.directions):
                    _, _, b, b_U = self.weights(k, d)
                    if chrono_t_max is None:
                        b[H : 2 * H] = 1.0 if value is None else float(value)
                    else:
                        b_f = torch.log(torch.empty(H).uniform_(1.0, float(chrono_t_max) - 1.0))  # (H,)
                        b[H : 2 * H] = b_f.to(b.dtype)
                        b[:H] = -b_f.to(b.dtype)
                    if b_U is not None:
                        b_U[: 2 * H] = 0.0

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, D)`` -> outputs of the last layer ``(B, T, dirs*H)`` and the final state of
        each direction at each sequence's last valid step ``(B, dirs*H)``."""
        if self.fused is None:
            out, last, _ = self.loop(x, lengths)
            return out, last
        T = x.shape[1]
        if lengths is not None:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, h_n = self.fused(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        else:
            out, h_n = self.fused(x)
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        last = torch.cat(list(h_n[-self.directions :]), dim=-1)  # (B, dirs*H), torch unsorts h_n
        return out, last

    def loop(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, *, keep: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, list[list[torch.Tensor]]]:
        """The explicit loop over time (same weights as the fused path). Returns outputs, final
        states as :meth:`forward` does, and per layer the list of forward-direction ``h_t``."""
        B, T, _ = x.shape
        mask = None if lengths is None else torch.arange(T, device=x.device)[None, :] < lengths[:, None]
        states: list[list[torch.Tensor]] = []
        inp = x
        last = None
        for k in range(self.num_layers):
            outs, finals = [], []
            for d in range(self.directions):
                W, U, b, b_U = self.weights(k, d)
                out_d, hs, _ = run_layer(
                    self.cell_impl, inp, W, U, b, b_U, mask, reverse=d == 1, retain=keep and d == 0
                )
                outs.append(out_d)
                if d == 0:
                    states.append(hs)
                    finals.append(hs[-1] if lengths is None else out_d[torch.arange(B, device=x.device), lengths - 1])
                else:
                    finals.append(out_d[:, 0])  # the reverse pass ends at t = 0
            out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)  # (B, T, dirs*H)
            last = finals[0] if len(finals) == 1 else torch.cat(finals, dim=-1)
            if k < self.num_layers - 1 and self.dropout > 0:
                out = F.dropout(out, self.dropout, self.training)
            inp = out
        assert last is not None  # (at least one layer)
        return inp, last, states

    def forward_state(self, x: torch.Tensor, state=None):
        """One direction, carrying the state across calls (for sampling one step at a time).
        ``state`` is what the previous call returned (None: zeros). Returns outputs ``(B, T, H)``
        and the new state."""
        if self.directions != 1:
            raise ConfigError("a bidirectional model reads whole sequences; it cannot be run step by step")
        if self.fused is not None:
            return self.fused(x, state)
        new, inp = [], x
        for k in range(self.num_layers):
            W, U, b, b_U = self.weights(k)
            inp, _, final = run_layer(self.cell_impl, inp, W, U, b, b_U, initial=None if state is None else state[k])
            new.append(final)
        return inp, new


class RecurrentNet(nn.Module):
    """A recurrent stack and a dense head ``y = V h + c`` on the last valid step or on every step.

    Attributes the inspection tools read: ``cell`` (name), ``hidden_size``, ``num_layers``,
    ``bidirectional``, ``head``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        cell: str = "lstm",
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
    ):
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if cell not in CELLS:
            raise ConfigError(f"unknown recurrent cell {cell!r}; expected one of {', '.join(CELLS)}")
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; expected 'last' (one output per sequence) or 'step' (per step)")
        if hidden < 1 or layers < 1:
            raise ConfigError(f"--hidden and --layers must be at least 1, got {hidden} and {layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {dropout}")
        if len(shape) == 1:
            self.input_kind, features = "tokens", num_outputs  # one-hot over the output vocabulary
        elif len(shape) == 2:
            self.input_kind, features = "sequence", shape[1]
        else:
            # images are read as sequences on the data side (InputSpec: rows, pixels, permuted), once
            raise ConfigError(
                f"a recurrent model needs samples of shape (T, F) or (T,) tokens, got {shape}; "
                f"read images as sequences (--sequence rows)"
            )
        self.input_shape = shape
        self.num_outputs = int(num_outputs)
        self.cell = cell
        self.hidden_size = int(hidden)
        self.num_layers = int(layers)
        self.bidirectional = bool(bidirectional)
        self.head = head
        cell_impl = CELLS[cell]()
        self.rnn = RecurrentStack(cell_impl, features, self.hidden_size, self.num_layers, self.bidirectional, dropout)
        self.out = nn.Linear(self.hidden_size * self.rnn.directions, self.num_outputs)
        self.rnn.keras_init_()
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    # --- inputs
    def as_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input as a float sequence ``(B, T, F)``."""
        if self.input_kind == "tokens":
            if x.is_floating_point():
                raise DataError(f"this model takes integer token ids (B, T), got a float tensor {tuple(x.shape)}")
            return F.one_hot(x.long(), self.num_outputs).to(self.out.weight.dtype)  # (B, T, V)
        if x.dim() != 3:
            raise DataError(f"expected a batch of sequences (B, T, F), got shape {tuple(x.shape)}")
        return x

    @staticmethod
    def _lengths(lengths: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """Validated lengths on ``x``'s device, or None when every sequence fills the batch."""
        if lengths is None:
            return None
        T = x.shape[1]
        lengths = torch.as_tensor(lengths, device=x.device).long()
        if lengths.shape != (x.shape[0],):
            raise DataError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > T:
            raise DataError(f"sequence lengths must be between 1 and T={T}, got {lo}..{hi}")
        return None if lo == T else lengths

    # --- the two paths
    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` (head ``last``) or ``(B, T, K)`` (head ``step``)."""
        x = self.as_sequence(x)
        out, last = self.rnn(x, self._lengths(lengths, x))
        return self.out(out) if self.head == "step" else self.out(last)

    def forward_with_states(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """The same logits as :meth:`forward`, by the explicit loop over time, and ``states``: per
        layer, the list over time of forward-direction ``h_t`` ``(B, H)``. Each ``h_t`` is the tensor
        used for both the output and the next step and has ``retain_grad()``, so after
        ``loss.backward()`` ``h_t.grad`` is the total ``dL/dh_t`` through time."""
        x = self.as_sequence(x)
        out, last, states = self.rnn.loop(x, self._lengths(lengths, x), keep=True)
        return (self.out(out) if self.head == "step" else self.out(last)), states

    @torch.no_grad()
    def step_logits(self, x: torch.Tensor, state=None):
        """Per-step logits ``(B, T, K)`` of a one-direction model, continuing from ``state`` (None:
        the start); returns them and the state after the last step. Used to sample text."""
        out, state = self.rnn.forward_state(self.as_sequence(x), state)
        return self.out(out), state

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell}, hidden={self.hidden_size}, layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, head={self.head}, input={self.input_kind}"
        )


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------
@register_model(
    "article-lstm",
    "The article's RNN: LSTM(128, tanh) > Dense on the last step, Keras's initialisation",
    default_input=(28, 28),
    default_outputs=10,
    sequence=True,
)
def article_lstm(input_shape, num_outputs):
    """The article's RNN (section 4): LSTM(128, tanh) > Dense(num_outputs) on the last step.

    Keras's initialisation: glorot-uniform input kernels, orthogonal recurrent kernel, zero biases,
    forget-gate bias 1. Images are read as rows (28 steps of 28 features for Fashion-MNIST).

    Keras's LSTM has one bias; torch's adds a second (``b_ih + b_hh``). Here ``b_hh`` is frozen at
    zero, so the model has Keras's 81,674 trainable parameters (28 features, 10 classes) and its
    bias moves at Keras's rate under Adam (two trainable copies would move the sum twice as fast).
    The ``lstm`` family keeps torch's two biases.
    """
    model = RecurrentNet(input_shape, num_outputs, cell="lstm", hidden=128, layers=1, head="last")
    for name, p in model.named_parameters():
        if ".bias_hh_" in name:
            p.requires_grad_(False)
    return model


def _family(cell: str):
    def factory(
        input_shape,
        num_outputs,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
    ):
        return RecurrentNet(
            input_shape,
            num_outputs,
            cell=cell,
            hidden=hidden,
            layers=layers,
            bidirectional=bidirectional,
            dropout=dropout,
            head=head,
        )

    factory.__name__ = cell
    return factory


def lstm(
    input_shape,
    num_outputs,
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    head: str = "last",
    forget_bias: str | float | None = None,
):
    """The ``lstm`` family: :class:`RecurrentNet` with the LSTM cell, Keras's initialisation (forget-gate
    bias 1) unless ``forget_bias`` says otherwise: a number, ``chrono`` (T_max the input's length, its
    first dimension) or ``chrono:T`` (see :meth:`RecurrentStack.forget_bias_`)."""
    model = _family("lstm")(input_shape, num_outputs, hidden, layers, bidirectional, dropout, head)
    if forget_bias is not None:
        kind, v = parse_forget_bias(forget_bias)
        if kind == CHRONO:
            t_max = v if v is not None else float(model.input_shape[0])
            if t_max < 3:
                raise ConfigError(
                    f"--forget-bias chrono draws log U(1, T_max - 1) and needs T_max of at least 3; these sequences "
                    f"have {int(t_max)} steps (give chrono:T)"
                )
            model.rnn.forget_bias_(chrono_t_max=t_max)
        else:
            model.rnn.forget_bias_(v)
    return model


for _name, _desc in (
    ("rnn", "The article's tanh RNN h_t = tanh(W x_t + U h_{t-1} + b): --hidden --layers --bidirectional --dropout"),
    ("lstm", "LSTM (torch's fused kernel): --hidden --layers --bidirectional --dropout --forget-bias"),
    ("gru", "GRU (torch's fused kernel): --hidden --layers --bidirectional --dropout"),
    (
        "residual",
        "Residual tanh RNN h_t = h_{t-1} + z_t * tanh(W x_t + A h_{t-1} + b), z_t a gate, A antisymmetric: "
        "--hidden --layers --bidirectional --dropout",
    ),
):
    register_model(_name, _desc, sequence=True)(lstm if _name == "lstm" else _family(_name))
