"""supervised: h and g from the K score-audio pairs alone.

The pairs carry no motion, so each is turned into pseudo-motion first (alignment.align_pair: the score's
plain performance, rendered by S, DTW-aligned to the recording). Then
  h: A -> M trains on (recording log-mel, pseudo-motion roll) in random crops,
  g: V -> M trains on (score, pseudo-motion) note by note,
each for `steps` optimizer steps of the project's one training loop (training.loop.train). The step budget is a
parameter shared by every method and every K, so methods differ only in what they learn from.

Nothing here reads motion: TrainingData refuses it, and pseudo-motion is all h and g ever see.
"""
from __future__ import annotations

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, to_roll
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods.alignment import Synth
from lmm_utils.methods.augment import AugmentConfig, Augmenter, augment_config, crop_augmenter
from lmm_utils.methods.base import (
    MethodConfig,
    MethodResult,
    align_config,
    by_pair,
    check_terms,
    load_pairs,
    method_config,
    pseudo_motion,
)
from lmm_utils.methods.wrappers import GModel, HModel, make_g, make_h
from lmm_utils.models.performer import (
    Performer,
    PerformerConfig,
    ScoreBatch,
    encode_scores,
    note_targets,
    performer_loss,
)
from lmm_utils.models.transcriber import Transcriber, TranscriberConfig, transcription_loss
from lmm_utils.training.loop import train

# --- h ----------------------------------------------------------------------------------------------------

class CropSampler:
    """Random fixed-length crops of (log-mel, target roll) items: training.loop.train's get_batch."""

    def __init__(self, logmels: list[np.ndarray], perfs: list[Performance], batch_size: int, crop_frames: int,
                 feat: FeatureConfig, augmenter: Augmenter | None = None):
        assert len(logmels) == len(perfs) and logmels, "need at least one (log-mel, performance) item"
        self.batch_size, self.crop, self.feat, self.augmenter = batch_size, crop_frames, feat, augmenter
        self.power = torch.tensor([augmenter.recording_power(x) for x in logmels]) if augmenter else None
        self.x, self.y = [], []
        for x, perf in zip(logmels, perfs):
            n = max(x.shape[1], crop_frames)
            floor = float(x.min())
            x = np.pad(x, ((0, 0), (0, n - x.shape[1])), constant_values=floor)  # pad with the item's silence
            roll = to_roll(perf, feat.fps, n)
            self.x.append(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            self.y.append({k: torch.from_numpy(roll[k]) for k in ("onset", "frame", "velocity")})

    def __call__(self, split: str, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        xs, on, fr, ve, items = [], [], [], [], []
        for _ in range(self.batch_size):
            i = int(torch.randint(len(self.x), (1,), generator=g))
            items.append(i)
            s = int(torch.randint(self.x[i].shape[1] - self.crop + 1, (1,), generator=g))
            xs.append(self.x[i][:, s:s + self.crop])
            on.append(self.y[i]["onset"][:, s:s + self.crop])
            fr.append(self.y[i]["frame"][:, s:s + self.crop])
            ve.append(self.y[i]["velocity"][:, s:s + self.crop])
        x = torch.stack(xs)
        if self.augmenter is not None:  # its own generator: g's draws are those of the run without it
            x = self.augmenter(x, self.power[items])
        return x, torch.stack(on), torch.stack(fr), torch.stack(ve)


def transcriber_loss_fn(model: Transcriber, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    x, onset, frame, velocity = batch
    return transcription_loss(model(x), {"onset": onset, "frame": frame, "velocity": velocity})["loss"]


def train_transcriber(logmels: list[np.ndarray], perfs: list[Performance], cfg: MethodConfig,
                      tcfg: TranscriberConfig = TranscriberConfig(), feat: FeatureConfig = FeatureConfig(),
                      progress: bool = False, live_dir=None,
                      augment: AugmentConfig = AugmentConfig()) -> tuple[Transcriber, dict]:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = Transcriber(tcfg, feat)
    sampler = CropSampler(logmels, perfs, cfg.batch_size, cfg.crop_frames, feat,
                          crop_augmenter(augment, feat, cfg.seed))
    hist = train(model, sampler, cfg.train_config(), loss_fn=transcriber_loss_fn, has_val=False,
                 progress=progress, live_dir=live_dir)
    return model.eval(), hist


# --- g ----------------------------------------------------------------------------------------------------

class ScoreSampler:
    """Random batches of (score encoding, per-note targets): training.loop.train's get_batch for g."""

    def __init__(self, scores: list[ScoreExcerpt], perfs: list[Performance], batch_size: int, pcfg: PerformerConfig):
        self.batch_size = batch_size
        full = encode_scores(scores, pcfg.plain)  # encode once; batches index rows of it
        tgt = note_targets(perfs, full)
        self.tensors = full.as_tuple() + (tgt["onset"], tgt["offset"], tgt["velocity"])

    def __call__(self, split: str, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(self.tensors[0].shape[0], (self.batch_size,), generator=g)
        return tuple(t[idx] for t in self.tensors)


def performer_loss_fn(model: Performer, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    n = len(ScoreBatch.TENSORS)
    sb = ScoreBatch.from_tuple(batch[:n])
    target = dict(zip(("onset", "offset", "velocity"), batch[n:]))
    return performer_loss(model(sb), target, sb.mask)["loss"]


def train_performer(scores: list[ScoreExcerpt], perfs: list[Performance], cfg: MethodConfig,
                    pcfg: PerformerConfig = PerformerConfig(), progress: bool = False,
                    live_dir=None) -> tuple[Performer, dict]:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = Performer(pcfg)
    sampler = ScoreSampler(scores, perfs, cfg.batch_size, pcfg)
    hist = train(model, sampler, cfg.train_config(), loss_fn=performer_loss_fn, has_val=False,
                 progress=progress, live_dir=live_dir)
    return model.eval(), hist


# --- the method -------------------------------------------------------------------------------------------

def run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> MethodResult:
    """K pairs (data restricted to them) -> h and g trained on their pseudo-motion. K = 0: nothing to learn
    from -- the untrained h and the plain performer (an untrained g plays plainly).

    params: the `mapping` section ("method": MethodConfig, "align": AlignConfig, "transcriber", "performer").
    """
    params = params or {}
    check_terms("supervised", off, ())
    cfg = method_config(params)
    tcfg = TranscriberConfig.from_params(params.get("transcriber"))
    pcfg = PerformerConfig.from_params(params.get("performer"))
    pairs = load_pairs(data, feat)
    if not pairs:
        torch.manual_seed(cfg.seed)
        return MethodResult(make_h(tcfg, feat), make_g(pcfg), {}, {"terms": {"pairs": False}, "augment_p": 0.0})  # nothing trained, nothing re-recorded
    pseudo = pseudo_motion(pairs, synth, align_config(params), feat)
    augment = augment_config(params)
    h, hist_h = train_transcriber([x for _, x in pairs], pseudo, cfg, tcfg, feat, progress, augment=augment)
    g, hist_g = train_performer([s for s, _ in pairs], pseudo, cfg, pcfg, progress)
    return MethodResult(HModel(h), GModel(g), by_pair(pairs, pseudo),
                        {"terms": {"pairs": True}, "augment_p": augment.p, "hist_h": hist_h, "hist_g": hist_g})
