"""The skeleton both kinds of S share (models/synth.py says what S is): envelopes x templates -> mel power ->
window smear -> EQ -> log(power + floor), and the pieces the kinds build on.

    key k, frame t:  E[k, c, t]   envelope of component c (>= 0), a causal, gated exponential decay
                                  driven by onsets (excitation), velocity (level) and sustain (decay vs
                                  release): E_t = decay_t * E_{t-1} + excitation_t   (`linear_scan`)
    power[m, t]    = sum_{k, c} E[k, c, t] * template[k, c, m]        (polyphony is a sum, as in audio)
    power          = window_kernel (*) power                          (the 2048-sample STFT window smears
                                                                       a frame's energy over +-3 frames)
    logmel         = log(power * exp(eq[piano]) + floor)              (exactly features.log_mel's form)

Silence in (all-zero roll) gives exactly log(floor) out.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.features import FeatureConfig, mel_filterbank
from lmm_utils.core.motion import N_KEYS, PIANO_LOW


class _LinearScan(torch.autograd.Function):
    """a_t = d_t * a_{t-1} + x_t along the first axis of same-shape contiguous tensors (time-major, so
    each step is one contiguous slab). The backward pass is a hand-written reverse scan: autograd
    through a Python loop would keep 2T graph nodes per call."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        out[0] = x[0]
        for t in range(1, x.shape[0]):
            torch.addcmul(x[t], d[t], out[t - 1], out=out[t])
        ctx.save_for_backward(d, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        d, out = ctx.saved_tensors
        grad = grad.contiguous()
        ga = torch.empty_like(grad)  # dL/da_t = g_t + d_{t+1} dL/da_{t+1}
        ga[-1] = grad[-1]
        for t in range(grad.shape[0] - 2, -1, -1):
            torch.addcmul(grad[t], d[t + 1], ga[t + 1], out=ga[t])
        gd = torch.zeros_like(out)
        torch.mul(ga[1:], out[:-1], out=gd[1:])
        return gd, ga


def linear_scan(decay: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Causal first-order recursion along the FIRST axis (time): out_t = decay_t * out_{t-1} + x_t, with
    out_{-1} = 0. decay and x are (T, ...) and broadcast against each other (same number of dims);
    differentiable in both."""
    if decay.dim() != x.dim():
        raise ValueError(f"decay {tuple(decay.shape)} and x {tuple(x.shape)} need the same number of dims")
    # Materialize the broadcast: a contiguous slab per step makes each step ~7x faster than broadcasting
    # inside the loop; autograd's expand backward does the reduction.
    decay, x = (t.contiguous() for t in torch.broadcast_tensors(decay, x))
    return _LinearScan.apply(decay, x)


@lru_cache(maxsize=4)
def window_kernel(cfg: FeatureConfig, half: int = 4) -> np.ndarray:
    """(2*half+1,) share of a centred STFT frame's window power that falls in each neighbouring hop block.

    Roll frame u stands for samples [u*hop - hop/2, u*hop + hop/2) (to_roll rounds onsets to the nearest
    frame). Frame t sees block t+j with weight sum(w^2 over the block) / sum(w^2); index half is j=0.
    Look-ahead is inherent: the centred window starts n_fft/2 samples before its frame.
    """
    w2 = np.hanning(cfg.n_fft + 1)[:-1] ** 2  # periodic Hann, as torch.hann_window
    centre = cfg.n_fft // 2 - cfg.hop_length // 2
    out = np.zeros(2 * half + 1)
    for j in range(-half, half + 1):
        lo, hi = j * cfg.hop_length + centre, (j + 1) * cfg.hop_length + centre
        out[j + half] = w2[max(lo, 0):max(min(hi, cfg.n_fft), 0)].sum()
    return (out / w2.sum()).astype(np.float32)


@lru_cache(maxsize=4)
def sinusoid_mel_table(cfg: FeatureConfig, step_hz: float = 2.0) -> np.ndarray:
    """(n_grid, n_mels) mel power of a unit-amplitude sinusoid at f = i * step_hz in a steady frame of
    features.log_mel -- the mel 'footprint' of one partial, looked up (and interpolated) by frequency."""
    n = cfg.n_fft
    window = np.hanning(n + 1)[:-1]
    freqs = np.arange(0.0, cfg.sample_rate / 2, step_hz)
    t = np.arange(n) / cfg.sample_rate
    fb = mel_filterbank(cfg)
    out = np.empty((len(freqs), cfg.n_mels), np.float32)
    for i in range(0, len(freqs), 512):  # chunks: 512 x 2048 signals at a time
        f = freqs[i:i + 512, None]
        spec = np.fft.rfft(np.cos(2 * np.pi * f * t) * window, axis=-1)
        out[i:i + 512] = (np.abs(spec) ** 2) @ fb.T
    return out


def key_pitch() -> torch.Tensor:
    """(88,) normalized pitch (midi - 64.5) / 44: -1 at A0, +1 at C8."""
    return (torch.arange(N_KEYS, dtype=torch.float32) + PIANO_LOW - 64.5) / 43.5


def key_f0() -> torch.Tensor:
    return 440.0 * 2.0 ** ((torch.arange(N_KEYS, dtype=torch.float64) + PIANO_LOW - 69) / 12.0)


def harmonic_log_templates(feat: FeatureConfig, channels: int) -> torch.Tensor:
    """(88, channels, n_mels) log mel-power templates of harmonic series up to fmax, one brightness per
    channel (partial power ~ n^slope, slopes from -4 to -1), peak 0: a data-free start for free templates."""
    table = torch.from_numpy(sinusoid_mel_table(feat))
    n = torch.arange(1, 129).float()
    f = key_f0().float()[:, None] * n  # (88, 128 harmonics)
    idx = (f / 2.0).round().long().clamp(max=table.shape[0] - 1)
    g = table[idx] * (f < feat.fmax).unsqueeze(-1)  # (88, H, M)
    slopes = torch.linspace(-4.0, -1.0, channels) if channels > 1 else torch.tensor([-2.5])
    w = n[None, :] ** slopes[:, None]  # (C, H)
    t = torch.einsum("cn,knm->kcm", w, g)
    t = t / t.amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12)  # level comes from the excitation
    # Log parametrization: Adam then moves every bin in relative terms, also the ones that start tiny.
    return torch.log(t.clamp(min=1e-6))


class SynthBase(nn.Module):
    """Common skeleton: envelopes x templates -> mel power -> window smear -> EQ -> log(power + floor).

    Pianos: parameters that differ between the fitting pianos have a leading piano axis (P, ...);
    `per_piano` appends their mean as row P, the *average piano* (every piano's parameters averaged in
    the log / logit domain they live in), used when the piano is unknown (None or -1).

    Subclasses implement `envelopes(onset, velocity, sustain, keys, pianos)`: time-major rows (T, R) of
    key `keys[r]` on piano `pianos[r]` (0..P, P = average) -> (T, R, C) envelopes >= 0, and
    `templates()` -> (P+1, 88, C, n_mels) mel-power templates >= 0.
    """

    kind: str = ""
    takes_sounding = True  # forward's `sounding` (methods.losses.render_g asks)

    def __init__(self, cfg, feat: FeatureConfig):
        super().__init__()
        self.cfg, self.feat = cfg, feat
        self.n_pianos = max(1, int(cfg.n_pianos))
        self.register_buffer("window", torch.from_numpy(window_kernel(feat)), persistent=False)
        # EQ in log-power per piano and mel bin: what the recording chain / sample set adds on top.
        self.eq = nn.Parameter(torch.zeros(self.n_pianos, feat.n_mels))

    @staticmethod
    def per_piano(table: torch.Tensor) -> torch.Tensor:
        """(P, ...) -> (P+1, ...): row P = the average piano."""
        return torch.cat([table, table.mean(0, keepdim=True)], dim=0)

    def piano_index(self, piano: torch.Tensor | int | None, batch: int, device=None) -> torch.Tensor:
        """(B,) row into per_piano tables: the piano's own, or P (average) for None / -1 / unknown."""
        if piano is None:
            return torch.full((batch,), self.n_pianos, dtype=torch.long, device=device)
        piano = torch.as_tensor(piano, device=device).long().reshape(-1).expand(batch)
        return torch.where((piano >= 0) & (piano < self.n_pianos), piano, self.n_pianos)

    def envelopes(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor,
                  keys: torch.Tensor, pianos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def templates(self) -> torch.Tensor:
        raise NotImplementedError

    def mel_power(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor,
                  piano: torch.Tensor | None = None, sounding: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 88, T) x3 -> (B, n_mels, T) linear mel power (before the log). sounding: (B, 88) bool, the keys the
        caller's roll can move (e.g. the keys of a score's notes); the others must be all-zero and get no gradient."""
        b, k, t = onset.shape
        pidx = self.piano_index(piano, b, onset.device)  # (B,)
        # Time-major rows (one per excerpt and key): each recursion step is then one contiguous slab.
        o, v, s = (x.permute(2, 0, 1).reshape(t, b * k) for x in (onset, velocity, sustain))
        keys = torch.arange(k, device=onset.device).repeat(b)
        prow = pidx.repeat_interleave(k)
        # A key never struck in an excerpt is silent there (every envelope is driven by onsets). When no
        # gradient w.r.t. the roll is asked for (fitting S), skip those rows: 2-3x less work on typical
        # data. With gradients, every row stays, since d(sound)/d(onset) of a silent key is not zero.
        # A caller that knows which keys its roll can move (sounding) skips the rest with gradients too.
        struck = None
        if sounding is not None:
            struck = sounding.reshape(-1).nonzero().squeeze(1)
            if len(struck) == b * k:
                struck = None
        elif not (onset.requires_grad or velocity.requires_grad or sustain.requires_grad):
            struck = (o > 0).any(0).nonzero().squeeze(1)
            if len(struck) == b * k:
                struck = None
        tmpl = self.templates()  # (P+1, 88, C, M)
        c, m = tmpl.shape[2:]
        if struck is None:
            env = self.envelopes(o, v, s, keys, prow).reshape(t, b, k * c).transpose(0, 1)  # (B, T, 88*C)
            power = torch.bmm(env, tmpl[pidx].reshape(b, k * c, m)).transpose(0, 1)  # (T, B, M)
        else:
            rows = self.envelopes(o[:, struck], v[:, struck], s[:, struck], keys[struck], prow[struck])
            # Per excerpt, only its struck keys' templates: the matmul shrinks with the rows.
            bounds = torch.searchsorted(struck // k, torch.arange(b + 1, device=struck.device)).tolist()
            power = torch.stack([
                rows[:, lo:hi].reshape(t, -1) @ tmpl[pidx[i], keys[struck[lo:hi]]].reshape(-1, m) if hi > lo
                else tmpl.new_zeros(t, m)
                for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
            ], dim=1)  # (T, B, M)
        # Window smear: out[t] = sum_j h[j] * power[t + j]; shifted slices beat a 1-channel conv1d here.
        h = self.window.to(power.dtype)
        half = (h.numel() - 1) // 2
        padded = F.pad(power, (0, 0, 0, 0, half, half))
        smeared = sum(h[i] * padded[i:i + t] for i in range(h.numel()) if float(h[i]) != 0.0)
        out = smeared * torch.exp(self.per_piano(self.eq)[pidx])  # (T, B, M)
        return out.permute(1, 2, 0)

    def forward(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor,
                piano: torch.Tensor | None = None, sounding: torch.Tensor | None = None) -> torch.Tensor:
        """Soft motion roll -> log-mel.

        onset, velocity, sustain: (B, 88, T) or (88, T) in [0, 1] -- velocity/127 on onset frames, sustain =
        key held or pedal prolonging it (pass the key-down 'frame' roll when there is no pedal information).
        Returns (B, n_mels, T) (or (n_mels, T)) = log(mel power + floor), comparable to features.log_mel.
        """
        squeeze = onset.dim() == 2
        if squeeze:
            onset, velocity, sustain = onset[None], velocity[None], sustain[None]
        out = torch.log(self.mel_power(onset, velocity, sustain, piano, sounding) + self.feat.log_floor)
        return out[0] if squeeze else out

    def synth_roll(self, roll: dict, piano: torch.Tensor | None = None) -> torch.Tensor:
        """Same as forward, from a dict of (B, 88, T) tensors or numpy arrays as motion.to_roll makes."""
        hold = roll["sustain"] if "sustain" in roll else roll["frame"]
        t = [torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=self.eq.dtype)
             for x in (roll["onset"], roll["velocity"], hold)]
        return self(*t, piano=piano)


def logit(p: float) -> float:
    """log(p / (1 - p)): a probability as the logit a sigmoid-parametrized decay starts from."""
    return math.log(p / (1 - p))


__all__ = [
    "SynthBase", "linear_scan", "window_kernel", "sinusoid_mel_table", "key_pitch", "key_f0", "harmonic_log_templates",
    "logit",
]
