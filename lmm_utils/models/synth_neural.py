"""S's `neural` kind: the additive kind's superposition, but every piece learned freely.

Per-key templates, a smooth velocity response per key and channel (coefficients from a key-embedding MLP), and
a causal conv over (onset, sustain) that sets per-frame decays (a small selective state-space layer shared by
all keys). Per piano: the templates, levels, decays and EQ; the networks are shared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS
from lmm_utils.models.synth_base import SynthBase, harmonic_log_templates, linear_scan, logit


@dataclass
class NeuralConfig:
    channels: int = 8  # envelope components per key (each with its own template)
    hidden: int = 8  # width of the key MLP and of the decay conv
    velocity_basis: int = 4  # Chebyshev polynomials of velocity in each channel's excitation level
    key_dim: int = 8  # key embedding size
    decay_kernel: int = 5  # frames of (onset, sustain) history the decay conv sees
    n_pianos: int = 4  # fitting pianos: each gets its own templates, levels, decays and EQ
    tau_range: tuple[float, float] = (0.03, 6.0)  # initial decay time constants (s), log-spaced over channels

    def __post_init__(self):
        self.tau_range = tuple(float(x) for x in self.tau_range)  # as checkpoints store it, also from YAML ints

    @classmethod
    def tiny(cls) -> NeuralConfig:
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
        sus = torch.tensor([logit(math.exp(-1 / (float(tau) * self.feat.fps))) for tau in taus])
        n_p = self.n_pianos
        # Per piano: decay logits (sustained / released) and excitation log-levels per key and channel,
        # and the templates -- what differs between sample sets; the networks are shared.
        self.decay_sus = nn.Parameter(sus.repeat(n_p, N_KEYS, 1))
        self.decay_rel = nn.Parameter(torch.full((n_p, N_KEYS, c), logit(math.exp(-1 / (0.08 * self.feat.fps)))))
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


__all__ = ["NeuralConfig", "NeuralSynth"]
