"""layerlab as Keras users write it: arrays in, arrays out.

    python examples/keras_style.py            # the article's CNN on Fashion-MNIST, 10 epochs
    python examples/keras_style.py --quick    # a few hundred samples, 1 epoch (the test suite runs this)

The arrays are what ``keras.datasets.fashion_mnist.load_data()`` returns: x ``(N, 28, 28)`` uint8,
y ``(N,)`` uint8. They are read from Debian's ``dataset-fashion-mnist`` files when installed, else
made up (a bright bar whose row is the class), so the example runs anywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import layerlab
from layerlab.data.formats.idx import read_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


def load_data(n_train: int | None = None, n_test: int | None = None, seed: int = 0):
    """``((x_train, y_train), (x_test, y_test))`` as Keras's ``load_data()`` gives them."""
    if (FASHION / "train-images-idx3-ubyte.gz").is_file():

        def part(name):
            return read_idx(FASHION / f"{name}-images-idx3-ubyte.gz"), read_idx(
                FASHION / f"{name}-labels-idx1-ubyte.gz"
            )

        (x, y), (xt, yt) = part("train"), part("t10k")
    else:  # bars over faint noise: class k is a bar at row 2k + 3
        rng = np.random.default_rng(seed)

        def bars(n):
            y = rng.integers(0, 10, n).astype(np.uint8)
            x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
            for i, k in enumerate(y):
                x[i, 2 * k + 3 : 2 * k + 5, 4:24] = 255
            return x, y

        (x, y), (xt, yt) = bars(n_train or 6000), bars(n_test or 1000)
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 training samples, 1 epoch")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    n_train, n_test, epochs = (600, 200, 1) if args.quick else (None, None, args.epochs)

    (x_train, y_train), (x_test, y_test) = load_data(n_train, n_test)
    history = layerlab.fit("article-cnn", x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1)
    print("history:", {k: [round(v, 4) for v in vs] for k, vs in history.history.items()})
    print("test:", layerlab.evaluate(history.model, x_test, y_test)["accuracy"])
    probs = layerlab.predict(history.model, x_test[:5])  # (5, 10) class probabilities
    print("predicted:", probs.argmax(1).tolist(), "true:", y_test[:5].tolist())


if __name__ == "__main__":
    main()
