"""S's `additive` kind: an interpretable DDSP-style piano with a handful of physical parameters.

Partials at n * f0 * sqrt(1 + B n^2) (inharmonicity B rising with pitch), partial power falling as n^slope with
a velocity-dependent slope (louder = brighter), level ~ velocity^gamma, two decay stages (prompt sound /
aftersound, higher partials leaning to the fast one) with pitch-dependent time constants, a release time after
the key and pedal let go, re-strike damping, and a short broadband hammer knock. Per-key voicing (level,
brightness, decay offsets) and a mel EQ absorb what the physics does not (sample-based soundfonts differ key by
key). Per piano: the voicing, knock level and EQ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS
from lmm_utils.models.synth_base import SynthBase, key_f0, key_pitch, linear_scan, logit, sinusoid_mel_table


@dataclass
class AdditiveConfig:
    n_partials: int = 96  # A0 needs ~96 partials to reach 2.6 kHz; partials above fmax are dropped
    n_stages: int = 2  # decay stages per partial: prompt sound and aftersound
    n_pianos: int = 4  # fitting pianos: each gets its own voicing, knock level and EQ
    velocity_anchors: int = 2  # templates at velocities linspace(0, 1, anchors), interpolated in between

    @classmethod
    def tiny(cls) -> AdditiveConfig:
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
        self.restrike = p(torch.tensor(logit(0.7)))
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


__all__ = ["AdditiveConfig", "AdditiveSynth"]
