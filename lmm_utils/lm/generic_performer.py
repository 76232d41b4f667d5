"""The generic performer: the plain performer (models.performer.plain_performance: metronome, dynamics marks,
legato) with broad, generic augmentation drawn per rendition and per note. It plays the unpaired scores U_V into
the motion LM^M learns from (lm.motion_lm) and gives lmm's density prior its rates (methods.lmm).
  * tempo      a log-tempo factor per rendition (uniform +-tempo_jitter) and a smooth random walk over the
               excerpt (tempo_drift: std of the log-tempo step per beat);
  * timing     chords rolled over up to chord_spread_ms (low to high), a small onset jitter per note;
  * articulation  a held fraction per rendition (uniform in `articulation`), with per-note spread;
  * velocity   a shift per rendition (+-velocity_shift), noise per note (velocity_noise), an accent on downbeats
               drawn per rendition (0..accent);
  * pedal      with pedal_prob per rendition: legato pedal, re-caught at every barline.
It shares no code, no parameters and no random draws with the benchmark's pianist (data/pianist.py), whose draws
define the ground truth; a test checks that it does not import it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.models.performer import PlainConfig, plain_performance, release_before_repeat, seconds_per_beat

PLAIN = PlainConfig()  # the plain performer the generic one varies


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
