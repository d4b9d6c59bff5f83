"""The article's own Keras programs (ARTICLE.md section 4), timed per epoch on Fashion-MNIST.

Runs in the peer environment (benchmarks/.peer-venv, TensorFlow + Keras), never in layerlab's.
The models, optimiser, loss, batch size and epoch count are the article's, unchanged:

    CNN : Conv2D(32,(3,3),relu) > MaxPool(2,2) > Conv2D(64,(3,3),relu) > MaxPool(2,2)
          > Flatten > Dense(10, softmax)                                  (34,826 parameters)
    LSTM: LSTM(128, tanh) over 28 rows x 28 pixels > Dense(10, softmax)
    compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    fit(x_train, y_train, epochs=10, batch_size=32), test set evaluated after every epoch

TensorFlow's thread settings are left at their defaults (what a user gets); they are printed and
recorded. Per epoch we record the training time *without* the test evaluation (train_seconds) and
the evaluation time separately (eval_seconds), measured by a callback around Keras' own
validation pass, so the numbers line up with layerlab's metrics.csv columns.

Usage (peer.sh calls it):
    python keras_article.py --model cnn --epochs 10 --out keras_cnn.json [--data-dir DIR]
                            [--limit-train N] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import struct
import sys
import time
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
# 320 + 18,496 + 16,010 (ARTICLE.md); LSTM: 4 gates x (128 x (28 + 128) + 128) + 128 x 10 + 10.
EXPECTED_PARAMS = {"cnn": 34_826, "lstm": 81_674}


def read_idx(path: Path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file into a uint8 array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: header says shape {shape} but holds {arr.size} values")
    return arr.reshape(shape)


def load_fashion_mnist(data_dir: Path):
    missing = [name for name in FILES.values() if not (data_dir / name).is_file()]
    if missing:
        raise SystemExit(
            f"{data_dir}: missing Fashion-MNIST file(s) {', '.join(missing)}; pass --data-dir "
            "or set LAYERLAB_DATA_DIR (Debian: apt install dataset-fashion-mnist)"
        )
    arrays = {key: read_idx(data_dir / name) for key, name in FILES.items()}
    x_train = arrays["train_images"].astype("float32") / 255.0  # (N, 28, 28), in [0, 1]
    x_test = arrays["test_images"].astype("float32") / 255.0
    y_train = arrays["train_labels"].astype("int32")
    y_test = arrays["test_labels"].astype("int32")
    return (x_train, y_train), (x_test, y_test)


def build_model(kind: str, keras):
    from keras import layers

    if kind == "cnn":
        # Exactly as printed; keras.Input replaces the deprecated input_shape= keyword (same graph).
        return keras.Sequential(
            [
                keras.Input(shape=(28, 28, 1)),
                layers.Conv2D(32, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(64, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        )
    if kind == "lstm":
        # timesteps = 28 image rows, input_dim = 28 pixels per row.
        return keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                layers.LSTM(128, activation="tanh"),
                layers.Dense(10, activation="softmax"),
            ]
        )
    raise SystemExit(f"--model must be cnn or lstm, got {kind!r}")


def thread_settings(tf) -> dict:
    """TF's thread pools as configured (0 = TF picks at runtime) and the env vars that steer them."""
    env_keys = [
        "OMP_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "TF_ENABLE_ONEDNN_OPTS",
        "CUDA_VISIBLE_DEVICES",
    ]
    return {
        "intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "os_cpu_count": os.cpu_count(),
        "sched_affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "env": {k: os.environ.get(k) for k in env_keys},
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["cnn", "lstm"], required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--data-dir",
        default=os.environ.get("LAYERLAB_DATA_DIR") or DEFAULT_DATA_DIR,
        help=f"folder with the four Fashion-MNIST IDX .gz files (default: $LAYERLAB_DATA_DIR, else {DEFAULT_DATA_DIR})",
    )
    p.add_argument(
        "--limit-train", type=int, default=0, help="use only the first N training images (NOT the article's recipe)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON file for the per-epoch numbers")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    import keras
    import tensorflow as tf

    t_import = time.perf_counter() - t_start
    threads = thread_settings(tf)
    print(f"[keras] tensorflow {tf.__version__}, keras {keras.__version__}, python {platform.python_version()}")
    print(
        "[keras] TF threads (defaults left alone; 0 = chosen by TF at runtime): "
        f"intra_op={threads['intra_op_parallelism_threads']} inter_op={threads['inter_op_parallelism_threads']} "
        f"cpus={threads['os_cpu_count']} env={ {k: v for k, v in threads['env'].items() if v is not None} }"
    )

    t0 = time.perf_counter()
    data_dir = Path(args.data_dir)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir)
    if args.limit_train:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    if args.model == "cnn":
        x_train, x_test = x_train[..., None], x_test[..., None]  # (N, 28, 28, 1)
    t_data = time.perf_counter() - t0
    print(f"[keras] data: {data_dir} train {x_train.shape} test {x_test.shape} ({t_data:.2f}s to load)")

    keras.utils.set_random_seed(args.seed)
    model = build_model(args.model, keras)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    n_params = int(model.count_params())
    if n_params != EXPECTED_PARAMS[args.model]:
        raise SystemExit(
            f"{args.model}: built {n_params:,} parameters, the article's model has {EXPECTED_PARAMS[args.model]:,}"
        )
    # compile()'s jit_compile="auto" picks XLA on accelerators only; recorded so a reader knows.
    print(f"[keras] model {args.model}: {n_params:,} parameters, jit_compile (XLA) = {model.jit_compile}")

    out_path = Path(args.out)
    record = {
        "framework": "keras",
        "model": args.model,
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "threads": threads,
        "params": n_params,
        "jit_compile": bool(model.jit_compile),
        "data_dir": str(data_dir.resolve()),
        "n_train": len(x_train),
        "n_test": len(x_test),
        "limit_train": args.limit_train or None,
        "batch_size": args.batch_size,
        "epochs_requested": args.epochs,
        "seed": args.seed,
        "import_seconds": t_import,
        "data_seconds": t_data,
        "epochs": [],
    }

    def write_record():
        # Written after every epoch (atomically), so an interrupted run still leaves its numbers.
        tmp = out_path.with_name(out_path.name + ".partial")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(out_path)

    class EpochTimer(keras.callbacks.Callback):
        """Splits each epoch into training and the validation pass Keras runs at its end."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t_begin = time.perf_counter()
            self.t_test_begin = self.t_test_end = None

        def on_test_begin(self, logs=None):
            self.t_test_begin = time.perf_counter()

        def on_test_end(self, logs=None):
            self.t_test_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            t_end = time.perf_counter()
            if self.t_test_begin is None or self.t_test_end is None:
                raise RuntimeError(
                    "Keras did not run the validation pass through callbacks; cannot split train/eval time"
                )
            logs = logs or {}
            row = {
                "epoch": epoch + 1,
                "train_loss": float(logs["loss"]),
                "train_accuracy": float(logs["accuracy"]),
                "test_loss": float(logs["val_loss"]),
                "test_accuracy": float(logs["val_accuracy"]),
                "train_seconds": self.t_test_begin - self.t_begin,
                "eval_seconds": self.t_test_end - self.t_test_begin,
                "epoch_seconds": t_end - self.t_begin,
            }
            record["epochs"].append(row)
            write_record()
            print(
                f"[keras] epoch {row['epoch']}/{args.epochs}: train {row['train_seconds']:.2f}s "
                f"eval {row['eval_seconds']:.2f}s  loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}  "
                f"test_loss {row['test_loss']:.4f} test_acc {row['test_accuracy']:.4f}",
                flush=True,
            )

    t_fit = time.perf_counter()
    # verbose=0: no progress bar, whose per-step terminal updates would be timed with the
    # training; the callback above prints one line per epoch instead.
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(x_test, y_test),
        callbacks=[EpochTimer()],
        verbose=0,
    )
    record["fit_seconds"] = time.perf_counter() - t_fit
    write_record()
    print(f"[keras] done: fit {record['fit_seconds']:.1f}s, wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
