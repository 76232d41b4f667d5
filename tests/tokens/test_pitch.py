from __future__ import annotations

import numpy as np
import pytest
import torch

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.motion import N_KEYS, PIANO_LOW
from lmm_utils.tokens.pitch import n_pitch_features, pitch_features

FEAT = FeatureConfig()


def tone(midi: int, seconds: float = 0.6, n_partials: int = 8, start: float = 0.2) -> np.ndarray:
    """A harmonic tone (partials decaying as 1/h) after `start` seconds of silence."""
    sr = FEAT.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, n_partials + 1) if h * f0 < sr / 2)
    return np.concatenate([np.zeros(int(start * sr)), 0.3 * x]).astype(np.float32)


@pytest.mark.parametrize("midi", [52, 60, 69, 76, 84])
def test_salience_and_chroma_peak_at_the_played_key(midi):
    mel = log_mel(tone(midi), FEAT)
    f = pitch_features(torch.from_numpy(mel), FEAT.fmin, FEAT.fmax).numpy()
    assert f.shape == (n_pitch_features(), mel.shape[1])
    sounding = f[:, 20:35].mean(1)  # frames 0.4-0.7 s: the tone is on
    assert int(np.argmax(sounding[:N_KEYS])) + PIANO_LOW == midi
    assert int(np.argmax(sounding[N_KEYS:N_KEYS + 12])) == midi % 12


def test_onset_strength_peaks_at_the_onset_and_silence_has_no_salience():
    mel = log_mel(tone(64), FEAT)
    f = pitch_features(torch.from_numpy(mel)).numpy()
    onset = int(0.2 * FEAT.fps)
    assert abs(int(np.argmax(f[-1])) - onset) <= 2
    assert f[:N_KEYS, :5].max() < 0.2 * f[:N_KEYS, 20:35].max()  # before the tone: flat noise floor


def test_pitch_features_are_differentiable_and_batched():
    rng = np.random.default_rng(0)
    mel = torch.tensor(rng.normal(size=(2, FEAT.n_mels, 12)), dtype=torch.float32, requires_grad=True)
    f = pitch_features(mel)
    assert f.shape == (2, n_pitch_features(), 12)
    assert torch.allclose(f[1], pitch_features(mel[1].detach()), atol=1e-5)
    f.sum().backward()
    assert torch.isfinite(mel.grad).all() and mel.grad.abs().sum() > 0


def test_pitch_features_reject_bad_input():
    with pytest.raises(ValueError):
        pitch_features(torch.zeros(128))
    with pytest.raises(ValueError):
        pitch_features(torch.zeros(4, 10))
