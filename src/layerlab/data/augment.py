"""Training augmentation, applied to whole batches on the device (:class:`Augment`), with every
random number drawn from (seed, epoch, sample index) by a counter-based hash (:func:`uniform`):
no random stream is consumed, so a batch is augmented the same way whether the epoch ran
through, was resumed mid-epoch, was read by workers or was split over ranks (each rank augments
its samples as the single process would). Evaluation and predict never see it: only the training
source is wrapped (:class:`AugmentedSource`).

What each operation does is in :mod:`layerlab.augmentspec` (the configuration, torch-free). Plain
torch ops (``grid_sample`` for the affine, index arithmetic for crops and erasing), as airbench
flips and translates whole batches: no per-sample Python, no dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..augmentspec import canonical, parse
from ..errors import ConfigError
from . import Split

_M = 0x7FFFFFFF  # values stay below 2**31, so products with the 26-bit constant fit in int64


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 31-bit integer hash (the "lowbias" multiply-xorshift), elementwise on int64."""
    h = (((h >> 16) ^ h) * 0x45D9F3B) & _M
    h = (((h >> 16) ^ h) * 0x45D9F3B) & _M
    return (h >> 16) ^ h


def _key(seed: int, epoch: int, index: torch.Tensor, stream: int) -> torch.Tensor:
    base = torch.tensor(seed & _M, dtype=torch.int64)
    base = _mix((_mix(base) + (epoch & _M)) & _M)
    base = _mix((base + stream * 7919) & _M)
    return _mix((base.to(index.device) + index.to(torch.int64)) & _M)


def uniform(seed: int, epoch: int, index: torch.Tensor, stream: int, extra: int | None = None) -> torch.Tensor:
    """Uniform numbers in [0, 1), one per element of ``index`` (sample indices), a function of
    (``seed``, ``epoch``, index, ``stream``) alone; with ``extra``, a trailing axis of ``extra``
    numbers per sample (noise per value)."""
    h = _key(seed, epoch, index, stream)
    if extra is not None:
        k = _mix(torch.arange(extra, device=h.device, dtype=torch.int64) + 0x3C6EF372)
        h = _mix(h[..., None] ^ k)
    return (h & 0xFFFFFF).to(torch.float32) / float(1 << 24)


def _signed(u: torch.Tensor) -> torch.Tensor:
    return 2 * u - 1


@dataclass(frozen=True)
class Augment:
    """Augmentation of training batches: ``ops`` (:func:`layerlab.augmentspec.parse`) for samples
    of ``kind`` (``image`` or ``sequence``) with ``channels`` (images)."""

    ops: tuple[tuple[str, float], ...]
    kind: str
    channels: int = 1

    @classmethod
    def from_config(cls, text, spec, where: str = "--augment") -> Augment | None:
        """The augmentation ``text`` asks for, checked against the data's input ``spec``: image
        operations for images, sequence ones for float sequences, colour for RGB only."""
        ops = parse(text, where)
        if not ops:
            return None
        kind = spec.kind
        if kind not in ("image", "sequence"):
            raise ConfigError(f"{where}: augmentation applies to images and float sequences, not {kind} data")
        from ..augmentspec import OPS

        wrong = [k for k in ops if OPS[k][0] != kind]
        if wrong:
            verb = "does" if len(wrong) == 1 else "do"
            raise ConfigError(
                f"{where}: {', '.join(wrong)} {verb} not apply to {kind} data of shape {tuple(spec.shape)}"
            )
        channels = int(spec.shape[0]) if kind == "image" else 1
        if "color" in ops and channels != 3:
            raise ConfigError(f"{where}: color jitter needs RGB images; these have {channels} channel(s)")
        if kind == "image" and len(spec.shape) != 3:
            raise ConfigError(f"{where}: image augmentation takes 2-d images (C, H, W), not {tuple(spec.shape)}")
        if kind == "sequence" and "window" in ops and spec.variable_length:
            raise ConfigError(f"{where}: window crops need sequences of one length")
        return cls(tuple(ops.items()), kind, channels)

    @property
    def text(self) -> str:
        return canonical(dict(self.ops)) or ""

    def to_dict(self) -> dict:
        return {"ops": dict(self.ops), "text": self.text, "drawn_from": "seed, epoch, sample index"}

    def __call__(self, x: torch.Tensor, index: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
        """``x`` (a batch of samples ``index``) augmented for epoch ``epoch`` of a run of ``seed``."""
        if len(x) == 0:
            return x
        ops = dict(self.ops)
        index = index.to(x.device)
        if self.kind == "image":
            return self._image(x, index, ops, seed, epoch)
        return self._sequence(x, index, ops, seed, epoch)

    # -- images (B, C, H, W) -------------------------------------------------------------------
    def _image(self, x, index, ops, seed, epoch):
        B, _, H, W = x.shape
        u = lambda s: uniform(seed, epoch, index, s)  # noqa: E731
        if "crop" in ops:  # pad with zeros, then a random H x W window of the padded image
            p = int(ops["crop"])
            dy = torch.floor(u(1) * (2 * p + 1)).long().clamp_(max=2 * p)
            dx = torch.floor(u(2) * (2 * p + 1)).long().clamp_(max=2 * p)
            xp = F.pad(x, (p, p, p, p))
            rows = torch.arange(H, device=x.device)[None] + dy[:, None]  # (B, H)
            cols = torch.arange(W, device=x.device)[None] + dx[:, None]  # (B, W)
            b = torch.arange(B, device=x.device)[:, None, None]
            x = xp[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if "flip" in ops:
            flip = (u(3) < ops["flip"])[:, None, None, None]
            x = torch.where(flip, x.flip(-1), x)
        if "rotate" in ops or "zoom" in ops:
            angle = _signed(u(4)) * math.radians(ops.get("rotate", 0.0))
            zoom = 1 + _signed(u(5)) * ops.get("zoom", 0.0)
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            zero = torch.zeros_like(cos)
            theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if "color" in ops:  # contrast about each image's mean, then brightness
            f = ops["color"]
            contrast = (1 + _signed(u(6)) * f)[:, None, None, None]
            bright = (1 + _signed(u(7)) * f)[:, None, None, None]
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * contrast + mean) * bright
        if "erase" in ops:  # a rectangle of 2% to 25% of the image, aspect 1/3 to 3, set to 0
            do = u(8) < ops["erase"]
            area = (0.02 + u(9) * 0.23) * H * W
            aspect = torch.exp(_signed(u(10)) * math.log(3))
            h = torch.sqrt(area * aspect).round().long().clamp(1, H)
            w = torch.sqrt(area / aspect).round().long().clamp(1, W)
            y0 = torch.floor(u(11) * (H - h + 1).float()).long()
            x0 = torch.floor(u(12) * (W - w + 1).float()).long()
            r = torch.arange(H, device=x.device)[None]
            c = torch.arange(W, device=x.device)[None]
            in_rows = (r >= y0[:, None]) & (r < (y0 + h)[:, None])  # (B, H)
            in_cols = (c >= x0[:, None]) & (c < (x0 + w)[:, None])  # (B, W)
            mask = in_rows[:, :, None] & in_cols[:, None, :] & do[:, None, None]
            x = x.masked_fill(mask[:, None], 0.0)
        return x

    # -- sequences (B, T, F) -------------------------------------------------------------------
    def _sequence(self, x, index, ops, seed, epoch):
        B, T, Fe = x.shape
        if "window" in ops:  # a random window of the sequence, stretched back to T steps
            L = max(2, min(T, round(ops["window"] * T)))
            start = torch.floor(uniform(seed, epoch, index, 21) * (T - L + 1)).long().clamp_(max=T - L)
            steps = start[:, None] + torch.arange(L, device=x.device)[None]  # (B, L)
            win = torch.gather(x, 1, steps[:, :, None].expand(B, L, Fe))
            x = F.interpolate(win.transpose(1, 2), size=T, mode="linear", align_corners=True).transpose(1, 2)
        if "scale" in ops:  # one factor per sample and feature
            factor = 1 + _signed(uniform(seed, epoch, index, 22, extra=Fe)) * ops["scale"]  # (B, F)
            x = x * factor[:, None, :].to(x.dtype)
        if "noise" in ops:  # Gaussian noise per value, by Box-Muller from two uniform numbers
            u1 = uniform(seed, epoch, index, 23, extra=T * Fe)
            u2 = uniform(seed, epoch, index, 24, extra=T * Fe)
            z = torch.sqrt(-2 * torch.log1p(-u1)) * torch.cos(2 * math.pi * u2)
            x = x + ops["noise"] * z.reshape(B, T, Fe).to(x.dtype)
        return x

    def source(self, inner):
        """``inner`` (a training source) with its batches augmented."""
        return AugmentedSource(inner, self)


class AugmentedSource:
    """A training source whose epochs are augmented by :class:`Augment`; held-out data (``ordered``)
    comes as it is."""

    def __init__(self, inner, augment: Augment):
        self.inner, self.augment = inner, augment

    def __len__(self) -> int:
        return len(self.inner)

    def steps(self, batch_size: int) -> int:
        return self.inner.steps(batch_size)

    def epoch(self, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0):
        from ..training.sources import Step

        for st in self.inner.epoch(batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size, start=start):
            b = st.batch
            x = self.augment(b.x, st.index, seed, epoch)
            yield Step(Split(x, b.y, b.lengths), st.size, st.index)

    def ordered(self, batch_size: int, *, rank: int = 0, world_size: int = 1):
        return self.inner.ordered(batch_size, rank=rank, world_size=world_size)

    def fingerprint(self) -> dict:
        return self.inner.fingerprint()
