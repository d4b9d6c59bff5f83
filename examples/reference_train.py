"""Train the article's models with the NumPy reference alone (no torch), and measure its vanishing gradient.

    python examples/reference_train.py            # about 15 s on 2 cores
    python examples/reference_train.py --epochs 10 --filters 32 64

1. The article's CNN shape (conv3x3 > relu > pool > conv3x3 > relu > pool > flatten > dense), narrower
   by default (8 and 16 filters instead of 32 and 64), on scikit-learn's bundled 8x8 digits, each
   pixel repeated 2x2 to 16x16 so that two valid 3x3 convs and two 2x2 pools fit (16 > 14 > 7 > 5 > 2).
2. The article's tanh RNN with a per-step output, y_t = V h_t + c, on two tasks: echo the symbol seen
   ``delay`` steps ago (a memory task, every step scored), and the same digits read row by row
   (8 steps of 8 pixels, scored on y_T).
3. Eq. 3.2.3: the slope of log ||dL/dh_t|| against the distance T - t, for U = sigma * orthogonal.

Needs scikit-learn (for the digits, bundled with it: nothing is downloaded). The output of a run is
pasted in docs/reference.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from layerlab.reference.network import RNN, Adam, LastStep, Sequential, accuracy, article_cnn, fit
from layerlab.reference.rnn import rnn_backward, rnn_forward


def digits(as_sequences: bool = False, seed: int = 0):
    """Train/test split (75/25, stratified) of the 1,797 digits, pixels scaled to [0, 1].

    Images come as (N, 1, 16, 16) (nearest-neighbour 2x upsampling); sequences as (N, 8, 8), one
    row of pixels per time step.
    """
    d = load_digits()
    x = d.images / 16.0  # (N, 8, 8)
    if not as_sequences:
        x = x.repeat(2, axis=1).repeat(2, axis=2)[:, None]  # (N, 1, 16, 16)
    return train_test_split(x, d.target, test_size=0.25, random_state=seed, stratify=d.target)


def delayed_echo(n: int, T: int, K: int, delay: int, rng: np.random.Generator):
    """One-hot symbols x_t (N, T, K); target y_t = the symbol at t - delay (0 before the start)."""
    symbols = rng.integers(0, K, size=(n, T))  # (N, T)
    targets = np.zeros_like(symbols)
    targets[:, delay:] = symbols[:, :-delay]
    return np.eye(K)[symbols], targets


def train_cnn(filters=(8, 16), epochs: int = 5, lr: float = 1e-2, seed: int = 0, log=print) -> dict:
    x_tr, x_te, y_tr, y_te = digits(seed=seed)
    rng = np.random.default_rng(seed)
    model = article_cnn((1, 16, 16), 10, (filters[0], "M", filters[1], "M"), rng=rng)
    start = time.perf_counter()
    fit(
        model,
        Adam(model.parameters(), lr=lr),
        x_tr,
        y_tr,
        epochs,
        batch_size=32,
        rng=rng,
        on_epoch=lambda e, loss: log(
            f"  epoch {e + 1}: train loss {loss:.4f}, test accuracy {accuracy(model, x_te, y_te):.4f}"
        ),
    )
    return {
        "parameters": model.num_parameters(),
        "accuracy": accuracy(model, x_te, y_te),
        "seconds": time.perf_counter() - start,
        "train": len(x_tr),
        "test": len(x_te),
    }


def train_rnn_echo(
    delay: int = 5, T: int = 12, K: int = 4, H: int = 32, steps: int = 300, lr: float = 1e-2, seed: int = 0
) -> dict:
    rng = np.random.default_rng(seed)
    x_te, y_te = delayed_echo(1000, T, K, delay, np.random.default_rng(seed + 1))
    model = Sequential(RNN(K, H, K, rng=rng))  # y_t = V h_t + c at every t
    opt = Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(steps):  # fresh sequences every step: the task is infinite, no epochs
        x, y = delayed_echo(32, T, K, delay, rng)
        fit(model, opt, x, y, epochs=1, batch_size=32, rng=rng, max_grad_norm=5.0)
    return {"accuracy": accuracy(model, x_te, y_te), "seconds": time.perf_counter() - start}


def train_rnn_digits(H: int = 64, epochs: int = 6, lr: float = 3e-3, seed: int = 0) -> dict:
    x_tr, x_te, y_tr, y_te = digits(as_sequences=True, seed=seed)
    rng = np.random.default_rng(seed)
    model = Sequential(RNN(8, H, 10, rng=rng), LastStep())  # classify from y_T
    start = time.perf_counter()
    fit(model, Adam(model.parameters(), lr=lr), x_tr, y_tr, epochs, rng=rng, max_grad_norm=5.0)
    return {"accuracy": accuracy(model, x_te, y_te), "seconds": time.perf_counter() - start}


def vanishing_slope(sigma: float, T: int = 40, H: int = 8, seed: int = 0) -> tuple[float, float]:
    """Fit log ||dL/dh_t|| = a + slope * (T - t) for a loss on y_T alone; returns (slope, ||dL/dh_1|| / ||dL/dh_T||)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((H, H)))
    x = 0.01 * rng.standard_normal((1, T, 3))  # small: tanh' ~ 1
    y, cache = rnn_forward(
        x, None, rng.standard_normal((H, 3)), sigma * Q, np.zeros(H), rng.standard_normal((2, H)), np.zeros(2)
    )
    dy = np.zeros_like(y)
    dy[:, -1] = 1.0
    norms = np.linalg.norm(rnn_backward(dy, cache, return_per_step=True)["h"][0], axis=-1)  # (T,)
    slope = np.polyfit(np.arange(T)[::-1], np.log(norms), 1)[0]
    return float(slope), float(norms[0] / norms[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="CNN epochs (default 5)")
    parser.add_argument("--filters", type=int, nargs=2, default=(8, 16), help="CNN filters (article: 32 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print("1. CNN on the 8x8 digits (upsampled to 16x16), NumPy reference only")
    r = train_cnn(tuple(args.filters), args.epochs, seed=args.seed)
    print(
        f"   {r['parameters']} parameters, {r['train']} train / {r['test']} test images: "
        f"test accuracy {r['accuracy']:.4f} in {r['seconds']:.1f} s"
    )
    print("2. tanh RNN, y_t = V h_t + c")
    r = train_rnn_echo(seed=args.seed)
    print(
        f"   delayed echo (delay 5, T 12, 4 symbols, H 32, 300 steps): "
        f"accuracy {r['accuracy']:.4f} in {r['seconds']:.1f} s"
    )
    r = train_rnn_digits(seed=args.seed)
    print(
        f"   digits row by row (T 8, H 64, 6 epochs, from y_T): "
        f"test accuracy {r['accuracy']:.4f} in {r['seconds']:.1f} s"
    )
    print("3. Vanishing gradient (eq. 3.2.3), U = sigma * orthogonal, T = 40, loss on y_T")
    print("   sigma  fitted slope  log(sigma)  ||dL/dh_1|| / ||dL/dh_T||")
    for sigma in (0.3, 0.6, 0.9, 1.0):
        slope, ratio = vanishing_slope(sigma, seed=args.seed)
        print(f"   {sigma:5.1f}  {slope:12.4f}  {np.log(sigma):10.4f}  {ratio:.3e}")


if __name__ == "__main__":
    # These matrices are small: one BLAS thread beats several, and on a shared 2-core machine
    # extra threads only wait for each other (measured: ~1 s per CNN epoch instead of 2.5-5 s).
    with threadpool_limits(1):
        main()
