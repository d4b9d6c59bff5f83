"""Recurrent tests run single-threaded: their tensors are tiny, and on a shared 2-core machine two
OpenMP threads per process spin against other processes (measured: 30x slower per step)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
