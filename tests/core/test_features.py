"""core.features: the filterbank written out in numpy equals librosa's default bit for bit (features unchanged)."""
import numpy as np
import pytest

from lmm_utils.core.features import FeatureConfig, log_mel, mel_filterbank, mel_frequencies


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(sample_rate=22050, n_fft=1024, n_mels=64, fmin=0.0,
                                                                  fmax=11025.0)])
def test_mel_filterbank_equals_librosa(cfg):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    ours = mel_filterbank(cfg)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)  # bit for bit: features (and every number downstream) unchanged
    ref_f = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]
    np.testing.assert_allclose(mel_frequencies(cfg), ref_f, rtol=1e-9)


def test_log_mel_of_a_sine_peaks_at_its_band():
    cfg = FeatureConfig()
    t = np.arange(cfg.sample_rate) / cfg.sample_rate
    x = 0.5 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    lm = log_mel(x, cfg)
    assert lm.shape == (cfg.n_mels, cfg.n_frames(len(x)))
    peak = int(np.argmax(lm[:, lm.shape[1] // 2]))
    assert abs(mel_frequencies(cfg)[peak] - 440.0) < 30.0
