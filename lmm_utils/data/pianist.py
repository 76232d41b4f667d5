"""The virtual pianist: score -> motion. It makes the benchmark's ground-truth performances (M).

A performance follows the metronome mark with a smooth random tempo drift, jitters onsets, shapes
durations (articulation), sets velocities from the dynamics markings with phrase arches, a melody
lift and noise, optionally pedals once per bar, and optionally rolls its chords (a spread chord: the notes of a
chord of three or more struck from the bottom up over a few tens of milliseconds, the top note last, as a
pianist does with wide chords). Every excerpt gets its own seeded style, so the mapping from V to M is learnable
but not trivial.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import ScoreExcerpt

DEFAULT_DYNAMIC_VELOCITY = {"pp": 30, "p": 44, "mp": 58, "mf": 72, "f": 88, "ff": 104}


@dataclass(frozen=True)
class PianistConfig:
    tempo_drift: float = 0.04  # std of the smooth log-tempo deviation
    tempo_drift_beats: float = 4.0  # correlation length of the drift, in beats
    onset_jitter_ms: float = 12.0
    articulation: tuple[float, float] = (0.6, 0.98)  # per-excerpt range of sounding/notated duration
    articulation_noise: float = 0.05
    min_note_s: float = 0.05
    dynamic_velocity: dict = field(default_factory=lambda: dict(DEFAULT_DYNAMIC_VELOCITY))
    phrase_arch: float = 8.0  # velocity added at the middle of each two-bar phrase
    melody_lift: float = 8.0  # top voice louder than the others in polyphony
    velocity_noise: float = 5.0
    pedal_prob: float = 0.3  # chance that an excerpt is pedalled (changes at each barline)
    spread_prob: float = 0.0  # chance that an excerpt's chords (3+ notes struck together) are rolled
    spread_ms: tuple[float, float] = (15.0, 60.0)  # per excerpt: bottom-to-top time of a rolled chord
    min_spread_notes: int = 3  # distinct pitches a chord needs to be rolled

    def __post_init__(self):
        lo, hi = self.spread_ms
        if not 0 <= lo <= hi:
            raise ValueError(f"perform.pianist.spread_ms must be [low, high] with 0 <= low <= high, got {self.spread_ms}")
        if self.min_spread_notes < 2:
            raise ValueError(f"perform.pianist.min_spread_notes must be >= 2, got {self.min_spread_notes}")

    @classmethod
    def from_params(cls, section: dict) -> PianistConfig:
        return dataclass_from(cls, section, "perform.pianist")


def beat_to_time(score: ScoreExcerpt, cfg: PianistConfig, rng: np.random.Generator, resolution: int = 24):
    """A monotone map beats -> seconds: the metronome mark with a smooth random log-tempo drift."""
    n = int(np.ceil((score.length_beats + 2) * resolution)) + 1
    grid = np.arange(n) / resolution
    white = rng.standard_normal(n)
    width = max(1, int(cfg.tempo_drift_beats * resolution))
    kernel = np.hanning(2 * width + 1)
    kernel = kernel / np.sqrt((kernel**2).sum())
    # "same" returns max(n, len(kernel)) values: a score shorter than the kernel takes the full convolution's middle
    smooth = (np.convolve(white, kernel, mode="same") if n >= len(kernel)
              else np.convolve(white, kernel, mode="full")[width:width + n])
    log_tempo = np.log(score.tempo_bpm) + cfg.tempo_drift * smooth
    seconds_per_step = 60.0 / np.exp(log_tempo) / resolution
    times = np.concatenate([[0.0], np.cumsum(seconds_per_step[:-1])])
    return lambda beats: np.interp(beats, grid, times)


def perform(score: ScoreExcerpt, cfg: PianistConfig, rng: np.random.Generator, lead_in: float = 0.25,
            roll_rng: np.random.Generator | None = None) -> Performance:
    """Play `score`; `lead_in` seconds of silence precede the first barline. Whether (and how widely) chords are
    rolled is drawn from `roll_rng` (default: `rng`); the perform stage passes a stream of its own, so that turning
    rolls on leaves every other draw of the excerpt -- its recording conditions too -- as it was."""
    if not score.notes:
        return Performance(notes=[])
    to_time = beat_to_time(score, cfg, rng)
    legato = rng.uniform(*cfg.articulation)
    phrase_beats = 2 * score.bar_beats
    polyphonic = score.n_voices > 1
    notes = []
    for n in score.notes:
        onset = lead_in + float(to_time(n.onset)) + rng.normal(0.0, cfg.onset_jitter_ms / 1000.0)
        ratio = float(np.clip(legato + rng.normal(0.0, cfg.articulation_noise), 0.2, 1.0))
        end = lead_in + float(to_time(n.onset + n.duration * ratio))
        offset = max(end, onset + cfg.min_note_s)
        base = cfg.dynamic_velocity[score.dynamic_at(n.onset)]
        phase = (n.onset % phrase_beats) / phrase_beats
        velocity = base + cfg.phrase_arch * np.sin(np.pi * phase) + rng.normal(0.0, cfg.velocity_noise)
        if polyphonic:
            velocity += cfg.melody_lift if n.voice == 0 else -cfg.melody_lift / 3
        notes.append(PerformedNote(n.pitch, max(0.0, onset), offset, int(np.clip(round(velocity), 1, 127))))
    pedal = []
    if rng.random() < cfg.pedal_prob:
        # Legato pedalling: lift at each barline, press again just after the new bar's first notes.
        for bar in range(score.n_bars):
            t = lead_in + float(to_time(bar * score.bar_beats))
            if bar > 0:
                pedal.append(PedalEvent(t, False))
            pedal.append(PedalEvent(t + 0.08, True))
        pedal.append(PedalEvent(lead_in + float(to_time(score.length_beats)), False))
    roll_rng = rng if roll_rng is None else roll_rng
    if cfg.spread_prob > 0 and roll_rng.random() < cfg.spread_prob:
        notes = roll_chords(score, notes, roll_rng.uniform(*cfg.spread_ms) / 1000.0, cfg.min_spread_notes,
                            cfg.min_note_s)
    notes = _release_before_repeat(sorted(notes, key=lambda x: (x.onset, x.pitch)))
    return Performance(notes=notes, pedal=pedal)


def roll_chords(score: ScoreExcerpt, notes: list[PerformedNote], spread_s: float, min_notes: int,
                min_note_s: float) -> list[PerformedNote]:
    """`notes` (one per score note, in score order) with each chord of `min_notes` or more distinct pitches sharing
    a score onset struck bottom-up: its k-th lowest of n distinct pitches at the chord's first onset +
    k * spread_s / (n - 1). A doubled pitch (two parts in unison) is struck once, at its pitch's time."""
    by_onset: dict[float, list[int]] = {}
    for i, n in enumerate(score.notes):
        by_onset.setdefault(n.onset, []).append(i)
    out = list(notes)
    for idx in by_onset.values():
        pitches = sorted({score.notes[i].pitch for i in idx})
        if len(pitches) < max(2, min_notes):
            continue
        start = min(notes[i].onset for i in idx)
        at = {p: start + k * spread_s / (len(pitches) - 1) for k, p in enumerate(pitches)}
        for i in idx:
            n = notes[i]
            onset = at[score.notes[i].pitch]
            out[i] = PerformedNote(n.pitch, onset, max(n.offset, onset + min_note_s), n.velocity)
    return out


def _release_before_repeat(notes: list[PerformedNote], gap: float = 0.01) -> list[PerformedNote]:
    """A key must come up before it is struck again: cut a note short of the next press of its pitch."""
    out = []
    next_onset: dict[int, float] = {}
    for n in reversed(notes):
        limit = next_onset.get(n.pitch)
        offset = n.offset if limit is None else min(n.offset, limit - gap)
        out.append(PerformedNote(n.pitch, n.onset, max(offset, n.onset + 0.01), n.velocity))
        next_onset[n.pitch] = n.onset
    return out[::-1]
