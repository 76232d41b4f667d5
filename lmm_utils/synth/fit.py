"""Fitting S: the baseline it is compared with, the level calibration, the loss, and the fit itself.

  fit_synth          calibrate the level, then the project's training loop (training/loop.py) on log-mel L1
  FitConfig          how a kind is fitted (params.yaml synth.<kind>'s steps, batch, lr, ... + synth's seed, threads,
                     piano_dropout); FIT_KEYS names its keys, which build_synth leaves alone
  TemplateBaseline   the trivial per-pitch average-template synthesizer (no dynamics), fitted by the same loop
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import torch
import torch.nn as nn

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.params import ParamsError, dataclass_from
from lmm_utils.models.synth import SynthBase, harmonic_log_templates
from lmm_utils.synth.pairs import SynthPairs
from lmm_utils.training.loop import TrainConfig, train


@dataclass
class BaselineConfig:
    n_pianos: int = 4


class TemplateBaseline(SynthBase):
    """Trivial S: while a key sounds (sustain), it adds its one average log-mel template -- no velocity,
    no attack, no decay, no release. Fitted with the same loop and loss as S (so it is the best static
    template per pitch in log-mel L1); what it misses is what S's dynamics are for."""

    kind = "template-baseline"

    def __init__(self, cfg: BaselineConfig | None = None, feat: FeatureConfig | None = None):
        super().__init__(cfg or BaselineConfig(), feat or FeatureConfig())
        self.tmpl = nn.Parameter(harmonic_log_templates(self.feat, 1))  # the neural kind's data-free start

    def templates(self) -> torch.Tensor:
        return torch.exp(self.tmpl).expand(self.n_pianos + 1, -1, -1, -1)  # one template for every piano

    def envelopes(self, onset, velocity, sustain, keys, pianos) -> torch.Tensor:
        return sustain.unsqueeze(-1)


# ---------------------------------------------------------------- fitting

@dataclass(frozen=True)
class FitConfig:
    """How one kind (or the baseline) is fitted: params.yaml synth.<kind> (less the kind's config fields) or
    synth.baseline; the stage sets seed, threads and piano_dropout from the synth section's top level."""

    steps: int
    batch: int
    lr: float
    min_lr: float | None = None  # None: lr / 10
    warmup: int = 10
    grad_clip: float = 0.0
    eval_every: int | None = None  # None: one validation, after the last step
    log_every: int = 10
    seed: int = 0
    threads: int = 1  # torch threads while fitting (the synth section's; 1 on a small shared CPU)
    piano_dropout: float = 0.0  # share of training excerpts synthesized by the average piano

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            steps=int(self.steps), batch_size=int(self.batch), lr=float(self.lr),
            min_lr=float(self.min_lr if self.min_lr is not None else float(self.lr) / 10), warmup=int(self.warmup),
            weight_decay=0.0, grad_clip=float(self.grad_clip),
            eval_every=max(1, int(self.eval_every if self.eval_every is not None else self.steps)), eval_batches=1,
            log_every=max(1, int(self.log_every)), seed=int(self.seed),
            device="cpu", precision="fp32",  # log-power dynamics need fp32; S is small enough for the CPU
            threads=int(self.threads),
        )


FIT_KEYS = tuple(f.name for f in fields(FitConfig))
_REQUIRED = ("steps", "batch", "lr")


def fit_config(section: dict | FitConfig, where: str = "synth fit") -> FitConfig:
    """A FitConfig from a mapping of its keys (steps, batch and lr required); unknown keys are refused."""
    if isinstance(section, dict):
        missing = [k for k in _REQUIRED if k not in section]
        if missing:
            raise ParamsError(f"params.yaml: {where}.{missing[0]} is missing")
    return dataclass_from(FitConfig, section, where)


@torch.no_grad()
def calibrate_level(model: SynthBase, pairs: SynthPairs, n: int = 16) -> float:
    """Shift the model's overall level (its EQ) so its total mel power on a few excerpts matches the
    data's: a gradient-free first step that keeps the fit from starting decades away in level."""
    idx = list(range(min(n, len(pairs))))
    o, v, s, piano, y = pairs.batch(idx)
    pred = model.mel_power(o, v, s, piano).double().sum()
    target = (torch.exp(y.double()) - model.feat.log_floor).clamp(min=0).sum()
    shift = float(torch.log(target / pred.clamp(min=1e-30)))
    model.eq.add_(shift)
    return shift


def logmel_l1_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    o, v, s, piano, y = batch
    return (model(o, v, s, piano=piano) - y).abs().mean()


def fit_synth(model: SynthBase, train_pairs: SynthPairs, val_pairs: SynthPairs | None, section: dict | FitConfig,
              progress: bool = True) -> dict:
    """Fit S on random pairs with the project's training loop; section = the fitting settings (a FitConfig or
    a mapping of its keys). Returns the loop's history (+ fit_seconds, level_calibration)."""
    fit = fit_config(section)
    cfg = fit.train_config()
    shift = calibrate_level(model, train_pairs)
    val = val_pairs if val_pairs is not None and len(val_pairs) else None

    piano_dropout = float(fit.piano_dropout)
    def get_batch(split: str, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        if split == "val":
            return val.batch(list(range(min(len(val), cfg.batch_size))))
        o, v, s, piano, y = train_pairs.batch(torch.randint(len(train_pairs), (cfg.batch_size,), generator=g))
        # Some excerpts are synthesized by the average piano (piano -1), so that the instrument downstream
        # stages use when they do not know the piano is itself fitted to the mixture of pianos.
        drop = torch.rand(len(piano), generator=g) < piano_dropout
        return o, v, s, torch.where(drop, -1, piano), y

    t0 = time.perf_counter()
    hist = train(model, get_batch, cfg, loss_fn=logmel_l1_loss, has_val=val is not None, progress=progress)
    hist["fit_seconds"] = time.perf_counter() - t0
    hist["level_calibration"] = shift
    model.eval()
    return hist


__all__ = [
    "BaselineConfig", "TemplateBaseline", "FitConfig", "FIT_KEYS", "fit_config", "calibrate_level", "logmel_l1_loss",
    "fit_synth",
]
