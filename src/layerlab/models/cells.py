"""Recurrent cells: one time step each, apart from the loop over time (Keras's ``SimpleRNNCell`` /
``RNN`` split). The loop (:func:`layerlab.models.rnn.run_layer`) handles stacking, directions and
masks; a cell only knows how to go from ``state_{t-1}`` to ``state_t``.

A cell here holds no weights: it is given them at every step, so the same cell computes with the
parameters of torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (for the step-by-step path that
keeps every ``h_t``) or with our own parameters (for cells torch lacks). Layouts are torch's:
``W`` ``(G*H, D)``, ``U`` ``(G*H, H)``, biases ``(G*H,)``, with ``G`` gate blocks.

The input projection ``xw_t = W x_t + b`` does not depend on the state, so the loop computes it for
all steps in one matrix product and hands each cell its row; the cell adds ``U h_{t-1} (+ b_U)``.

Every state is a tuple whose first entry is ``h_t`` (the LSTM adds its cell state ``c_t``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

State = tuple[torch.Tensor, ...]


class Cell:
    """One step of a recurrence. Subclasses set ``name``, ``gates`` (blocks of ``H`` rows in ``W``
    and ``U``), ``torch_module`` (the fused torch class, or None) and ``two_biases`` (whether the
    recurrent product has its own bias, as in torch's modules)."""

    name = "cell"
    gates = 1
    torch_module: type[nn.Module] | None = None
    two_biases = True
    state_size = 1
    #: the name of the recurrent weight's parameters (``{name}_l{layer}``), torch's for torch's cells
    recurrent_weight = "weight_hh"
    #: the initial bias of a gate block that starts nearly shut (``b[:H]``), None if none
    gate_bias: float | None = None

    def recurrent_matrix(self, U: torch.Tensor) -> torch.Tensor:
        """The matrix the steps use, formed from the parameter ``U`` once per layer and call (the
        residual cell's antisymmetric form); ``U`` itself for the others."""
        return U

    def init_state(self, batch: int, hidden: int, like: torch.Tensor) -> State:
        z = like.new_zeros(batch, hidden)
        return tuple(z for _ in range(self.state_size))

    def step(self, xw_t: torch.Tensor, state: State, U: torch.Tensor, b_U: torch.Tensor | None) -> State:
        """``xw_t = W x_t + b`` ``(B, G*H)``; ``state`` at ``t-1``; ``U`` the
        :meth:`recurrent_matrix`; returns the state at ``t``."""
        raise NotImplementedError


def _recurrent(h_prev: torch.Tensor, U: torch.Tensor, b_U: torch.Tensor | None) -> torch.Tensor:
    return torch.addmm(b_U, h_prev, U.t()) if b_U is not None else h_prev @ U.t()  # (B, G*H)


class TanhCell(Cell):
    """The article's recurrence (3.2.1): ``h_t = tanh(W x_t + U h_{t-1} + b)``.

    torch's ``nn.RNN`` splits ``b`` into ``b_ih + b_hh``; only the sum matters."""

    name = "rnn"
    gates = 1
    torch_module = nn.RNN

    def step(self, xw_t, state, U, b_U):
        (h_prev,) = state
        return (torch.tanh(xw_t + _recurrent(h_prev, U, b_U)),)  # (B, H)


class LSTMCell(Cell):
    """LSTM, gate blocks i, f, g, o (torch's order, Keras's i, f, c, o)::

    [a_i, a_f, a_g, a_o] = W x_t + U h_{t-1} + b
    c_t = sigmoid(a_f) * c_{t-1} + sigmoid(a_i) * tanh(a_g)
    h_t = sigmoid(a_o) * tanh(c_t)
    """

    name = "lstm"
    gates = 4
    torch_module = nn.LSTM
    state_size = 2

    def step(self, xw_t, state, U, b_U):
        h_prev, c_prev = state
        a_i, a_f, a_g, a_o = (xw_t + _recurrent(h_prev, U, b_U)).chunk(4, dim=1)  # 4 x (B, H)
        c_t = torch.sigmoid(a_f) * c_prev + torch.sigmoid(a_i) * torch.tanh(a_g)  # (B, H)
        h_t = torch.sigmoid(a_o) * torch.tanh(c_t)  # (B, H)
        return h_t, c_t


class GRUCell(Cell):
    """GRU, gate blocks r, z, n (torch's ``nn.GRU``, Keras's ``reset_after=True``)::

    r = sigmoid(W_r x_t + b_r + U_r h_{t-1} + b_Ur)
    z = sigmoid(W_z x_t + b_z + U_z h_{t-1} + b_Uz)
    n = tanh(W_n x_t + b_n + r * (U_n h_{t-1} + b_Un))
    h_t = (1 - z) * n + z * h_{t-1}
    """

    name = "gru"
    gates = 3
    torch_module = nn.GRU

    def step(self, xw_t, state, U, b_U):
        (h_prev,) = state
        x_r, x_z, x_n = xw_t.chunk(3, dim=1)  # 3 x (B, H)
        u_r, u_z, u_n = _recurrent(h_prev, U, b_U).chunk(3, dim=1)  # 3 x (B, H)
        r = torch.sigmoid(x_r + u_r)
        z = torch.sigmoid(x_z + u_z)
        n = torch.tanh(x_n + r * u_n)
        return ((1 - z) * n + z * h_prev,)  # (B, H)


class ResidualCell(Cell):
    """The article's tanh cell with a residual recurrent connection (6.2.2), gated, its recurrent
    matrices antisymmetric (the gated AntisymmetricRNN of Chang, Chen, Haber & Chi, ICLR 2019)::

        A_z = (U_z - U_z^T)/2 - gamma I,   A_h = (U_h - U_h^T)/2 - gamma I   from the trained U
        z_t = sigmoid(W_z x_t + A_z h_{t-1} + b_z)                   update gate (b_z starts at -3)
        h_t = h_{t-1} + z_t * tanh(W_h x_t + A_h h_{t-1} + b_h)       residual update

    Gate blocks z, h (rows of ``W`` ``(2H, D)``, ``U`` ``(2H, H)``, ``b`` ``(2H,)``). The identity
    path makes ``dh_t/dh_{t-1} = I + diag(z_t (1 - g_t^2)) A_h + diag(g_t z_t (1 - z_t)) A_z``
    (``g_t`` the tanh): however small the update's part, the product of these Jacobians over many
    steps does not shrink to zero, as the plain tanh cell's ``diag(1 - h_t^2) U`` does. The gate is
    a learned step size: with ``z_t`` near 0 a unit keeps its value exactly (the original LSTM's
    constant error carousel, ``c_t = c_{t-1} + i * g``, which had no forget gate either).

    Why antisymmetric: with a free ``U`` (the cell as first written) the update's Jacobian is about
    ``I + z U``, whose eigenvalues ``1 + z lambda`` lie outside the unit circle for every eigenvalue
    ``lambda`` of ``U`` with a positive real part (about half of an orthogonal ``U``'s), so the state
    and the gradient grow geometrically with T. Measured on the adding problem at initialisation
    (``benchmarks/results/residual_fix.md``), that cell's state RMS was 0.2 at T = 50, 4-6 at T = 150
    and 110-150 at T = 400, the gradient reaching ``h_0`` 60-170 times the one at ``h_T`` at T = 150
    (1e5-5e5 at T = 400), and training at T = 150 clipped every step. ``A + gamma I`` is
    antisymmetric, so every eigenvalue of ``A`` has real part ``-gamma`` (:attr:`diffusion`), for
    any ``U`` training reaches: a linear step ``I + z A`` (one step size ``z`` for every unit)
    stretches no direction by more than ``sqrt((1 - z gamma)^2 + z^2 |lambda|^2)``, about 1 for
    small steps. Measured the same way the
    state's RMS stays below 0.6 and the gradient reaching ``h_0`` is 0.9-1.0 of the one at ``h_T``
    at T = 50, 150 and 400. ``A`` is formed once per layer and call (:meth:`recurrent_matrix`); the
    parameter is stored as ``antisym_hh_l*`` (not torch's ``weight_hh_l*``), so a checkpoint of the
    free-``U`` form is refused by name instead of computing something else.

    torch has no such cell, so it runs in our loop, with the input projection for all steps in one
    matrix product.
    """

    name = "residual"
    torch_module = None
    two_biases = False
    gates = 2
    recurrent_weight = "antisym_hh"
    #: ``b_z`` at initialisation: ``z = sigmoid(-3) ~ 0.047``, small first steps.
    gate_bias = -3.0
    #: ``gamma``: how far left of the imaginary axis ``A``'s eigenvalues are moved.
    diffusion = 0.01

    def recurrent_matrix(self, U: torch.Tensor) -> torch.Tensor:
        """``A = (U - U^T)/2 - gamma I`` for each ``(H, H)`` gate block of ``U`` ``(2H, H)``."""
        H = U.shape[1]
        blocks = U.view(self.gates, H, H)  # (G, H, H)
        eye = torch.eye(H, dtype=U.dtype, device=U.device)
        return ((blocks - blocks.transpose(1, 2)) / 2 - self.diffusion * eye).reshape(self.gates * H, H)

    def step(self, xw_t, state, U, b_U):
        """``U`` here is :meth:`recurrent_matrix` of the parameter (the loop forms it once)."""
        (h_prev,) = state
        a_z, a_h = (xw_t + _recurrent(h_prev, U, b_U)).chunk(2, dim=1)  # 2 x (B, H)
        return (h_prev + torch.sigmoid(a_z) * torch.tanh(a_h),)  # (B, H)


#: Cells by name; ``rnn`` is the article's tanh cell.
CELLS: dict[str, type[Cell]] = {c.name: c for c in (TanhCell, LSTMCell, GRUCell, ResidualCell)}
