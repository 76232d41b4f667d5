"""synth-pairs: h learns from (S(m), m) pairs that the learner makes itself from unpaired scores.

Each U_V score is performed by the plain performer with a little per-excerpt randomness (tempo, held
fraction, velocity, timing -- generic augmentation ranges, not the benchmark pianist's), rendered through
the learner's synthesizer S to log-mel, and h trains on (S output, roll) crops -- optionally mixed with
the K pairs' pseudo-motion (supervised.py) so real recordings are seen too. The step budget is
MethodConfig.steps, as for every method. g is not trained here: synth-pairs is a method for h (use the
plain performer, or supervised g, for V -> M).

Only scores of U_V (and the K pairs) and S are read; no motion, no audio of U_A.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, PerformedNote, to_roll
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
from lmm_utils.methods.supervised import train_transcriber
from lmm_utils.methods.wrappers import HModel, make_g
from lmm_utils.models.performer import PerformerConfig, PlainConfig, plain_performance, release_before_repeat
from lmm_utils.models.transcriber import TranscriberConfig


@dataclass(frozen=True)
class SynthPairsConfig:
    max_scores: int | None = None  # U_V scores used (None: all)
    tempo_jitter: float = 0.15  # per-excerpt tempo factor exp(U(-j, j))
    legato: tuple[float, float] = (0.5, 1.0)  # per-excerpt held fraction of the notated duration
    velocity_shift: float = 15.0  # per-excerpt velocity offset ~ U(-x, x)
    velocity_noise: float = 8.0  # per-note velocity noise (std)
    timing_noise_ms: float = 10.0  # per-note onset noise (std)
    tail: float = 1.0  # seconds rendered after the last release
    mix_pairs: bool = True  # also train on the K pairs (recordings + pseudo-motion)
    render_batch: int = 16
    seed: int = 0


def varied_performance(score: ScoreExcerpt, cfg: SynthPairsConfig, rng: np.random.Generator,
                       plain: PlainConfig = PlainConfig()) -> Performance:
    """The plain performance with per-excerpt tempo / articulation / loudness and per-note noise."""
    base = plain_performance(score, PlainConfig(dynamic_velocity=plain.dynamic_velocity, legato=1.0,
                                                release_gap=plain.release_gap, lead_in=plain.lead_in))
    factor = float(np.exp(rng.uniform(-cfg.tempo_jitter, cfg.tempo_jitter)))
    legato = float(rng.uniform(*cfg.legato))
    shift = float(rng.uniform(-cfg.velocity_shift, cfg.velocity_shift))
    lead = plain.lead_in
    onsets, offsets, vels = [], [], []
    for n in base.notes:
        on = lead + (n.onset - lead) * factor + rng.normal(0.0, cfg.timing_noise_ms / 1000.0)
        on = max(0.0, on)
        onsets.append(on)
        offsets.append(on + max(0.03, (n.offset - n.onset) * factor * legato))
        vels.append(int(np.clip(round(n.velocity + shift + rng.normal(0.0, cfg.velocity_noise)), 1, 127)))
    offsets = release_before_repeat([n.pitch for n in base.notes], onsets, offsets, plain.release_gap)
    return Performance(notes=[PerformedNote(n.pitch, float(a), float(b), v)
                              for n, a, b, v in zip(base.notes, onsets, offsets, vels)])


@torch.no_grad()
def render_through_synth(perfs: list[Performance], synth: Synth, feat: FeatureConfig, tail: float,
                         batch: int) -> list[np.ndarray]:
    """Performances -> S's log-mel, (n_mels, T_i) each; rendered in padded batches."""
    out = []
    for i in range(0, len(perfs), batch):
        chunk = perfs[i:i + batch]
        lengths = [int(np.ceil((p.duration + tail) * feat.fps)) + 1 for p in chunk]
        n = max(lengths)
        rolls = [to_roll(p, feat.fps, n) for p in chunk]
        args = [torch.from_numpy(np.stack([r[k] for r in rolls])) for k in ("onset", "velocity", "sustain")]
        logmel = synth(*args).float().cpu().numpy()
        out += [logmel[j, :, :length] for j, length in enumerate(lengths)]
    return out


def make_synth_pairs(scores: list[ScoreExcerpt], synth: Synth, cfg: SynthPairsConfig,
                     feat: FeatureConfig = FeatureConfig()) -> tuple[list[np.ndarray], list[Performance]]:
    rng = np.random.default_rng(cfg.seed)
    scores = scores[: cfg.max_scores] if cfg.max_scores else scores
    perfs = [varied_performance(s, cfg, rng) for s in scores if s.notes]
    return render_through_synth(perfs, synth, feat, cfg.tail, cfg.render_batch), perfs


def run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> MethodResult:
    """U_V scores (+ the K pairs, data restricted to them) -> h; g is the plain performer (an untrained Performer).
    Ablation synth_pairs-no_pairs: mix_pairs off."""
    params = params or {}
    check_terms("synth_pairs", off, ("pairs",))
    cfg = method_config(params)
    sp = params_config(SynthPairsConfig, params, "synth_pairs")
    if "pairs" in off:
        sp = replace(sp, mix_pairs=False)
    logmels, perfs = make_synth_pairs(data.scores("U_V"), synth, sp, feat)
    n_synth = len(perfs)
    pairs = load_pairs(data, feat)  # mixed into h's data (mix_pairs), and the run's diagnostics either way
    pseudo = pseudo_motion(pairs, synth, align_config(params), feat)
    if sp.mix_pairs:
        logmels += [x for _, x in pairs]
        perfs += pseudo
    augment = augment_config(params)
    h, hist = train_transcriber(logmels, perfs, cfg, TranscriberConfig.from_params(params.get("transcriber")), feat,
                                progress, augment=augment)
    g = make_g(PerformerConfig.from_params(params.get("performer")))  # untrained: initial weights from the global RNG as train leaves it
    info = {"terms": {"synth": True, "pairs": bool(sp.mix_pairs)}, "n_synth": n_synth,
            "n_pairs": len(pairs) if sp.mix_pairs else 0, "augment_p": augment.p, "hist_h": hist}
    return MethodResult(HModel(h), g, by_pair(pairs, pseudo), info)
