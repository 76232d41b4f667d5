"""basis: g as a basis-function model (the Basis Mixer's idea: Grachten & Widmer 2012) -- a ridge regression, in
closed form, from per-note score features to the deviations of the K pairs' pseudo-motion from the plain
performance:

  velocity   logit(pseudo velocity / 127) - logit(plain velocity / 127)   (the Performer's velocity offset)
  duration   ln(pseudo played duration / plain duration)                    (articulation)
  tempo      ln(plain inter-onset interval / pseudo one), per onset group   (local tempo factor)

played through models.performer.play_deviations, so a basis g and the Performer differ only in how they predict
deviations. Features (`basis_features`, computed from the ScoreBatch every g reads):
  basis        the Performer's 38 note features (dynamics mark, pitch and pitch class, voice, notated duration,
               metrical position, position in the excerpt, chord size and place in it, interval to the previous note
               of the voice, time to the next onset) + smooth basis functions of position: an arch over the excerpt,
               phases over 2- and 4-bar spans, and pitch relative to the excerpt's mean;
  basis_lmV    LM^V's hidden feature of each note (lm_features.ScoreLMFeatures) instead;
  basis_both   both.
Ridge strength: chosen by cross-validation over the pairs (folds are whole pairs, so a pair's own style does not
leak), among BasisConfig.alphas; with one pair, BasisConfig.default_alpha. No optimizer steps: the fit is exact.
h is supervised's h (supervised.train_transcriber on the same pseudo-motion, the shared step budget).
Caveat: the benchmark pianist's phrase arch is a sine over 2-bar spans, which the 2-bar arch basis matches exactly;
feature set `notes` (no position basis) measures how much that is worth (benchmarks/results/g_quick_K16.md).
K = 0: zero deviations -- the plain performance.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn as nn

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods.alignment import Synth
from lmm_utils.methods.augment import augment_config
from lmm_utils.methods.base import (
    MethodResult,
    align_config,
    by_pair,
    check_terms,
    load_pairs,
    method_config,
    params_config,
    pseudo_motion,
)
from lmm_utils.methods.lm_features import lm_paths, load_lm_features
from lmm_utils.methods.supervised import train_transcriber
from lmm_utils.methods.wrappers import GModel, HModel, make_h
from lmm_utils.models.performer import (
    N_NOTE_FEATURES,
    PerformerConfig,
    ScoreBatch,
    note_targets,
    play_deviations,
)
from lmm_utils.models.transcriber import TranscriberConfig

FEATURE_SETS = ("basic", "lmV", "both", "notes")  # notes: the Performer's note features alone (an ablation)
TARGETS = ("tempo", "duration", "velocity")  # raw deviation channels 0, 2, 3 (1, asynchrony, stays 0)
N_EXTRA = 9  # basis functions of position added to the Performer's note features (see _extra_features)


@dataclass(frozen=True)
class BasisConfig:
    """params `mapping.basis` (all optional)."""
    alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)  # ridge strengths tried (standardised features)
    default_alpha: float = 10.0  # with a single pair there is nothing to cross-validate on
    folds: int = 5  # at most; whole pairs per fold
    max_velocity_offset: float = 3.0  # |logit offset| targets are clipped to this (alignment outliers)


def _extra_features(batch: ScoreBatch) -> torch.Tensor:
    """(B, N, N_EXTRA): an arch and a quadratic over the excerpt, sin/cos/arch phases over 2- and 4-bar spans,
    pitch relative to the excerpt's mean pitch. Built from the batch alone (no score objects)."""
    f = batch.feats[..., :N_NOTE_FEATURES]
    pos = f[..., 22]  # onset / excerpt length
    beats = torch.gather(batch.group_beats, 1, batch.group)
    bar = (f[..., 32] * 4.0).clamp(min=1.0)
    cols = [torch.sin(np.pi * pos), pos * pos]
    for span in (2.0, 4.0):
        phase = torch.remainder(beats / (span * bar), 1.0)
        cols += [torch.sin(2 * np.pi * phase), torch.cos(2 * np.pi * phase), torch.sin(np.pi * phase)]
    m = batch.mask.float()
    mean_pitch = (f[..., 0] * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
    cols.append(f[..., 0] - mean_pitch)
    return torch.stack(cols, dim=-1)


def basis_features(batch: ScoreBatch, features: str) -> torch.Tensor:
    """(B, N, F) per-note inputs of the ridge: `basic` (note features + position basis), `lmV` (the LM^V rows
    GModel.encode appended to batch.feats), or `both`."""
    if features not in FEATURE_SETS:
        raise ValueError(f"basis features must be one of {FEATURE_SETS}, got {features!r}")
    basic = torch.cat([batch.feats[..., :N_NOTE_FEATURES], _extra_features(batch)], dim=-1)
    lm = batch.feats[..., N_NOTE_FEATURES:]
    if features in ("lmV", "both") and lm.shape[-1] == 0:
        raise ValueError(f"basis features {features!r} need LM^V rows in the batch (GModel with an LM)")
    notes = batch.feats[..., :N_NOTE_FEATURES]
    return {"basic": basic, "lmV": lm, "both": torch.cat([basic, lm], dim=-1), "notes": notes}[features]


class BasisPerformer(nn.Module):
    """g = play_deviations(standardised features @ weight + bias); weight = 0 plays the plain performance."""

    def __init__(self, cfg: PerformerConfig, n_in: int, features: str = "basic"):
        super().__init__()
        if features not in FEATURE_SETS:
            raise ValueError(f"basis features must be one of {FEATURE_SETS}, got {features!r}")
        self.cfg, self.n_in, self.features = cfg, int(n_in), features
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("scale", torch.ones(n_in))
        self.register_buffer("weight", torch.zeros(n_in, len(TARGETS)))
        self.register_buffer("bias", torch.zeros(len(TARGETS)))

    def deviations(self, batch: ScoreBatch) -> torch.Tensor:
        """(B, N, 4) raw deviations in play_deviations' units (tanh-squashed channels inverted)."""
        x = (basis_features(batch, self.features) - self.mean) / self.scale
        tempo, duration, velocity = (x @ self.weight + self.bias).unbind(-1)
        cfg = self.cfg
        squash = lambda v, bound: torch.atanh((v / bound).clamp(-0.99, 0.99))  # noqa: E731
        return torch.stack([squash(tempo, cfg.max_log_tempo), torch.zeros_like(tempo),
                            squash(duration, cfg.max_log_duration), velocity], dim=-1)

    def forward(self, batch: ScoreBatch) -> dict[str, torch.Tensor]:
        return play_deviations(self.deviations(batch), batch, self.cfg)


# --- targets and the fit -----------------------------------------------------------------------------------

def deviation_targets(batch: ScoreBatch, perfs: list[Performance], cfg: PerformerConfig,
                      max_velocity_offset: float = BasisConfig.max_velocity_offset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{target: (value (B, N), valid (B, N) bool)}: what each note of `perfs` (one per score note, score order)
    deviates from the plain performance, in the units BasisPerformer predicts."""
    t = note_targets(perfs, batch)
    mask = batch.mask
    base = torch.logit(batch.base_velocity.clamp(1e-3, 1 - 1e-3))
    vel = (torch.logit(t["velocity"].clamp(1e-3, 1 - 1e-3)) - base).clamp(-max_velocity_offset, max_velocity_offset)
    plain_len = batch.dur_beats * cfg.plain.legato * batch.spb[:, None]
    dur = torch.log((t["offset"] - t["onset"]).clamp(min=0.01) / plain_len.clamp(min=0.01))
    # a note cut short by its pitch's next press says nothing about articulation
    idx = torch.arange(mask.shape[1])
    nxt_beats = torch.gather(torch.gather(batch.group_beats, 1, batch.group), 1, batch.next_same)
    beats = torch.gather(batch.group_beats, 1, batch.group)
    cut = (batch.next_same != idx) & (nxt_beats <= beats + batch.dur_beats * cfg.plain.legato + 1e-6)
    dur_ok = mask & ~cut
    # local tempo: each onset group's mean pseudo onset; the IOI to the next group against the plain one
    member = torch.nn.functional.one_hot(batch.group, batch.group_beats.shape[1]).float() * mask[..., None].float()
    g_time = torch.einsum("bng,bn->bg", member, t["onset"]) / member.sum(1).clamp(min=1.0)
    ioi = g_time[:, 1:] - g_time[:, :-1]
    plain_ioi = (batch.group_beats[:, 1:] - batch.group_beats[:, :-1]) * batch.spb[:, None]
    has_next = batch.group_mask[:, 1:] & batch.group_mask[:, :-1] & (ioi > 0) & (plain_ioi > 0)
    g_tempo = torch.where(has_next, torch.log(plain_ioi.clamp(min=1e-3) / ioi.clamp(min=1e-3)), torch.zeros_like(ioi))
    g_tempo = torch.cat([g_tempo, torch.zeros_like(g_tempo[:, :1])], dim=1)
    g_ok = torch.cat([has_next, torch.zeros_like(has_next[:, :1])], dim=1)
    tempo = torch.gather(g_tempo, 1, batch.group).clamp(-cfg.max_log_tempo, cfg.max_log_tempo)
    tempo_ok = mask & torch.gather(g_ok, 1, batch.group)
    # play_deviations scales a note's length by its tempo (exp(-tempo)) before the duration channel: take the
    # tempo out of the target (the excerpt's mean tempo where the note's group has no next onset)
    mean_tempo = (tempo * tempo_ok).sum(1, keepdim=True) / tempo_ok.sum(1, keepdim=True).clamp(min=1)
    dur = dur + torch.where(tempo_ok, tempo, mean_tempo)
    return {"tempo": (tempo, tempo_ok),
            "duration": (dur.clamp(-cfg.max_log_duration, cfg.max_log_duration), dur_ok), "velocity": (vel, mask)}


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """argmin |y - x w - b|^2 + alpha |w|^2 (intercept not penalised), closed form. -> (w, b)."""
    xm, ym = x.mean(0), float(y.mean())
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - float(xm @ w)


def choose_alpha(x: np.ndarray, y: np.ndarray, pair: np.ndarray, cfg: BasisConfig) -> float:
    """The alpha of cfg.alphas with the least held-out squared error, folds of whole pairs (default_alpha with one)."""
    groups = np.unique(pair)
    if len(groups) < 2:
        return cfg.default_alpha
    fold_of = {g: i % min(cfg.folds, len(groups)) for i, g in enumerate(groups)}
    fold = np.array([fold_of[p] for p in pair])
    errors = []
    for alpha in cfg.alphas:
        err = 0.0
        for k in np.unique(fold):
            w, b = ridge(x[fold != k], y[fold != k], alpha)
            err += float(((x[fold == k] @ w + b - y[fold == k]) ** 2).sum())
        errors.append(err)
    return float(cfg.alphas[int(np.argmin(errors))])


def fit_basis(g: GModel, scores: list[ScoreExcerpt], perfs: list[Performance],
              cfg: BasisConfig = BasisConfig()) -> dict:
    """Fit g.net (a BasisPerformer) to the deviations of `perfs` from the plain performance. -> {target: alpha}."""
    net: BasisPerformer = g.net
    batch = g.encode(scores)
    x = basis_features(batch, net.features).numpy().astype(np.float64)
    mask = batch.mask.numpy()
    mean = x[mask].mean(0)
    scale = x[mask].std(0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    x = (x - mean) / scale
    pair = np.broadcast_to(np.arange(len(scores))[:, None], mask.shape)
    targets = deviation_targets(batch, perfs, net.cfg, cfg.max_velocity_offset)
    weight, bias, alphas = np.zeros((x.shape[-1], len(TARGETS))), np.zeros(len(TARGETS)), {}
    for j, name in enumerate(TARGETS):
        value, ok = (v.numpy() for v in targets[name])
        if ok.sum() < 2:
            continue
        alphas[name] = choose_alpha(x[ok], value[ok].astype(np.float64), pair[ok], cfg)
        weight[:, j], bias[j] = ridge(x[ok], value[ok].astype(np.float64), alphas[name])
    with torch.no_grad():
        net.mean.copy_(torch.from_numpy(mean).float())
        net.scale.copy_(torch.from_numpy(scale).float())
        net.weight.copy_(torch.from_numpy(weight).float())
        net.bias.copy_(torch.from_numpy(bias).float())
    return alphas


def make_basis_g(pcfg: PerformerConfig, features: str, lm=None) -> GModel:
    """An unfitted basis g (plays plainly); `lm` (ScoreLMFeatures) is needed for features lmV and both."""
    if features not in FEATURE_SETS:
        raise ValueError(f"basis features must be one of {FEATURE_SETS}, got {features!r}")
    if features in ("lmV", "both") and lm is None:
        raise ValueError(f"basis features {features!r} need LM^V (lm_features.ScoreLMFeatures)")
    n_lm = lm.dim if lm is not None else 0
    n_in = {"basic": N_NOTE_FEATURES + N_EXTRA, "lmV": n_lm, "both": N_NOTE_FEATURES + N_EXTRA + n_lm,
            "notes": N_NOTE_FEATURES}[features]
    return GModel(BasisPerformer(pcfg, n_in, features), lm if features in ("lmV", "both") else None)


# --- the method -------------------------------------------------------------------------------------------

def run_features(features: str, data: TrainingData, synth: Synth, params: dict | None = None,
                 feat: FeatureConfig = FeatureConfig(), progress: bool = False,
                 off: tuple[str, ...] = ()) -> MethodResult:
    """K pairs -> supervised's h and a ridge g on `features`, both from the pairs' pseudo-motion."""
    params = params or {}
    name = "basis" if features == "basic" else f"basis_{features}"
    check_terms(name, off, ())
    cfg = method_config(params)
    bcfg = params_config(BasisConfig, params, "basis")
    tcfg = TranscriberConfig.from_params(params.get("transcriber"))
    pcfg = PerformerConfig.from_params(params.get("performer"))
    lmV = load_lm_features("V", lm_paths(params)["V"], root=data.root) if features in ("lmV", "both") else None
    g = make_basis_g(pcfg, features, lmV)
    pairs = load_pairs(data, feat)
    if not pairs:
        torch.manual_seed(cfg.seed)
        return MethodResult(make_h(tcfg, feat), g, {}, {"terms": {"pairs": False}, "augment_p": 0.0})  # nothing trained, nothing re-recorded
    pseudo = pseudo_motion(pairs, synth, align_config(params), feat)
    augment = augment_config(params)
    h, hist_h = train_transcriber([x for _, x in pairs], pseudo, cfg, tcfg, feat, progress, augment=augment)
    alphas = fit_basis(g, [s for s, _ in pairs], pseudo, bcfg)
    return MethodResult(HModel(h), g, by_pair(pairs, pseudo),
                        {"terms": {"pairs": True}, "augment_p": augment.p, "hist_h": hist_h, "basis_alphas": alphas})


run = partial(run_features, "basic")
run_lmV = partial(run_features, "lmV")
run_both = partial(run_features, "both")

__all__ = ["FEATURE_SETS", "BasisConfig", "BasisPerformer", "basis_features", "choose_alpha", "deviation_targets",
           "fit_basis", "make_basis_g", "ridge", "run", "run_both", "run_lmV", "run_features"]
