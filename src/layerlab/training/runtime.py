"""What a process sets up before it trains: the device, the seeds, CPU threads, glibc's memory
reuse, whether bf16 runs in hardware, and autocast."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from ..errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU, or ``mps`` where torch reports no
    Apple GPU, is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():  # Apple's GPU, where torch reports it
        raise ConfigError("--device mps was asked for but torch reports no MPS device here; use --device cpu or auto")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; expected cpu, cuda, mps or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int, threads: int | None = None):
    """Run the block as training starts (every generator seeded with ``seed``, ``threads`` CPU
    threads: torch's orthogonal initialisation depends on it), then put the caller's random
    states and thread count back: rebuilding a run's initial model must not change what the caller
    draws next."""
    py, nps, n_threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        try:
            if threads:
                torch.set_num_threads(threads)
            seed_everything(seed)
            yield
        finally:
            random.setstate(py)
            np.random.set_state(nps)
            torch.set_num_threads(n_threads)


def cpu_bf16_native(cpuinfo: str | None = None) -> bool:
    """True when this CPU computes bf16 in hardware (x86 AVX512-BF16 or AMX; Arm's BF16), read from
    ``/proc/cpuinfo`` (or ``cpuinfo``, for tests). Elsewhere bf16 autocast is emulated by oneDNN
    and slower than fp32, so ``--amp`` on such a CPU trains in fp32 (with a warning)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(value.split()))
    return False


_MEMORY_KEPT = False


def keep_cpu_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 32 MB for reuse instead of handing them back to
    the kernel (``mallopt``: ``M_MMAP_THRESHOLD`` 32 MB, ``M_TRIM_THRESHOLD`` 1 GB), once per process.

    A CPU training step allocates and frees the same large activation and gradient tensors every
    step (the article CNN's first feature maps are 11 MB at batch 128). With glibc's defaults each
    is a fresh ``mmap`` whose pages fault in on first touch, which made a step up to twice as slow
    in short runs (benchmarks/README.md); tcmalloc and jemalloc, which PyTorch's CPU performance
    guides preload for the same reason, keep such memory too. True when it took effect; False
    elsewhere (not Linux with glibc), where nothing changes."""
    global _MEMORY_KEPT
    if _MEMORY_KEPT:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        _MEMORY_KEPT = bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False
    return _MEMORY_KEPT


def autocast(device: torch.device, enabled: bool, cache: bool = True):
    """bf16 autocast on ``device`` when ``enabled``, else nothing."""
    if not enabled:
        return contextlib.nullcontext()
    # a CUDA graph must not keep autocast's cast weights from capture: they would go stale
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
