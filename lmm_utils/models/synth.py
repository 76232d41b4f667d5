"""S: M -> A, the differentiable piano. A motion roll (onset, velocity, sustain per key and frame, soft
values in [0, 1]) -> log-mel frames at the hop of features.py, so S(m) and a recording compare directly.

Both kinds share one skeleton that works in the mel-*power* domain, which is what makes them fast:

    key k, frame t:  E[k, c, t]   envelope of component c (>= 0), a causal, gated exponential decay
                                  driven by onsets (excitation), velocity (level) and sustain (decay vs
                                  release): E_t = decay_t * E_{t-1} + excitation_t   (`linear_scan`)
    power[m, t]    = sum_{k, c} E[k, c, t] * template[k, c, m]        (polyphony is a sum, as in audio)
    power          = window_kernel (*) power                          (the 2048-sample STFT window smears
                                                                       a frame's energy over +-3 frames)
    logmel         = log(power * exp(eq[piano]) + floor)              (exactly features.log_mel's form)

Silence in (all-zero roll) gives exactly log(floor) out. The kinds differ in what produces the templates,
excitations and decays:

* `additive` -- an interpretable DDSP-style piano with a handful of physical parameters: partials at
  n * f0 * sqrt(1 + B n^2) (inharmonicity B rising with pitch), partial power falling as n^slope with a
  velocity-dependent slope (louder = brighter), level ~ velocity^gamma, two decay stages (prompt sound /
  aftersound, higher partials leaning to the fast one) with pitch-dependent time constants, a release
  time after the key and pedal let go, re-strike damping, and a short broadband hammer knock. Per-key
  voicing (level, brightness, decay offsets) and a mel EQ absorb what the physics does not
  (sample-based soundfonts differ key by key).
* `neural` -- the same superposition, but every piece is learned freely: per-key templates, a smooth
  velocity response per key and channel (coefficients from a key-embedding MLP), and a causal conv over
  (onset, sustain) that sets per-frame decays (a small selective state-space layer shared by all keys).

Pianos: S is fitted on several benchmark pianos at once. What differs between them (the additive kind's
voicing, knock level and EQ; the neural kind's templates, levels, decays and EQ) has one row per piano;
`piano` ((B,) long, optional) picks a row, and None or -1 picks the *average piano*, the mean of the rows
-- what downstream stages use when they do not know the instrument.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.features import FeatureConfig, mel_filterbank
from lmm_utils.core.motion import N_KEYS, PIANO_LOW

KINDS = ("additive", "neural")


# ---------------------------------------------------------------- shared pieces

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
                  piano: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 88, T) x3 -> (B, n_mels, T) linear mel power (before the log)."""
        b, k, t = onset.shape
        pidx = self.piano_index(piano, b, onset.device)  # (B,)
        # Time-major rows (one per excerpt and key): each recursion step is then one contiguous slab.
        o, v, s = (x.permute(2, 0, 1).reshape(t, b * k) for x in (onset, velocity, sustain))
        keys = torch.arange(k, device=onset.device).repeat(b)
        prow = pidx.repeat_interleave(k)
        # A key never struck in an excerpt is silent there (every envelope is driven by onsets). When no
        # gradient w.r.t. the roll is asked for (fitting S), skip those rows: 2-3x less work on typical
        # data. With gradients, every row stays, since d(sound)/d(onset) of a silent key is not zero.
        struck = None
        if not (onset.requires_grad or velocity.requires_grad or sustain.requires_grad):
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
                piano: torch.Tensor | None = None) -> torch.Tensor:
        """Soft motion roll -> log-mel.

        onset, velocity, sustain: (B, 88, T) or (88, T) in [0, 1] -- velocity/127 on onset frames, sustain =
        key held or pedal prolonging it (pass the key-down 'frame' roll when there is no pedal information).
        Returns (B, n_mels, T) (or (n_mels, T)) = log(mel power + floor), comparable to features.log_mel.
        """
        squeeze = onset.dim() == 2
        if squeeze:
            onset, velocity, sustain = onset[None], velocity[None], sustain[None]
        out = torch.log(self.mel_power(onset, velocity, sustain, piano) + self.feat.log_floor)
        return out[0] if squeeze else out

    def synth_roll(self, roll: dict, piano: torch.Tensor | None = None) -> torch.Tensor:
        """Same as forward, from a dict of (B, 88, T) tensors or numpy arrays as motion.to_roll makes."""
        hold = roll["sustain"] if "sustain" in roll else roll["frame"]
        t = [torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=self.eq.dtype)
             for x in (roll["onset"], roll["velocity"], hold)]
        return self(*t, piano=piano)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ---------------------------------------------------------------- kind: additive

@dataclass
class AdditiveConfig:
    n_partials: int = 96  # A0 needs ~96 partials to reach 2.6 kHz; partials above fmax are dropped
    n_stages: int = 2  # decay stages per partial: prompt sound and aftersound
    n_pianos: int = 4  # fitting pianos: each gets its own voicing, knock level and EQ
    velocity_anchors: int = 2  # templates at velocities linspace(0, 1, anchors), interpolated in between

    @classmethod
    def from_params(cls, section: dict | None) -> "AdditiveConfig":
        section = section or {}
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section})

    @classmethod
    def tiny(cls) -> "AdditiveConfig":
        return cls(n_partials=8, n_stages=2, n_pianos=2, velocity_anchors=2)


class AdditiveSynth(SynthBase):
    """Harmonic partials with inharmonicity, velocity-dependent level and brightness, two-stage decay,
    release and re-strike damping; every parameter below is a number with a physical meaning."""

    kind = "additive"

    def __init__(self, cfg: AdditiveConfig, feat: FeatureConfig | None = None):
        super().__init__(cfg, feat or FeatureConfig())
        fps = self.feat.fps
        self.register_buffer("pitch", key_pitch(), persistent=False)
        self.register_buffer("f0", key_f0().float(), persistent=False)
        table = sinusoid_mel_table(self.feat)
        self.register_buffer("mel_table", torch.from_numpy(table), persistent=False)
        self.table_step = 2.0
        p = nn.Parameter
        n_p = self.n_pianos
        # Level (log power) at velocity 1 as a quadratic in pitch, + per-key residual; power ~ (v + v0)^gamma
        # (FluidSynth's default velocity->attenuation curve makes amplitude ~ v^2, i.e. power ~ v^4).
        self.level = p(torch.tensor([-9.0, 0.0, 0.0]))
        self.gamma = p(torch.tensor(4.0))
        self.log_v0 = p(torch.tensor(math.log(0.02)))
        # Partial power ~ n^slope, slope = s0 + s_v * v + s_p * pitch: louder notes are brighter.
        self.slope = p(torch.tensor([-3.0, 1.5, 0.0]))
        # Per-piano, per-key voicing: level, brightness (slope offset) and decay-time (log) offsets, as a
        # technician would voice each key; sample-based soundfonts change all three from sample to sample.
        # The physics above is shared by all pianos; the voicing is what tells them apart.
        self.key_gain = p(torch.zeros(n_p, N_KEYS))
        self.key_bright = p(torch.zeros(n_p, N_KEYS))
        self.key_decay = p(torch.zeros(n_p, N_KEYS))
        # Inharmonicity: log B linear in pitch (B ~ 1e-4 in the bass, ~1e-2 at the top).
        self.log_b = p(torch.tensor([math.log(5e-4), 2.5]))
        # Decay time constants (seconds, log) of each stage, linear in pitch: aftersound slow, prompt fast.
        taus = torch.logspace(math.log10(3.0), math.log10(0.25), cfg.n_stages)
        self.log_tau = p(torch.stack([taus.log(), torch.full((cfg.n_stages,), -1.0)], dim=1))
        # Share of partial n in each stage: softmax over stages of a + b*log(n) + c*pitch.
        share = torch.zeros(cfg.n_stages, 3)
        share[:, 1] = torch.linspace(-1.0, 1.0, cfg.n_stages)  # higher partials lean to faster stages
        self.stage_share = p(share)
        # Release (key and pedal up) time constant, log seconds, linear in pitch; re-strike damping.
        self.log_release = p(torch.tensor([math.log(0.08), -0.5]))
        self.restrike = p(torch.tensor(_logit(0.7)))
        # Hammer knock: a short broadband burst at each onset (FluidSynth's piano samples carry one), with
        # its own velocity exponent, decay time, level (per piano, linear in pitch) and mel log-spectrum.
        self.noise_gamma = p(torch.tensor(4.0))
        self.noise_log_tau = p(torch.tensor(math.log(0.03)))
        self.noise_spectrum = p(torch.zeros(self.feat.n_mels))
        self.noise_level = p(torch.zeros(n_p, 2))
        self.fps = fps
        with torch.no_grad():  # start the knock ~20 dB under the tones' average mel power
            self.noise_level[:, 0] = torch.log(self._tonal_templates().mean()) - 4.6

    def partial_freqs(self) -> torch.Tensor:
        n = torch.arange(1, self.cfg.n_partials + 1, device=self.f0.device, dtype=self.f0.dtype)
        b = torch.exp(self.log_b[0] + self.log_b[1] * self.pitch)  # (88,)
        return self.f0[:, None] * n * torch.sqrt(1 + b[:, None] * n**2)  # (88, N)

    def _mel_of(self, f: torch.Tensor) -> torch.Tensor:
        """Linear interpolation in the sinusoid mel table; partials at or above fmax contribute nothing."""
        pos = (f / self.table_step).clamp(0, self.mel_table.shape[0] - 1.001)
        lo = pos.floor().long()
        frac = (pos - lo).unsqueeze(-1)
        g = self.mel_table[lo] * (1 - frac) + self.mel_table[lo + 1] * frac
        return g * (f < self.feat.fmax).unsqueeze(-1)

    def templates(self) -> torch.Tensor:
        nl = self.per_piano(self.noise_level)  # (P+1, 2)
        noise = torch.exp(nl[:, 0, None, None] + nl[:, 1, None, None] * self.pitch[:, None] + self.noise_spectrum)
        return torch.cat([self._tonal_templates(), noise.unsqueeze(2)], dim=2)  # (P+1, 88, A*S + 1, M)

    def _tonal_templates(self) -> torch.Tensor:
        cfg = self.cfg
        n = torch.arange(1, cfg.n_partials + 1, device=self.f0.device, dtype=self.f0.dtype)
        logn = torch.log(n)
        g = self._mel_of(self.partial_freqs())  # (88, N, M)
        anchors = torch.linspace(0, 1, cfg.velocity_anchors, device=g.device, dtype=g.dtype)
        bright = self.per_piano(self.key_bright)  # (P+1, 88)
        slope = (self.slope[0] + self.slope[1] * anchors + (self.slope[2] * self.pitch + bright)[..., None])  # (P+1, 88, A)
        level = self.level[0] + self.level[1] * self.pitch + self.level[2] * self.pitch**2 + self.per_piano(self.key_gain)
        logp = level[..., None, None] + slope[..., None] * logn  # (P+1, 88, A, N)
        s = self.stage_share
        share = torch.softmax(s[:, 0, None, None] + s[:, 1, None, None] * logn + s[:, 2, None, None] * self.pitch[:, None],
                              dim=0)  # (S, 88, N)
        # template[p, k, a, s, m] = sum_n P[p, k, a, n] * share[s, k, n] * g[k, n, m]: one matmul per key.
        w = torch.exp(logp).unsqueeze(3) * share.permute(1, 0, 2)[None, :, None]  # (P+1, 88, A, S, N)
        n_p1, a, n_s = w.shape[0], w.shape[2], w.shape[3]
        tmpl = torch.bmm(w.permute(1, 0, 2, 3, 4).reshape(N_KEYS, -1, cfg.n_partials), g)  # (88, (P+1)*A*S, M)
        return tmpl.reshape(N_KEYS, n_p1, a * n_s, -1).transpose(0, 1)  # (P+1, 88, A*S, M)

    def envelopes(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor,
                  keys: torch.Tensor, pianos: torch.Tensor) -> torch.Tensor:
        a = self.cfg.velocity_anchors
        # Excitation per velocity anchor: level (v + v0)^gamma, split by hat weights between anchors.
        level = onset * torch.exp(self.gamma * torch.log(velocity + torch.exp(self.log_v0)))  # (T, R)
        if a > 1:
            idx = torch.arange(a, device=velocity.device, dtype=velocity.dtype)
            hat = (1 - (velocity.unsqueeze(-1) * (a - 1) - idx).abs()).clamp(min=0)  # (T, R, A)
            x = (level.unsqueeze(-1) * hat).unsqueeze(-1)  # (T, R, A, 1)
        else:
            x = level[..., None, None]
        # Per-frame decay: stage rate while sustained, release rate after, damped on a re-strike.
        key_decay = self.per_piano(self.key_decay)[pianos, keys]  # (R,)
        log_tau = self.log_tau[:, 0, None] + self.log_tau[:, 1, None] * self.pitch[keys] + key_decay  # (S, R)
        rate_sus = torch.exp(-log_tau).t()  # (R, S) 1/s
        rate_rel = torch.exp(-(self.log_release[0] + self.log_release[1] * self.pitch))[keys, None]  # (R, 1)
        s = sustain.unsqueeze(-1)  # (T, R, 1)
        rate = s * rate_sus + (1 - s) * rate_rel  # (T, R, S)
        decay = torch.exp(-rate / self.fps) * (1 - torch.sigmoid(self.restrike) * onset.unsqueeze(-1))
        t, r = onset.shape
        sh = (t, r, a, self.cfg.n_stages)
        # The knock: its own level curve and decay, deaf to sustain (it is over long before a release).
        x_knock = onset * torch.exp(self.noise_gamma * torch.log(velocity + torch.exp(self.log_v0)))
        d_knock = torch.exp(-torch.exp(-self.noise_log_tau) / self.fps).expand(t, r, 1)
        x_all = torch.cat([x.expand(sh).flatten(-2), x_knock.unsqueeze(-1)], dim=-1)
        d_all = torch.cat([decay.unsqueeze(-2).expand(sh).flatten(-2), d_knock], dim=-1)
        return linear_scan(d_all, x_all)  # (T, R, A*S + 1)

    def describe(self) -> dict:
        """The fitted physical parameters, in units a person can read."""
        with torch.no_grad():
            pitch = torch.tensor([-1.0, 0.0, 1.0])  # A0, E4 (~middle), C8
            out = {
                "velocity_exponent_gamma": float(self.gamma),
                "partial_slope_at_v0_v1": [float(self.slope[0]), float(self.slope[0] + self.slope[1])],
                "inharmonicity_B_A0_mid_C8": torch.exp(self.log_b[0] + self.log_b[1] * pitch).tolist(),
                "release_s_A0_mid_C8": torch.exp(self.log_release[0] + self.log_release[1] * pitch).tolist(),
                "restrike_damping": float(torch.sigmoid(self.restrike)),
                "knock_decay_s": float(torch.exp(self.noise_log_tau)),
                "knock_velocity_exponent": float(self.noise_gamma),
            }
            for i in range(self.cfg.n_stages):
                out[f"stage{i}_decay_s_A0_mid_C8"] = torch.exp(self.log_tau[i, 0] + self.log_tau[i, 1] * pitch).tolist()
        return out


# ---------------------------------------------------------------- kind: neural

@dataclass
class NeuralConfig:
    channels: int = 8  # envelope components per key (each with its own template)
    hidden: int = 8  # width of the key MLP and of the decay conv
    velocity_basis: int = 4  # Chebyshev polynomials of velocity in each channel's excitation level
    key_dim: int = 8  # key embedding size
    decay_kernel: int = 5  # frames of (onset, sustain) history the decay conv sees
    n_pianos: int = 4  # fitting pianos: each gets its own templates, levels, decays and EQ
    tau_range: tuple[float, float] = (0.03, 6.0)  # initial decay time constants (s), log-spaced over channels

    @classmethod
    def from_params(cls, section: dict | None) -> "NeuralConfig":
        section = section or {}
        kw = {f.name: section[f.name] for f in fields(cls) if f.name in section}
        if "tau_range" in kw:
            kw["tau_range"] = tuple(float(x) for x in kw["tau_range"])
        return cls(**kw)

    @classmethod
    def tiny(cls) -> "NeuralConfig":
        return cls(channels=3, hidden=4, key_dim=2, decay_kernel=3, n_pianos=2, velocity_basis=2)


class NeuralSynth(SynthBase):
    """Free-form kind: learned templates, a key MLP for the velocity response, causal conv -> decays."""

    kind = "neural"

    def __init__(self, cfg: NeuralConfig, feat: FeatureConfig | None = None):
        super().__init__(cfg, feat or FeatureConfig())
        c, h = cfg.channels, cfg.hidden
        self.key_emb = nn.Parameter(0.1 * torch.randn(N_KEYS, cfg.key_dim))
        # Excitation log-level per channel = gamma_c * log(v + 0.02) + sum_j a[key, j, c] * T_j(2v - 1):
        # a smooth velocity response (Chebyshev basis, T_0 = 1) whose per-key coefficients an MLP reads
        # from the key embedding -- cheap per frame and infinitely differentiable in v.
        self.exc_in = nn.Linear(cfg.key_dim, h)
        self.exc_out = nn.Linear(h, (cfg.velocity_basis + 1) * c)
        self.exc_gamma = nn.Parameter(torch.full((c,), 4.0))  # start from power ~ velocity^4, as FluidSynth
        # Decay logits: causal conv over (onset, sustain) history, plus per-key/channel biases for the
        # sustained and the released state.
        self.decay_conv = nn.Conv1d(2, h, cfg.decay_kernel)
        self.decay_out = nn.Linear(h + cfg.key_dim, c)
        taus = torch.logspace(math.log10(cfg.tau_range[0]), math.log10(cfg.tau_range[1]), c)
        sus = torch.tensor([_logit(math.exp(-1 / (float(tau) * self.feat.fps))) for tau in taus])
        n_p = self.n_pianos
        # Per piano: decay logits (sustained / released) and excitation log-levels per key and channel,
        # and the templates -- what differs between sample sets; the networks are shared.
        self.decay_sus = nn.Parameter(sus.repeat(n_p, N_KEYS, 1))
        self.decay_rel = nn.Parameter(torch.full((n_p, N_KEYS, c), _logit(math.exp(-1 / (0.08 * self.feat.fps)))))
        self.exc_level = nn.Parameter(torch.zeros(n_p, N_KEYS, c))
        with torch.no_grad():
            self.decay_out.weight.mul_(0.1)
            self.decay_out.bias.zero_()
            self.exc_out.weight.mul_(0.1)
            self.exc_out.bias.zero_()
            self.exc_out.bias[:c].fill_(3.0)  # the T_0 (constant) coefficients
        # Templates: exp of free log-templates, a harmonic series per key at start.
        self.tmpl = nn.Parameter(harmonic_log_templates(self.feat, c).repeat(n_p, 1, 1, 1))

    def templates(self) -> torch.Tensor:
        return torch.exp(self.per_piano(self.tmpl))  # average piano = geometric mean of the templates

    def envelopes(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor,
                  keys: torch.Tensor, pianos: torch.Tensor) -> torch.Tensor:
        h, c, nb = self.cfg.hidden, self.cfg.channels, self.cfg.velocity_basis
        coef = self.exc_out(F.gelu(self.exc_in(self.key_emb))).view(N_KEYS, nb + 1, c)[keys]  # (R, J+1, C)
        # log_exc[t, r] = phi(v[t, r]) @ W[r] with phi = [log(v + 0.02), T_1(2v-1) .. T_J(2v-1), 1] and
        # W[r] = [gamma; coef_1..J; coef_0 + piano level]: one batched matmul per row instead of ~2J+4
        # elementwise passes over (T, R, C) -- the dense (gradient) path is memory-bound.
        v = velocity.t()  # (R, T)
        x = 2 * v - 1
        phi = [torch.log(v + 0.02)]
        t_prev, t_cur = torch.ones_like(x), x
        for _ in range(nb):  # Chebyshev recursion T_{j+1} = 2x T_j - T_{j-1}
            phi.append(t_cur)
            t_prev, t_cur = t_cur, 2 * x * t_cur - t_prev
        phi.append(torch.ones_like(x))
        level = coef[:, 0] + self.per_piano(self.exc_level)[pianos, keys]  # (R, C)
        w = torch.cat([self.exc_gamma.expand(len(keys), 1, c), coef[:, 1:], level.unsqueeze(1)], dim=1)
        log_exc = torch.bmm(torch.stack(phi, dim=-1), w)  # (R, T, C)
        exc = (onset.t().unsqueeze(-1) * torch.exp(log_exc)).transpose(0, 1)  # (T, R, C)
        # Causal conv over the last decay_kernel frames of (onset, sustain), time-major via unfold.
        kk = self.cfg.decay_kernel
        hist = F.pad(torch.stack([onset, sustain], dim=-1), (0, 0, 0, 0, kk - 1, 0))
        win = hist.unfold(0, kk, 1).flatten(-2)  # (T, R, 2*K), channel-major as conv1d's weight
        dh = F.gelu(F.linear(win, self.decay_conv.weight.flatten(1), self.decay_conv.bias))  # (T, R, H)
        wd = self.decay_out.weight
        key_bias = (self.key_emb @ wd[:, h:].t() + self.decay_out.bias)[keys]  # (R, C)
        sus, rel = self.per_piano(self.decay_sus)[pianos, keys], self.per_piano(self.decay_rel)[pianos, keys]
        # logit = s * sus + (1 - s) * rel + key bias + conv features, in two fused passes.
        logit = torch.addcmul(F.linear(dh, wd[:, :h]) + (rel + key_bias), sustain.unsqueeze(-1), sus - rel)
        decay = torch.sigmoid(logit)  # (T, R, C)
        return linear_scan(decay, exc)


# ---------------------------------------------------------------- building, saving, loading

def synth_config(kind: str, section: dict | None = None):
    if kind == "additive":
        return AdditiveConfig.from_params(section)
    if kind == "neural":
        return NeuralConfig.from_params(section)
    raise ValueError(f"synth kind must be one of {KINDS}, not {kind!r}")


def make_synth(kind: str, cfg=None, feat: FeatureConfig | None = None) -> SynthBase:
    cfg = cfg if cfg is not None else synth_config(kind)
    return (AdditiveSynth if kind == "additive" else NeuralSynth)(cfg, feat)


def build_synth(section: dict, feat: FeatureConfig | None = None, kind: str | None = None) -> SynthBase:
    """params.yaml `synth` section -> an (unfitted) synthesizer of `kind` (default: section['kind']).

    The kind's sub-section (section['additive'] / section['neural']) holds its config; `n_pianos` follows
    the number of fitting pianos.
    """
    kind = kind or section["kind"]
    sub = dict(section.get(kind) or {})
    sub.setdefault("n_pianos", len(section.get("pianos") or [None]))
    return make_synth(kind, synth_config(kind, sub), feat)


def save_synth(model: SynthBase, path: str | Path, extra: dict | None = None) -> None:
    """Checkpoint = kind + config + feature config + weights (+ anything in extra, e.g. fit metrics)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"kind": model.kind, "config": asdict(model.cfg), "features": asdict(model.feat),
                "state_dict": model.state_dict(), "extra": extra or {}}, tmp)
    tmp.replace(path)


def load_synth(path: str | Path, map_location: str | torch.device = "cpu") -> SynthBase:
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = make_synth(ckpt["kind"], synth_config(ckpt["kind"], ckpt["config"]), FeatureConfig(**ckpt["features"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


__all__ = [
    "KINDS", "AdditiveConfig", "AdditiveSynth", "NeuralConfig", "NeuralSynth", "SynthBase",
    "linear_scan", "window_kernel", "sinusoid_mel_table", "harmonic_log_templates", "synth_config", "make_synth", "build_synth",
    "save_synth", "load_synth",
]
