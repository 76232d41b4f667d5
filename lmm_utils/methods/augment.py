"""Recording-condition augmentation of h's training crops, in the log-mel power domain (params `mapping.augment`).

The pairs and U_A were all recorded in a few quiet rooms, so h learns that any energy is a note: on noisy or
reverberant audio it hears notes in the noise (T_noisy: supervised precision 0.84 at recall 0.96). This module
re-records a training crop under a random generic condition -- a smooth random EQ, a per-band exponential
reverberation tail, and stationary coloured noise at a random SNR -- by working on mel power directly:

    P = exp(x) - floor                           (x: log(mel power + floor), core.features)
    P <- P * eq(band)                            smooth random curve, +-eq_db
    P <- P + wet * (decay_kernel(band) * P)      exponential tail along time, shorter at high bands
    P <- P + noise(band, frame)                  coloured noise spectrum at snr dB below the crop's mean power
    x' = log(P + floor)

Everything is additive in power, which is what a second source or a room does to a spectrogram (to the extent
that phases are random). The ranges are generic acoustics (rooms of RT60 0.1-1.5 s, noise from 0 to 30 dB SNR with
a spectral tilt), drawn from the training loop's generator; they share no code or draws with the benchmark's
recording conditions (data.render), which only evaluation reads. The labels do not change: the notes are the
same notes. h normalizes each input to its peak (models.transcriber), so overall gain needs no augmentation.

p = 0 (the default) draws nothing, so a run without augmentation is the run it was before this module existed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.methods.base import params_config


@dataclass(frozen=True)
class AugmentConfig:
    p: float = 0.0  # share of labelled crops re-recorded (0: off)
    eq_db: float = 6.0  # largest excursion of the random EQ curve
    eq_terms: int = 3  # cosine terms over the mel axis: smooth curves, no narrow notches
    reverb_p: float = 0.7  # of the augmented crops, the share that get a reverberation tail
    rt60_s: tuple[float, float] = (0.1, 1.5)  # reverberation time at the lowest band (log-uniform)
    rt60_high_ratio: tuple[float, float] = (0.3, 1.0)  # RT60 at the top band / at the lowest (air absorbs highs)
    wet_db: tuple[float, float] = (-15.0, 3.0)  # tail power against the direct sound (direct-to-reverberant ratio)
    noise_p: float = 0.8  # of the augmented crops, the share with added noise
    snr_db: tuple[float, float] = (0.0, 30.0)  # crop mean power / noise mean power (uniform in dB)
    noise_tilt_db: tuple[float, float] = (-12.0, 6.0)  # noise level at the top band against the lowest (pink-ish..white)
    noise_jitter: float = 0.5  # std of the noise's log-power fluctuation per frame and band

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"mapping.augment.p must be in [0, 1], not {self.p}")
        for name in ("rt60_s", "rt60_high_ratio", "wet_db", "snr_db", "noise_tilt_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"mapping.augment.{name} is a (low, high) range, not ({lo}, {hi})")
        if self.rt60_s[0] <= 0 or self.rt60_high_ratio[0] <= 0:
            raise ValueError("mapping.augment.rt60_s and rt60_high_ratio must be positive")

    @property
    def on(self) -> bool:
        return self.p > 0


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def random_eq(n: int, n_mels: int, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """(n, n_mels) power gains: a sum of eq_terms cosines over the band index, scaled so that its largest
    excursion is uniform in [0, eq_db] dB."""
    pos = torch.linspace(0.0, math.pi, n_mels)
    k = torch.arange(1, cfg.eq_terms + 1, dtype=torch.float32)
    coef = torch.randn(n, cfg.eq_terms, generator=g)
    phase = 2 * math.pi * torch.rand(n, cfg.eq_terms, generator=g)
    curve = (coef[:, :, None] * torch.cos(k[None, :, None] * pos[None, None, :] + phase[:, :, None])).sum(1)
    curve = curve / curve.abs().amax(1, keepdim=True).clamp_min(1e-6)
    db = curve * _uniform(0.0, cfg.eq_db, n, g)[:, None]
    return 10.0 ** (db / 10.0)


def reverb_kernel(n: int, n_mels: int, n_frames: int, fps: float, cfg: AugmentConfig,
                  g: torch.Generator) -> torch.Tensor:
    """(n, n_mels, n_frames) causal power kernels: the wet tail's share of a frame's power found k frames later
    (k >= 1; the direct sound is kept apart), energy falling 60 dB in each band's RT60."""
    log_lo, log_hi = math.log(cfg.rt60_s[0]), math.log(cfg.rt60_s[1])
    rt_low = torch.exp(_uniform(log_lo, log_hi, n, g))
    ratio = _uniform(*cfg.rt60_high_ratio, n, g)
    band = torch.linspace(0.0, 1.0, n_mels)
    rt = rt_low[:, None] * ratio[:, None] ** band[None, :]  # (n, n_mels): geometric from low to high band
    decay_per_frame = 10.0 ** (-6.0 / (rt * fps))  # power factor per frame: -60 dB after rt seconds
    k = torch.arange(1, n_frames + 1, dtype=torch.float32)
    kernel = decay_per_frame[:, :, None] ** k[None, None, :]
    kernel = kernel / kernel.sum(-1, keepdim=True)  # unit tail energy; the wet level sets it
    wet = 10.0 ** (_uniform(*cfg.wet_db, n, g) / 10.0)
    return kernel * wet[:, None, None]


def apply_reverb(power: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """power (n, n_mels, T) + its tail: causal convolution along time with kernel (n, n_mels, T) (kernel[..., 0] is
    the delay of one frame)."""
    n, b, t = power.shape
    size = 2 * t  # zero-padded FFT: linear, not circular, convolution
    spec = torch.fft.rfft(power, size) * torch.fft.rfft(kernel, size)
    tail = torch.fft.irfft(spec, size)[..., :t]
    tail = torch.nn.functional.pad(tail, (1, 0))[..., :t]  # one frame of delay
    return power + tail.clamp_min(0.0)


def noise_power(power: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """(n, n_mels, T) coloured noise, its mean power snr dB below the crop's mean power."""
    n, b, t = power.shape
    tilt = _uniform(*cfg.noise_tilt_db, n, g)
    shape = 10.0 ** (tilt[:, None] * torch.linspace(0.0, 1.0, b)[None, :] / 10.0)  # (n, b)
    shape = shape / shape.mean(1, keepdim=True)
    snr = _uniform(*cfg.snr_db, n, g)
    level = power.mean((1, 2)) / 10.0 ** (snr / 10.0)  # (n,)
    jitter = torch.exp(cfg.noise_jitter * torch.randn(n, b, t, generator=g))
    jitter = jitter / jitter.mean((1, 2), keepdim=True)
    return level[:, None, None] * shape[:, :, None] * jitter


def augment_logmel(x: torch.Tensor, cfg: AugmentConfig, feat: FeatureConfig, g: torch.Generator) -> torch.Tensor:
    """(n, n_mels, T) log-mel crops -> the same crops re-recorded (a share cfg.p of them; the rest unchanged).
    Draws only from g, and nothing when cfg.p is 0."""
    if not cfg.on:
        return x
    n, b, t = x.shape
    assert b == feat.n_mels, f"augment_logmel takes log-mel rows only ({feat.n_mels}), got {b}"
    chosen = torch.rand(n, generator=g) < cfg.p
    with_reverb = torch.rand(n, generator=g) < cfg.reverb_p
    with_noise = torch.rand(n, generator=g) < cfg.noise_p
    eq = random_eq(n, b, cfg, g)
    kernel = reverb_kernel(n, b, t, feat.fps, cfg, g)
    power = (torch.exp(x.float()) - feat.log_floor).clamp_min(0.0) * eq[:, :, None]
    power = torch.where(with_reverb[:, None, None], apply_reverb(power, kernel), power)
    power = torch.where(with_noise[:, None, None], power + noise_power(power, cfg, g), power)
    out = torch.log(power + feat.log_floor).to(x.dtype)
    return torch.where(chosen[:, None, None], out, x)


CropAugmenter = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (crops, generator) -> crops


def crop_augmenter(cfg: AugmentConfig, feat: FeatureConfig) -> CropAugmenter | None:
    """What steps.Crops applies to its labelled crops: x, g -> augment_logmel(x, cfg, feat, g); None when off."""
    return partial(_augment_crops, cfg=cfg, feat=feat) if cfg.on else None


def _augment_crops(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig, feat: FeatureConfig) -> torch.Tensor:
    return augment_logmel(x, cfg, feat, g)


def augment_config(params: dict, lm_rows: bool = False) -> AugmentConfig:
    """mapping.augment (unknown keys refused, as every method section). With lm_rows (h reads LM^A features
    beside the log-mel) it is off: re-recording the log-mel rows would leave the LM rows describing the clean crop,
    and recomputing them per crop would cost LM^A's forward every step. The run's info records the p it used."""
    cfg = params_config(AugmentConfig, params, "augment")
    return AugmentConfig(p=0.0) if lm_rows else cfg
