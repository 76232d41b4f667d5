"""Harmonic suppression on h's onset posterior: part of h's decoding (models/transcriber.DecodeConfig.harmonic_ratio),
so the methods' predictions, lmm's self-training labels and `lmm transcribe` all decode the same way.

Why: 82-89 % of h's false positives on T sit an octave, a twelfth or two octaves above a sounding true note
(benchmarks/octave_errors.py): a piano note's partials heard as notes. The rule drops an onset at key k when a key
k - 12, k - 19 or k - 24 has a much stronger onset within a frame. Its ratio was chosen on P's recordings outside each
run's draw (10 runs of the paper sweep; never T): 0.75, the start of the plateau of mean note F1 (0.75-0.9: +0.013)
with the smallest worst case (-0.005).
"""
from __future__ import annotations

import numpy as np

HARMONIC_INTERVALS = (12, 19, 24)  # octave, twelfth, two octaves: the partials a piano note puts above itself
NEIGHBOUR_FRAMES = 1  # a fundamental's onset peak may land one frame before or after its harmonic's
HARMONIC_RATIO = 0.75  # chosen on P outside the draw (benchmarks/results/decode_harmonics_validation.json), never T


def suppress_harmonics(onset: np.ndarray, ratio: float = HARMONIC_RATIO,
                       intervals: tuple[int, ...] = HARMONIC_INTERVALS, frames: int = NEIGHBOUR_FRAMES) -> np.ndarray:
    """(88, T) onset probabilities -> a copy in which an onset whose key sits `intervals` above a key with an onset
    stronger than it / ratio (the strongest within +-`frames` frames) is 0. ratio <= 0: unchanged. With the decoder's
    0.5 onset threshold only ratios above 0.5 can remove a note (the fundamental's probability is at most 1)."""
    if ratio <= 0:
        return onset
    near = onset.copy()
    for s in range(1, frames + 1):
        near[:, s:] = np.maximum(near[:, s:], onset[:, :-s])
        near[:, :-s] = np.maximum(near[:, :-s], onset[:, s:])
    below = np.zeros_like(onset)
    for iv in intervals:
        below[iv:] = np.maximum(below[iv:], near[:-iv])
    out = onset.copy()
    out[onset < ratio * below] = 0.0
    return out


__all__ = ["HARMONIC_INTERVALS", "HARMONIC_RATIO", "suppress_harmonics"]
