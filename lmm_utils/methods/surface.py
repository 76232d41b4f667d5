"""surface: frozen LM features + a small head, trained on the K pairs only (the "surface alignment" baseline).

h reads the recording's log-mel *and* LM^A's hidden features of it (wrappers.LMTranscriber: the project's
transcriber plus a zero-initialised low-rank adapter from LM^A features to onset / frame / velocity
logits; with `backbone: false` the adapter is the whole h -- a pure linear-probe-style head on the LM's
surface). g reads the score's note features *and* LM^V's hidden feature of each note (the LM^V input layer of
wrappers.make_g). Both train on the K pairs' pseudo-motion (alignment.align_pair, as in `supervised`), for the
shared step budget. No unpaired data, no synthesizer beyond the alignment template.

Ablations: surface-no_lmA, surface-no_lmV, surface-no_backbone (the pure LM-feature head).
Compared with `supervised`, this isolates what the frozen LM features add; compared with `lmm`, what
the priors and the unpaired data add.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods.alignment import Synth
from lmm_utils.methods.augment import AugmentConfig, augment_config, crop_augmenter
from lmm_utils.methods.base import (
    MethodConfig,
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
from lmm_utils.methods.losses import weighted_transcription_loss
from lmm_utils.methods.steps import Crops
from lmm_utils.methods.supervised import performer_loss_fn
from lmm_utils.methods.wrappers import GModel, HModel, make_g, make_h
from lmm_utils.models.performer import PerformerConfig, note_targets
from lmm_utils.models.transcriber import TranscriberConfig
from lmm_utils.training.loop import train


@dataclass(frozen=True)
class SurfaceConfig:
    lmA: bool = True  # LM^A features for h
    lmV: bool = True  # LM^V features for g
    rank: int = 16  # adapter bottleneck
    backbone: bool = True  # False: h = LM^A features -> head only (no CNN on the log-mel)


def fit_h(h: HModel, inputs: list[np.ndarray], perfs: list[Performance], cfg: MethodConfig,
          weights: list[float] | None = None, progress: bool = False,
          augment: AugmentConfig = AugmentConfig()) -> dict:
    """The shared training loop (training.loop.train) on crops of (h input, target roll), re-recorded by
    `augment` (log-mel inputs only: methods.augment.augment_config)."""
    torch.manual_seed(cfg.seed)
    sampler = Crops(inputs, perfs, cfg.crop_frames, h.feat.fps, h.feat.n_mels, weights,
                    augmenter=crop_augmenter(augment, h.feat, cfg.seed))
    return train(h.net, lambda split, g: sampler.sample(cfg.batch_size, g), cfg.train_config(),
                 loss_fn=lambda m, b: weighted_transcription_loss(m(b[0]), b[1], b[2]), has_val=False,
                 progress=progress)


def fit_g(g: GModel, scores: list[ScoreExcerpt], perfs: list[Performance], cfg: MethodConfig,
          progress: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    full = g.encode(scores)
    tgt = note_targets(perfs, full)
    tensors = full.as_tuple() + (tgt["onset"], tgt["offset"], tgt["velocity"])

    def get_batch(split, gen):
        idx = torch.randint(tensors[0].shape[0], (cfg.batch_size,), generator=gen)
        return tuple(t[idx] for t in tensors)

    return train(g.net, get_batch, cfg.train_config(), loss_fn=performer_loss_fn, has_val=False,
                 progress=progress)


def run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> MethodResult:
    """K pairs -> h (+ LM^A adapter) and g (+ LM^V input) trained on their pseudo-motion with the shared loop."""
    params = params or {}
    check_terms("surface", off, ("lmA", "lmV", "backbone"))
    cfg = method_config(params)
    sc = params_config(SurfaceConfig, params, "surface")
    paths = lm_paths(params)
    lmA = load_lm_features("A", paths["A"], root=data.root) if sc.lmA and "lmA" not in off else None
    lmV = load_lm_features("V", paths["V"], root=data.root) if sc.lmV and "lmV" not in off else None
    torch.manual_seed(cfg.seed)
    backbone = sc.backbone and "backbone" not in off
    if lmA is None and not backbone:
        raise ValueError("surface without LM^A features needs the backbone")
    h = make_h(TranscriberConfig.from_params(params.get("transcriber")), feat, lmA,
               {"rank": sc.rank, "backbone": backbone})
    g = make_g(PerformerConfig.from_params(params.get("performer")), lmV)
    pairs = load_pairs(data, feat)
    pseudo = pseudo_motion(pairs, synth, align_config(params), feat)
    augment = augment_config(params, lm_rows=lmA is not None)
    info: dict = {"terms": {"lmA": lmA is not None, "lmV": lmV is not None, "backbone": backbone},
                  "augment_p": augment.p}
    if pairs:
        info["hist_h"] = fit_h(h, [h.inputs(x) for _, x in pairs], pseudo, cfg, progress=progress, augment=augment)
        info["hist_g"] = fit_g(g, [s for s, _ in pairs], pseudo, cfg, progress)
    return MethodResult(h, g, by_pair(pairs, pseudo), info)
