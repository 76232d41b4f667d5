"""Pitch-aware frame features computed from the log-mel itself (for LM^A's `features: harmonic` tokens).

k-means codes of raw log-mel frames keep the loudness and the spectral envelope and drop most of the pitch
(issue 14: a linear probe reads little of the 88-key roll from them; speech and music self-supervision report
the same of k-means units). These features put pitch first, in four differentiable steps on the log-mel:

1. a semitone log-spectrum: the log-mel interpolated (linearly in log-frequency) at the centre frequency of
   every semitone from A0 up to the top mel band -- a linear map, so it needs no STFT or librosa;
2. spectral contrast: each semitone bin minus its +-`contrast_semitones` neighbourhood mean, kept where
   positive, so partials stand out and loudness and the piano's envelope drop out;
3. harmonic summation: the salience of key p is the weighted sum of the contrast at p and its first
   `n_harmonics - 1` overtones (12 log2 h semitones up), over the 88 piano keys;
4. chroma (the salience folded onto the 12 pitch classes) plus two scalars the codes still need: the frame's
   loudness (mean log-mel) and its onset strength (half-wave rectified spectral flux).

Everything is torch and differentiable, so LM^A's soft tokens (methods/lm_features.py) use the same features.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig, mel_frequencies
from lmm_utils.core.motion import N_KEYS, PIANO_LOW

N_HARMONICS = 5  # partials summed into a key's salience (the fundamental and 4 overtones)
HARMONIC_DECAY = 0.8  # weight of partial h is decay ** (h - 1): higher partials are weaker and less reliable
CONTRAST_SEMITONES = 6  # half-width of the neighbourhood a bin is compared with (half an octave)
N_CHROMA = 12


def _midi_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


@lru_cache(maxsize=8)
def _semitone_map(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_semitones, n_mels): linear interpolation of the log-mel at each semitone's centre, in log-frequency.
    Semitones run from A0 to the last one under the top mel band's centre."""
    centres = np.log2(mel_frequencies(FeatureConfig(n_mels=n_mels, fmin=fmin, fmax=fmax)))
    top = int(np.floor(69 + 12 * (centres[-1] - np.log2(440.0))))
    semis = np.log2(_midi_hz(np.arange(PIANO_LOW, top + 1)))
    w = np.zeros((len(semis), n_mels), np.float32)
    for i, s in enumerate(semis):
        j = int(np.clip(np.searchsorted(centres, s) - 1, 0, n_mels - 2))
        t = float(np.clip((s - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0))
        w[i, j], w[i, j + 1] = 1.0 - t, t
    return w


@lru_cache(maxsize=8)
def _harmonic_map(n_semitones: int) -> np.ndarray:
    """(88, n_semitones): key p sums its partials at p + round(12 log2 h), h = 1..N_HARMONICS, when in range."""
    w = np.zeros((N_KEYS, n_semitones), np.float32)
    for key in range(N_KEYS):
        for h in range(1, N_HARMONICS + 1):
            k = key + int(round(12 * np.log2(h)))
            if k < n_semitones:
                w[key, k] += HARMONIC_DECAY ** (h - 1)
    return w


def n_pitch_features() -> int:
    """Features per frame: 88 key saliences, 12 chroma, loudness, onset strength."""
    return N_KEYS + N_CHROMA + 2


def pitch_features(logmel: torch.Tensor, fmin: float = 27.5, fmax: float = 8000.0) -> torch.Tensor:
    """(..., n_mels, T) log-mel -> (..., n_pitch_features(), T) float32; differentiable in logmel."""
    if logmel.ndim < 2:
        raise ValueError(f"expected (..., n_mels, T) log-mel, got shape {tuple(logmel.shape)}")
    n_mels = logmel.shape[-2]
    if n_mels < 8:
        raise ValueError(f"pitch features need a real mel spectrogram (>= 8 bands), got {n_mels}")
    x = logmel.float()
    semi = torch.from_numpy(_semitone_map(n_mels, float(fmin), float(fmax))).to(x)
    spec = torch.matmul(semi, x)  # (..., S, T) log-power per semitone
    width = 2 * CONTRAST_SEMITONES + 1
    flat = spec.movedim(-2, -1).reshape(-1, 1, spec.shape[-2])  # rows = frames, the semitone axis last
    local = torch.nn.functional.avg_pool1d(flat, width, stride=1, padding=CONTRAST_SEMITONES,
                                           count_include_pad=False)
    contrast = torch.relu(flat - local).reshape(*spec.shape[:-2], spec.shape[-1], spec.shape[-2]).movedim(-1, -2)
    harm = torch.from_numpy(_harmonic_map(spec.shape[-2])).to(x)
    salience = torch.matmul(harm, contrast)  # (..., 88, T)
    keys = torch.arange(N_KEYS, device=x.device)
    fold = (keys[None, :] + PIANO_LOW) % N_CHROMA == torch.arange(N_CHROMA, device=x.device)[:, None]
    chroma = torch.matmul(fold.to(x), salience)  # (..., 12, T)
    loud = x.mean(-2, keepdim=True)
    flux = torch.relu(torch.diff(x, dim=-1, prepend=x[..., :1])).mean(-2, keepdim=True)
    return torch.cat([salience, chroma, loud, flux], dim=-2)


__all__ = ["pitch_features", "n_pitch_features", "N_HARMONICS", "CONTRAST_SEMITONES"]
