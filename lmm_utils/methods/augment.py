"""Recording-condition augmentation of h's training crops, in the log-mel power domain (params `mapping.augment`).

The pairs and U_A were recorded under the benchmark's own mild conditions (data.render: a little room, a little
noise, a tilt), so h learns that any energy is a note: on noisy or reverberant audio it hears notes in the noise
(T_noisy: supervised precision 0.84 at recall 0.96). This module
re-records a training crop under a random generic condition -- a smooth random EQ, a per-band exponential
reverberation tail, and stationary coloured noise at a random SNR -- by working on mel power directly:

    P = exp(x) - floor                           (x: log(mel power + floor), core.features)
    P <- P * eq(band)                            smooth random curve, +-eq_db
    P <- P + wet * (decay_kernel(band) * P)      exponential tail along time, shorter at high bands
    P <- P + noise(band, frame)                  coloured noise at snr dB below the crop's mean power (noise_level)
    x' = log(P + floor)

Everything is additive in power, which is what a second source or a room does to a spectrogram (to the extent
that phases are random). The ranges are generic acoustics (rooms of RT60 0.1-1.5 s, noise from 0 to 30 dB SNR with
a spectral tilt); they share no code or draws with the benchmark's recording conditions (data.render), which only
evaluation reads. The labels do not change: the notes are the same notes. h normalizes each input to its peak
(models.transcriber), so overall gain needs no augmentation.

The noise level: against the crop's own mean power (noise_level "crop", the default) or its whole recording's
("recording": a room is as noisy in a quiet bar as in a loud one, so a soft passage gets relatively more noise and
a crop of rests gets noise at all). Measured (README, "Recording-condition augmentation"), neither beat the other
beyond the seed spread on T_noisy; "crop" stays the default as the behaviour measured first.
Why the Augmenter has its own generator (seeded from the run's seed): switching augmentation on then changes only
the crops' sound, not which crops, self-training labels or dropout masks a run draws, so a run with p > 0 differs
from its p = 0 twin by the augmentation alone. p = 0 (the default) builds no Augmenter and draws nothing, so a run
without augmentation is the run it was before this module existed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.methods.base import params_config

NOISE_LEVELS = ("crop", "recording")


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
    noise_level: str = "crop"  # SNR against the crop's mean power, or the whole recording's ("recording": see below)

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"mapping.augment.p must be in [0, 1], not {self.p}")
        if self.noise_level not in NOISE_LEVELS:
            raise ValueError(f"mapping.augment.noise_level must be one of {NOISE_LEVELS}, not {self.noise_level!r}")
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


def reverb_tail(n: int, n_mels: int, fps: float, cfg: AugmentConfig,
                g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(decay, gain), each (n, n_mels): a frame's power returns k >= 1 frames later as gain * decay**k, energy
    falling 60 dB in each band's RT60 (longest at the lowest band), the tail's total energy wet dB against the
    direct sound's (sum over k of gain * decay**k = wet)."""
    log_lo, log_hi = math.log(cfg.rt60_s[0]), math.log(cfg.rt60_s[1])
    rt_low = torch.exp(_uniform(log_lo, log_hi, n, g))
    ratio = _uniform(*cfg.rt60_high_ratio, n, g)
    band = torch.linspace(0.0, 1.0, n_mels)
    rt = rt_low[:, None] * ratio[:, None] ** band[None, :]  # (n, n_mels): geometric from low to high band
    decay = 10.0 ** (-6.0 / (rt * fps))  # power factor per frame: -60 dB after rt seconds
    wet = 10.0 ** (_uniform(*cfg.wet_db, n, g) / 10.0)
    return decay, wet[:, None] * (1.0 - decay) / decay  # geometric sum: decay / (1 - decay)


def apply_reverb(power: torch.Tensor, decay: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """power (n, n_mels, T) + its tail, by the first-order recursion r[t] = decay * (r[t-1] + P[t-1]): exact (an FFT
    convolution leaked round-off before the first sound) and cheap for crops of ~100 frames."""
    t = power.shape[-1]
    tail = torch.zeros_like(power)
    r = torch.zeros_like(power[..., 0])
    for i in range(1, t):
        r = decay * (r + power[..., i - 1])
        tail[..., i] = r
    return power + gain[:, :, None] * tail


def noise_power(power: torch.Tensor, cfg: AugmentConfig, g: torch.Generator,
                reference: torch.Tensor | None = None) -> torch.Tensor:
    """(n, n_mels, T) coloured noise, its mean power snr dB below `reference` (n,): each crop's recording's mean
    power (Augmenter); the crop's own mean power where not given."""
    n, b, t = power.shape
    tilt = _uniform(*cfg.noise_tilt_db, n, g)
    shape = 10.0 ** (tilt[:, None] * torch.linspace(0.0, 1.0, b)[None, :] / 10.0)  # (n, b)
    shape = shape / shape.mean(1, keepdim=True)
    snr = _uniform(*cfg.snr_db, n, g)
    ref = power.mean((1, 2)) if reference is None else reference.to(power)
    level = ref / 10.0 ** (snr / 10.0)  # (n,)
    jitter = torch.exp(cfg.noise_jitter * torch.randn(n, b, t, generator=g))
    jitter = jitter / jitter.mean((1, 2), keepdim=True)
    return level[:, None, None] * shape[:, :, None] * jitter


def augment_logmel(x: torch.Tensor, cfg: AugmentConfig, feat: FeatureConfig, g: torch.Generator,
                   reference: torch.Tensor | None = None) -> torch.Tensor:
    """(n, n_mels, T) log-mel crops -> the same crops re-recorded (a share cfg.p of them; the rest unchanged to the
    bit), noise set against `reference` (n,) mean powers (noise_power). Draws only from g, nothing when p is 0."""
    if not cfg.on:
        return x
    n, b, t = x.shape
    assert b == feat.n_mels, f"augment_logmel takes log-mel rows only ({feat.n_mels}), got {b}"
    chosen = torch.rand(n, generator=g) < cfg.p
    with_reverb = torch.rand(n, generator=g) < cfg.reverb_p
    with_noise = torch.rand(n, generator=g) < cfg.noise_p
    eq = random_eq(n, b, cfg, g)
    decay, gain = reverb_tail(n, b, feat.fps, cfg, g)
    power = mel_power(x, feat.log_floor) * eq[:, :, None]
    power = torch.where(with_reverb[:, None, None], apply_reverb(power, decay, gain), power)
    if reference is not None:
        reference = reference * eq.mean(1)  # ~ the EQ'd recording (band-unweighted; without the crop's reverb)
    power = torch.where(with_noise[:, None, None], power + noise_power(power, cfg, g, reference), power)
    out = torch.log(power + feat.log_floor).to(x.dtype)
    return torch.where(chosen[:, None, None], out, x)


def mel_power(x: torch.Tensor, floor: float) -> torch.Tensor:
    """log-mel (core.features: log(power + floor)) -> mel power."""
    return (torch.exp(x.float()) - floor).clamp_min(0.0)


AUGMENT_SEED_OFFSET = 0x5EED_A06  # keeps the Augmenter's stream apart from the run's own generators


class Augmenter:
    """Re-records the labelled crops a sampler draws (supervised.CropSampler, steps.Crops): augment_logmel from the
    Augmenter's own generator, the noise set against each crop's whole recording with noise_level "recording"
    (module docstring)."""

    def __init__(self, cfg: AugmentConfig, feat: FeatureConfig, seed: int):
        assert cfg.on, "an Augmenter with p = 0 would draw for nothing: use crop_augmenter, which gives None"
        self.cfg, self.feat = cfg, feat
        self.g = torch.Generator().manual_seed(AUGMENT_SEED_OFFSET + 7919 * int(seed))

    def recording_power(self, x: np.ndarray | torch.Tensor) -> float:
        """Mean mel power of one whole item (C, T): its log-mel rows, before any padding."""
        rows = torch.as_tensor(np.asarray(x[:self.feat.n_mels], np.float32))
        return float(mel_power(rows, self.feat.log_floor).mean())

    def __call__(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Crops (n, n_mels, T) and their recordings' mean powers (n,) -> the crops re-recorded."""
        return augment_logmel(x, self.cfg, self.feat, self.g,
                              reference if self.cfg.noise_level == "recording" else None)


def crop_augmenter(cfg: AugmentConfig, feat: FeatureConfig, seed: int) -> Augmenter | None:
    """The Augmenter a run's samplers share; None when off (p = 0), so that nothing is built or drawn."""
    return Augmenter(cfg, feat, seed) if cfg.on else None


def augment_config(params: dict, lm_rows: bool = False) -> AugmentConfig:
    """mapping.augment (unknown keys refused, as every method section). With lm_rows (h reads LM^A features
    beside the log-mel) it is off: re-recording the log-mel rows would leave the LM rows describing the clean crop,
    and recomputing them per crop would cost LM^A's forward every step. The run's info records the p it used."""
    cfg = params_config(AugmentConfig, params, "augment")
    return AugmentConfig(p=0.0) if lm_rows else cfg
