"""The plain-PyTorch side of the yardstick loops (cpu_loop.py, gpu_bench.py): Fashion-MNIST read
straight from its IDX files and the article's two networks written out in torch.nn, with no
layerlab import, so a yardstick measures torch alone."""

from __future__ import annotations

import gzip


def load_fashion(data_dir: str, kind: str, *, images: bool):
    """``kind`` ("train" or "t10k") as float pixels in [0, 1] and int64 labels, on the CPU: images
    ``(N, 1, 28, 28)`` for the CNN, or ``(N, 28, 28)`` (28 rows of 28 pixels) for the LSTM."""
    import numpy as np
    import torch

    x = np.frombuffer(gzip.open(f"{data_dir}/{kind}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    y = np.frombuffer(gzip.open(f"{data_dir}/{kind}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    x = torch.tensor(x.reshape(-1, 1, 28, 28) if images else x.reshape(-1, 28, 28))
    return x.float().div_(255), torch.tensor(y.astype(np.int64))


def article_cnn(pool_first: bool = True):
    """Conv(32, 3x3) > ReLU/MaxPool(2) > Conv(64, 3x3) > ReLU/MaxPool(2) > Dense(10), Keras's
    initialisation (glorot-uniform kernels, zero biases). ``pool_first`` puts each max pool before
    its ReLU: they commute, and the ReLU then runs on a quarter of the values."""
    import torch.nn as nn

    def relu_pool():
        return [nn.MaxPool2d(2), nn.ReLU()] if pool_first else [nn.ReLU(), nn.MaxPool2d(2)]

    net = nn.Sequential(
        nn.Conv2d(1, 32, 3), *relu_pool(), nn.Conv2d(32, 64, 3), *relu_pool(), nn.Flatten(), nn.Linear(1600, 10)
    )
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def article_lstm():
    """LSTM(128) over the 28 rows > Dense(10) on its last output (torch's default initialisation)."""
    import torch.nn as nn

    class ArticleLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    return ArticleLSTM()
