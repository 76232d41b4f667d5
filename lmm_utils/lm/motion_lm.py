"""LM^M mapped from LM^V: the unpaired scores U_V, played by a *generic* performer, give abundant motion, and no
true motion is ever read to learn it (stage pretrain_M, notebook 06_pretrain_M).

The generic performer is the plain performer (models.performer.plain_performance: metronome, dynamics marks,
legato) with broad, generic augmentation drawn per rendition and per note:
  * tempo      a log-tempo factor per rendition (uniform +-tempo_jitter) and a smooth random walk over the
               excerpt (tempo_drift: std of the log-tempo step per beat);
  * timing     chords rolled over up to chord_spread_ms (low to high), a small onset jitter per note;
  * articulation  a held fraction per rendition (uniform in `articulation`), with per-note spread;
  * velocity   a shift per rendition (+-velocity_shift), noise per note (velocity_noise), an accent on downbeats
               drawn per rendition (0..accent);
  * pedal      with pedal_prob per rendition: legato pedal, re-caught at every barline.
It shares no code, no parameters and no random draws with the benchmark's pianist (data/pianist.py), whose draws
define the ground truth; a test checks that this module does not import it.

With init "lmV", LM^M starts from LM^V's trunk (its transformer blocks, positions and final norm; only the token
embedding -- tied with the output head -- is new): the mapping of LM^V onto motion in its most literal form.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.lm.data import PretrainData
from lmm_utils.lm.model import LanguageModel, train_lm
from lmm_utils.models.performer import PlainConfig, plain_performance, release_before_repeat, seconds_per_beat
from lmm_utils.models.transformer import Transformer
from lmm_utils.tokens.motion import MotionTokenizer

INITS = ("scratch", "lmV")
PLAIN = PlainConfig()  # the plain performer the generic one varies
TRUNK_PREFIXES = ("blocks.", "ln_f.", "wpe.")  # what LM^M takes from LM^V (wte / head: a different vocabulary)


@dataclass(frozen=True)
class GenericPerformerConfig:
    tempo_jitter: float = 0.2  # log-tempo factor per rendition, uniform in +-
    tempo_drift: float = 0.03  # std of the log-tempo random walk per beat
    chord_spread_ms: float = 30.0  # a chord is rolled over up to this many ms
    onset_jitter_ms: float = 10.0  # per-note onset noise (std)
    articulation: tuple[float, float] = (0.4, 1.0)  # held fraction per rendition
    articulation_spread: float = 0.1  # per-note std of the held fraction
    velocity_shift: float = 16.0  # per-rendition velocity offset, uniform in +-
    velocity_noise: float = 8.0  # per-note velocity std
    accent: float = 10.0  # downbeat accent, drawn per rendition in 0..accent
    pedal_prob: float = 0.5  # renditions with legato pedal (re-caught at every barline)

    @classmethod
    def from_params(cls, section: dict | None) -> GenericPerformerConfig:
        return dataclass_from(cls, section, "pretrain.M.performer")


def _beat_times(score: ScoreExcerpt, rng: np.random.Generator, cfg: GenericPerformerConfig, lead_in: float):
    """beats -> seconds under a tempo factor and a log-tempo random walk sampled on a beat grid."""
    n_beats = int(np.ceil(score.length_beats)) + 2
    log_tempo = np.log(float(np.exp(rng.uniform(-cfg.tempo_jitter, cfg.tempo_jitter))))
    walk = log_tempo + np.cumsum(rng.normal(0.0, cfg.tempo_drift, n_beats))
    sec_per_beat = seconds_per_beat(score) / np.exp(walk)  # a faster tempo, shorter beats
    grid = np.concatenate([[0.0], np.cumsum(sec_per_beat)])  # seconds at beat 0, 1, 2, ...

    def at(beat: float) -> float:
        return lead_in + float(np.interp(beat, np.arange(len(grid)), grid))
    return at


def generic_performance(score: ScoreExcerpt, rng: np.random.Generator,
                        cfg: GenericPerformerConfig = GenericPerformerConfig()) -> Performance:
    """One rendition of `score` by the generic performer (module docstring); note i performs score.notes[i]."""
    plain = plain_performance(score, PLAIN)
    if not score.notes:
        return plain
    at = _beat_times(score, rng, cfg, PLAIN.lead_in)  # the plain performer's silence before the first barline
    held = rng.uniform(*cfg.articulation)
    dv = rng.uniform(-cfg.velocity_shift, cfg.velocity_shift)
    accent = rng.uniform(0.0, cfg.accent)
    spread = rng.uniform(0.0, cfg.chord_spread_ms) / 1000.0
    chords: dict[float, list[int]] = {}
    for i, n in enumerate(score.notes):
        chords.setdefault(round(n.onset, 4), []).append(i)
    roll = np.zeros(len(score.notes))
    for members in chords.values():
        for rank, i in enumerate(sorted(members, key=lambda i: score.notes[i].pitch)):
            roll[i] = spread * rank / max(len(members) - 1, 1)
    pitches, onsets, offsets, vels = [], [], [], []
    for i, (n, p) in enumerate(zip(score.notes, plain.notes)):
        on = at(n.onset) + roll[i] + rng.normal(0.0, cfg.onset_jitter_ms / 1000.0)
        frac = float(np.clip(held + rng.normal(0.0, cfg.articulation_spread), 0.05, 1.0))
        off = on + max(0.03, (at(n.onset + n.duration) - at(n.onset)) * frac)
        downbeat = abs(n.onset % score.bar_beats) < 1e-3
        v = p.velocity + dv + rng.normal(0.0, cfg.velocity_noise) + (accent if downbeat else 0.0)
        pitches.append(n.pitch)
        onsets.append(max(on, 0.0))
        offsets.append(off)
        vels.append(int(np.clip(round(v), 1, 127)))
    offsets = release_before_repeat(pitches, onsets, offsets, 0.01)
    pedal: list[PedalEvent] = []
    if rng.random() < cfg.pedal_prob:
        for bar in range(score.n_bars):
            t = at(bar * score.bar_beats)
            if bar:
                pedal.append(PedalEvent(t + 0.02, False))  # legato pedal: up just after the new bar's notes ...
            pedal.append(PedalEvent(t + 0.08, True))  # ... and down again while they sound
        pedal.append(PedalEvent(max(offsets) + 0.05, False))
    notes = [PerformedNote(p, float(on), float(off), v) for p, on, off, v in zip(pitches, onsets, offsets, vels)]
    return Performance(notes=notes, pedal=pedal)


def generic_motion(scores: list[ScoreExcerpt], renditions: int, seed: int,
                   cfg: GenericPerformerConfig = GenericPerformerConfig()) -> list[Performance]:
    """`renditions` generic performances of every score with notes (seeded; order: score by score)."""
    rng = np.random.default_rng(seed)
    return [generic_performance(s, rng, cfg) for s in scores if s.notes for _ in range(renditions)]


def split_by_score(perfs: list[Performance], renditions: int, fraction: float, seed: int):
    """Held-out part for the validation curve, whole scores at a time (every rendition of a held-out score is
    held out, so validation never sees a score it trained on)."""
    n_scores = len(perfs) // max(renditions, 1)
    order = list(range(n_scores))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(round(fraction * n_scores))) if n_scores > 1 and fraction > 0 else 0
    val = set(order[:n_val])
    train = [p for i, p in enumerate(perfs) if i // renditions not in val]
    return train, [p for i, p in enumerate(perfs) if i // renditions in val]


def copy_trunk(target: Transformer, source: Transformer) -> list[str]:
    """LM^V's trunk into LM^M: every parameter under TRUNK_PREFIXES, which must match in shape (same n_layer,
    n_head, n_embd, block_size). -> the names copied."""
    src, copied = source.state_dict(), []
    with torch.no_grad():
        for name, p in target.state_dict().items():
            if not name.startswith(TRUNK_PREFIXES):
                continue
            if name not in src or src[name].shape != p.shape:
                raise ValueError(f"LM^V's {name} does not fit LM^M ({tuple(src[name].shape) if name in src else 'absent'}"
                                 f" vs {tuple(p.shape)}): init lmV needs LM^M's model = LM^V's (pretrain.M.model: null)")
            p.copy_(src[name])
            copied.append(name)
    return copied


@dataclass(frozen=True)
class MotionLMConfig:
    """pretrain.M in params.yaml."""
    renditions: int = 4
    seed: int = 0
    val_fraction: float = 0.05
    init: str = "scratch"  # scratch | lmV
    performer: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    model: dict | None = None  # None: LM^V's size with init lmV, else the runs' LM^M size
    train: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"pretrain.M.init must be one of {INITS}, not {self.init!r}")
        if self.renditions < 1:
            raise ValueError(f"pretrain.M.renditions must be >= 1, not {self.renditions}")

    @classmethod
    def from_params(cls, section: dict | None) -> MotionLMConfig:
        return dataclass_from(cls, section, "pretrain.M")


def model_config(cfg: MotionLMConfig, lmV: LanguageModel | None, default: dict) -> dict:
    """LM^M's transformer size: explicit, else LM^V's (init lmV: the trunk must fit), else `default`."""
    if cfg.model:
        return dict(cfg.model)
    if cfg.init == "lmV":
        if lmV is None:
            raise ValueError("pretrain.M.init lmV needs LM^V (data/lm/V)")
        return {k: v for k, v in lmV.model.cfg.to_dict().items() if k != "vocab_size"}
    return dict(default)


def motion_lm_data(scores: list[ScoreExcerpt], cfg: MotionLMConfig,
                   test_motion: list[Performance] = ()) -> PretrainData:
    """U_V's scores -> renditions by the generic performer -> tokens (validation: whole held-out scores); the test
    sequences are `test_motion` tokenized (T's true motion, passed in by the evaluation part only)."""
    tok = MotionTokenizer(**cfg.tokens)
    perfs = generic_motion(scores, cfg.renditions, cfg.seed, GenericPerformerConfig.from_params(cfg.performer))
    train, val = split_by_score(perfs, cfg.renditions, cfg.val_fraction, cfg.seed)
    stats = {"n_scores": len(perfs) // cfg.renditions, "n_notes": sum(len(p.notes) for p in perfs),
             "n_test_notes": sum(len(p.notes) for p in test_motion)}
    return PretrainData("M", tok, [tok.encode(p) for p in train], [tok.encode(p) for p in val],
                        [tok.encode(p) for p in test_motion], stats)


def train_motion_lm(data: PretrainData, cfg: MotionLMConfig, lmV: LanguageModel | None, default_model: dict,
                    out_dir: str | Path | None = None, live_dir: str | Path | None = None,
                    progress: bool = True) -> LanguageModel:
    """LM^M on the generic motion, from scratch or from LM^V's trunk (cfg.init), with the project's LM code."""
    trunk = None
    if cfg.init == "lmV":
        if lmV is None:
            raise ValueError("pretrain.M.init lmV needs LM^V (data/lm/V)")
        trunk = lambda model: copy_trunk(model, lmV.model)  # noqa: E731
    info = {"train_pool": "U_V (scores, played by the generic performer)", "init": cfg.init,
            "renditions": cfg.renditions, "n_scores": data.stats["n_scores"], "n_notes": data.stats["n_notes"]}
    return train_lm(data.train, data.tokenizer, model_config(cfg, lmV, default_model), {**cfg.train, "seed": cfg.seed},
                    val_sequences=data.val, out_dir=out_dir, live_dir=live_dir, info=info, progress=progress,
                    init=trunk)


__all__ = ["GenericPerformerConfig", "MotionLMConfig", "INITS", "copy_trunk", "generic_motion",
           "generic_performance", "model_config", "motion_lm_data", "split_by_score", "train_motion_lm"]
