"""Pieces -> excerpts of a fixed number of whole bars, each with a metronome mark and dynamics.

Where the source has a tempo or dynamics mark, the excerpt keeps it; otherwise one is sampled, so that
every excerpt's score says how fast and how loud to play (a sight-reader can read tempo and loudness).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from lmm_utils.core.motion import PIANO_HIGH, PIANO_LOW
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import DYNAMICS, ScoreExcerpt, ScoreNote
from lmm_utils.data.corpus import Piece
from lmm_utils.data.textures import keyboard_register, keyboard_texture


@dataclass(frozen=True)
class ExcerptConfig:
    n_bars: int = 4
    max_per_piece: int = 3
    min_notes: int = 4
    tempo_bpm: tuple[float, float] = (60.0, 140.0)  # sampled metronome mark where the source has none
    source_tempo_range: tuple[float, float] = (40.0, 220.0)  # source marks outside this are resampled
    dynamics_weights: tuple[float, ...] = (0.08, 0.17, 0.2, 0.25, 0.2, 0.1)  # pp..ff
    dynamics_change_prob: float = 0.35  # chance of a second, different mark at a middle barline
    # Keyboard texture (data/textures.py): chance that an excerpt of 3+ parts has its lower parts' held chords
    # written as broken-chord figures of `arpeggiate_step` beats. Drawn per excerpt from a stream of its own.
    arpeggiate_prob: float = 0.0
    arpeggiate_step: float = 0.5
    # Keyboard register (data/textures.py): chance that an excerpt is played with its bass doubled an octave below,
    # its top part doubled an octave above, or moved by one or two octaves. Drawn from a stream of its own.
    register_prob: float = 0.0

    @classmethod
    def from_params(cls, section: dict) -> ExcerptConfig:
        return dataclass_from(cls, section, "split.excerpts")


def stable_seed(*parts) -> int:
    """A seed from strings/ints that does not depend on Python's hash randomization or on order of work."""
    return int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def nominal_bar_length(meter: str) -> float:
    num, den = meter.split("/")
    return float(Fraction(int(num), int(den)) * 4)


def bar_windows(piece: Piece, n_bars: int) -> list[int]:
    """Start indices of non-overlapping windows of `n_bars` complete bars in one meter."""
    bars = piece.bars
    ok = [abs(length - nominal_bar_length(m)) < 1e-3 for _, length, m in bars]
    starts, i = [], 0
    while i + n_bars <= len(bars):
        window = range(i, i + n_bars)
        if all(ok[j] for j in window) and len({bars[j][2] for j in window}) == 1:
            starts.append(i)
            i += n_bars
        else:
            i += 1
    return starts


def make_excerpts(piece: Piece, cfg: ExcerptConfig, seed: int) -> list[ScoreExcerpt]:
    rng = np.random.default_rng(stable_seed(seed, piece.id))
    windows = bar_windows(piece, cfg.n_bars)
    candidates = [w for w in windows if len(window_notes(piece, w, cfg.n_bars)[0]) >= cfg.min_notes]
    if len(candidates) > cfg.max_per_piece:
        candidates = sorted(rng.choice(candidates, size=cfg.max_per_piece, replace=False).tolist())
    return [keyboard_register(keyboard_texture(excerpt_at(piece, w, cfg, rng), cfg.arpeggiate_prob, cfg.arpeggiate_step,
                                               np.random.default_rng(stable_seed(seed, piece.id, w, "texture"))),
                              cfg.register_prob, np.random.default_rng(stable_seed(seed, piece.id, w, "register")))
            for w in candidates]


def window_notes(piece: Piece, start_bar: int, n_bars: int) -> tuple[list[ScoreNote], float, float]:
    start = piece.bars[start_bar][0]
    end = start + sum(piece.bars[j][1] for j in range(start_bar, start_bar + n_bars))
    notes = [
        ScoreNote(int(p), round(on - start, 4), round(min(on + d, end) - on, 4), int(v))
        for p, on, d, v in piece.notes
        if start - 1e-6 <= on < end - 1e-6 and PIANO_LOW <= p <= PIANO_HIGH
    ]
    return notes, start, end


def excerpt_at(piece: Piece, start_bar: int, cfg: ExcerptConfig, rng: np.random.Generator) -> ScoreExcerpt:
    notes, start, end = window_notes(piece, start_bar, cfg.n_bars)
    meter = piece.bars[start_bar][2]
    bar_beats = nominal_bar_length(meter)

    lo, hi = cfg.source_tempo_range
    if piece.tempo_bpm is not None and lo <= piece.tempo_bpm <= hi:
        bpm, tempo_from_source = float(piece.tempo_bpm), True
    else:
        bpm, tempo_from_source = float(round(rng.uniform(*cfg.tempo_bpm))), False

    source_marks = [(o - start, m) for o, m in piece.dynamics if o < end - 1e-6]
    if source_marks:
        before = [m for o, m in source_marks if o <= 1e-6]
        first = before[-1] if before else source_marks[0][1]
        dyn = [(0.0, first)] + [(round(o, 4), m) for o, m in source_marks if o > 1e-6 and m != first]
        dynamics_from_source = True
    else:
        weights = np.asarray(cfg.dynamics_weights, float)
        first_idx = int(rng.choice(len(DYNAMICS), p=weights / weights.sum()))
        dyn = [(0.0, DYNAMICS[first_idx])]
        if cfg.n_bars > 1 and rng.random() < cfg.dynamics_change_prob:
            step = int(rng.choice([-2, -1, 1, 2]))
            second = DYNAMICS[int(np.clip(first_idx + step, 0, len(DYNAMICS) - 1))]
            if second != dyn[0][1]:
                bar = int(rng.integers(1, cfg.n_bars))
                dyn.append((bar * bar_beats, second))
        dynamics_from_source = False

    return ScoreExcerpt(
        id=f"{piece.id}-b{start_bar:03d}",
        piece_id=piece.id,
        collection=piece.collection,
        meter=meter,
        key=piece.key,
        key_fifths=piece.key_fifths,
        n_bars=cfg.n_bars,
        bar_beats=bar_beats,
        tempo_bpm=bpm,
        tempo_from_source=tempo_from_source,
        dynamics=dyn,
        dynamics_from_source=dynamics_from_source,
        notes=notes,
    )
