from __future__ import annotations

import numpy as np
import pytest

from lmm_utils.core.motion import N_KEYS
from lmm_utils.lm.probe import (
    ProbeConfig,
    cell_scores,
    code_frames,
    evaluate_probe,
    fit_probe,
    logmel_frames,
    probe_f1,
)
from lmm_utils.tokens.audio import AudioTokenizer

FAST = ProbeConfig(steps=150, batch_frames=1024)


def rolls(seed: int, n: int = 4, frames: int = 120, keys: tuple[int, int] = (20, 70)) -> list[np.ndarray]:
    """Random sparse key-down rolls: a few keys held for a few frames each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        r = np.zeros((N_KEYS, frames), np.float32)
        for _ in range(12):
            k, on = rng.integers(*keys), rng.integers(0, frames - 10)
            r[k, on:on + rng.integers(3, 10)] = 1.0
        out.append(r)
    return out


def mix(r: np.ndarray, w: np.ndarray, noise: float, rng) -> np.ndarray:
    return (w @ r + noise * rng.normal(size=(w.shape[0], r.shape[1]))).astype(np.float32)


def test_cell_scores():
    ref = np.zeros((N_KEYS, 4), bool)
    ref[0, :2] = True
    est = np.zeros_like(ref)
    est[0, 1:3] = True
    assert cell_scores(ref, est) == {"frame_p": 0.5, "frame_r": 0.5, "frame_f1": 0.5}
    assert cell_scores(ref, np.zeros_like(ref))["frame_f1"] == 0.0


def test_probe_reads_pitch_from_features_that_hold_it_and_not_from_noise():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(96, N_KEYS))  # 96 features, a linear image of the roll (the probe can invert it)
    train, test = rolls(0, keys=(30, 42)), rolls(1, keys=(30, 42))  # keys the probe has seen held
    good = fit_probe([mix(r, w, 0.05, rng) for r in train], train, FAST)
    assert evaluate_probe(good, [mix(r, w, 0.05, rng) for r in test], test)["frame_f1"] > 0.8
    noise = [rng.normal(size=(96, r.shape[1])).astype(np.float32) for r in train + test]
    blind = fit_probe(noise[:4], train, FAST)
    assert evaluate_probe(blind, noise[4:], test)["frame_f1"] < 0.3


def test_code_frames_and_probe_f1_on_a_tokenizer():
    rng = np.random.default_rng(1)
    train, test = rolls(2, n=3, keys=(30, 40)), rolls(3, n=2, keys=(30, 40))  # 10 keys in 16 "mel bands"
    w = rng.normal(size=(16, N_KEYS))
    mels = [mix(r, w, 0.1, rng) for r in train + test]
    tok = AudioTokenizer(n_mels=16, frames_per_token=2, codebook_size=8, kmeans_iters=3)
    tok.fit(mels[:3], progress=False)
    one_hot = code_frames(tok)(mels[0][:, :7])  # odd frame count: the last token covers one frame
    assert one_hot.shape == (8, 7) and np.all(one_hot.sum(0) == 1)
    scores = probe_f1(logmel_frames, mels[:3], train, mels[3:], test, FAST)
    assert 0.5 < scores["frame_f1"] <= 1 and scores["threshold"] in FAST.thresholds


def test_probe_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        fit_probe([np.zeros((4, 10), np.float32)], [np.zeros((N_KEYS, 9), np.float32)], FAST)
    with pytest.raises(ValueError):
        fit_probe([], [], FAST)
