"""h and g as the methods train them: the project's networks, with optional frozen-LM feature adapters, and the
input preparation each needs.

h (A -> M) is always the project's Transcriber (models/transcriber.py) and g (V -> M) the Performer
(models/performer.py). Methods that use a pretrained LM add a *small adapter* on top of the same
backbone, zero-initialised so that the untrained adapter changes nothing:

  LMTranscriber  input = log-mel rows + LM^A hidden features (upsampled to the frame rate) stacked as
                 extra rows; logits = Transcriber(log-mel) + adapter(LM^A features).
                 backbone=False drops the CNN: logits = head(LM^A features) alone (pure surface).
  LMPerformer    note features = score features + LM^V hidden feature at each note's pitch token;
                 the Performer's input layer reads both (the LM part through a zero-initialised map, _SplitInput).

The LMs themselves (lm_features.py) are frozen and live beside the networks, not inside them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS, Performance, PerformedNote, from_roll
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.methods.lm_features import AudioLMFeatures, ScoreLMFeatures
from lmm_utils.models.harmonics import suppress_harmonics
from lmm_utils.models.performer import (
    N_NOTE_FEATURES,
    Performer,
    PerformerConfig,
    ScoreBatch,
    encode_scores,
    to_performances,
)
from lmm_utils.models.transcriber import DecodeConfig, Transcriber, TranscriberConfig


def module_device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


# ---------------------------------------------------------------------------------------------------------
# h: the transcriber, with an optional LM^A adapter
# ---------------------------------------------------------------------------------------------------------

class LMTranscriber(nn.Module):
    """Transcriber + adapter(LM^A features). Input: (B, n_mels + dim, T) = log-mel rows, then LM rows."""

    def __init__(self, tcfg: TranscriberConfig, feat: FeatureConfig, lm_dim: int, rank: int = 16,
                 backbone: bool = True):
        super().__init__()
        self.tcfg, self.feat, self.lm_dim, self.rank, self.backbone = tcfg, feat, lm_dim, rank, backbone
        self.base = Transcriber(tcfg, feat) if backbone else None
        self.norm = nn.LayerNorm(lm_dim)
        self.down = nn.Conv1d(lm_dim, rank, 1)
        self.up = nn.Conv1d(rank, 3 * N_KEYS, 3, padding=1)
        if backbone:  # untrained adapter = the plain transcriber
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
        else:  # a pure head starts by predicting (almost) nothing
            with torch.no_grad():
                self.up.bias[: 2 * N_KEYS].fill_(-4.0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.feat.n_mels
        mel, f = x[:, :m], x[:, m:]
        f = self.norm(f.transpose(1, 2)).transpose(1, 2)
        delta = self.up(F.gelu(self.down(f))).reshape(x.shape[0], 3, N_KEYS, -1)
        out = {k: delta[:, i] for i, k in enumerate(("onset", "frame", "velocity"))}
        if self.base is not None:
            base = self.base(mel)
            out = {k: base[k] + out[k] for k in out}
        return out


class HModel:
    """h with its input preparation: `inputs(logmel)` -> the (C, T) array the network reads."""

    def __init__(self, net: nn.Module, lm: AudioLMFeatures | None = None):
        self.net, self.lm = net, lm

    @property
    def feat(self) -> FeatureConfig:
        return self.net.feat

    def inputs(self, logmel: np.ndarray) -> np.ndarray:
        logmel = np.asarray(logmel, np.float32)
        if self.lm is None:
            return logmel
        return np.concatenate([logmel, self.lm(logmel)], axis=0)

    @torch.no_grad()
    def logits_of_inputs(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        """(C, T) prepared input (see `inputs`) -> (88, T) logits each, on the CPU (eval mode)."""
        was = self.net.training
        self.net.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(module_device(self.net))
        out = {k: v[0].float().cpu() for k, v in self.net(xt).items()}
        self.net.train(was)
        return out

    def logits(self, logmel: np.ndarray) -> dict[str, torch.Tensor]:
        return self.logits_of_inputs(self.inputs(logmel))

    def transcribe(self, logmel: np.ndarray, cfg: DecodeConfig = DecodeConfig()) -> Performance:
        return fast_decode(self.logits(logmel), self.feat.fps, cfg)

    def transcribe_inputs(self, x: np.ndarray, cfg: DecodeConfig = DecodeConfig()) -> Performance:
        return fast_decode(self.logits_of_inputs(x), self.feat.fps, cfg)


def fast_decode(out: dict[str, torch.Tensor], fps: float, cfg: DecodeConfig = DecodeConfig()) -> Performance:
    """models/transcriber.decode, same result: keys whose onset probability never reaches the threshold
    cannot hold a note, so only the others go through motion.from_roll's per-frame Python loop (an
    untrained or sparse h decodes ~20x faster)."""
    p = {k: torch.sigmoid(v.reshape(N_KEYS, -1)).float().numpy() for k, v in out.items()}
    p["onset"] = suppress_harmonics(p["onset"], cfg.harmonic_ratio)
    keys = np.nonzero((p["onset"] >= cfg.onset_threshold).any(axis=1))[0]
    notes = []
    for k in keys:
        perf = from_roll(p["onset"][k:k + 1], p["frame"][k:k + 1], fps, velocity=p["velocity"][k:k + 1],
                         onset_threshold=cfg.onset_threshold, frame_threshold=cfg.frame_threshold,
                         min_frames=cfg.min_frames, key_down_threshold=cfg.key_down_threshold)
        notes += [PerformedNote(n.pitch + int(k), n.onset, n.offset, n.velocity) for n in perf.notes]
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return Performance(notes=notes)


def make_h(tcfg: TranscriberConfig, feat: FeatureConfig, lm: AudioLMFeatures | None = None,
           adapter: dict | None = None) -> HModel:
    if lm is None:
        return HModel(Transcriber(tcfg, feat))
    adapter = adapter or {}
    net = LMTranscriber(tcfg, feat, lm.dim, int(adapter.get("rank", 16)), bool(adapter.get("backbone", True)))
    return HModel(net, lm)


# ---------------------------------------------------------------------------------------------------------
# g: the performer, with optional LM^V note features
# ---------------------------------------------------------------------------------------------------------

class _SplitInput(nn.Module):
    """The Performer's input layer over [score features | LM features]: the LM part enters through a
    zero-initialised linear map, so an untrained LMPerformer plays exactly like an untrained Performer."""

    def __init__(self, base: nn.Sequential, lm_dim: int, d_model: int):
        super().__init__()
        self.base_lin = base[0]
        self.act = base[1]
        self.norm = nn.LayerNorm(lm_dim)
        self.lm_lin = nn.Linear(lm_dim, d_model)
        nn.init.zeros_(self.lm_lin.weight)
        nn.init.zeros_(self.lm_lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[..., :N_NOTE_FEATURES], x[..., N_NOTE_FEATURES:]
        return self.act(self.base_lin(a) + self.lm_lin(self.norm(b)))


class GModel:
    """g with its input preparation: `encode(scores)` -> ScoreBatch (LM^V features appended to feats)."""

    def __init__(self, net: Performer, lm: ScoreLMFeatures | None = None):
        self.net, self.lm = net, lm
        self._cache: dict[str, np.ndarray] = {}

    def lm_rows(self, score: ScoreExcerpt) -> np.ndarray:
        if score.id not in self._cache:
            self._cache[score.id] = self.lm(score)
        return self._cache[score.id]

    def encode(self, scores: list[ScoreExcerpt]) -> ScoreBatch:
        batch = encode_scores(scores, self.net.cfg.plain)
        if self.lm is None:
            return batch
        extra = torch.zeros(*batch.feats.shape[:2], self.lm.dim)
        for i, s in enumerate(scores):
            extra[i, : len(s.notes)] = torch.from_numpy(self.lm_rows(s))
        batch.feats = torch.cat([batch.feats, extra], dim=-1)
        return batch

    @torch.no_grad()
    def perform(self, scores: list[ScoreExcerpt], batch_size: int = 64) -> list[Performance]:
        was = self.net.training
        self.net.eval()
        out = []
        dev = module_device(self.net)
        for i in range(0, len(scores), batch_size):
            chunk = scores[i:i + batch_size]
            b = self.encode(chunk)
            out += to_performances(self.net(b.to(dev)), b, self.net.cfg.plain.release_gap)
        self.net.train(was)
        return out


def make_g(pcfg: PerformerConfig, lm: ScoreLMFeatures | None = None) -> GModel:
    net = Performer(pcfg)
    if lm is not None:
        net.inp = _SplitInput(net.inp, lm.dim, pcfg.d_model)
    return GModel(net, lm)


__all__ = ["GModel", "HModel", "LMTranscriber", "fast_decode", "make_g", "make_h", "module_device"]
