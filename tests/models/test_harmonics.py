"""models/harmonics.py: harmonic suppression on h's onset posterior (DecodeConfig.harmonic_ratio)."""
import numpy as np

from lmm_utils.models.harmonics import HARMONIC_RATIO, suppress_harmonics


def _onsets(*cells):
    o = np.zeros((88, 6), np.float32)
    for key, frame, p in cells:
        o[key, frame] = p
    return o


def test_a_weak_onset_an_octave_twelfth_or_two_octaves_above_a_strong_one_is_dropped():
    o = _onsets((40, 2, 0.9), (52, 3, 0.6), (59, 1, 0.6), (64, 2, 0.6), (45, 2, 0.6))
    out = suppress_harmonics(o, 0.75)
    # 52 = +12 one frame later, 59 = +19 one frame earlier, 64 = +24: all below 0.75 * 0.9; 45 (+5) is no partial
    assert out[52, 3] == out[59, 1] == out[64, 2] == 0.0 and out[45, 2] == 0.6 and out[40, 2] == 0.9
    assert o[52, 3] == 0.6  # the input is left as it was


def test_a_doubling_played_as_strongly_is_kept_a_distant_frame_does_not_count_and_ratio_zero_changes_nothing():
    o = _onsets((40, 2, 0.9), (52, 2, 0.8), (76, 2, 0.5), (64, 5, 0.55))
    out = suppress_harmonics(o, HARMONIC_RATIO)
    assert out[52, 2] == 0.8  # 0.8 >= 0.75 * 0.9: an octave doubling, not a partial
    assert out[76, 2] == 0.0  # 76 = 52 + 24, and 0.5 < 0.75 * 0.8
    assert out[64, 5] == 0.55  # 64 = 40 + 24, but three frames after 40's onset
    assert np.array_equal(suppress_harmonics(o, 0.0), o)


def test_the_methods_decoders_drop_a_partial_by_default_and_agree():
    import torch

    from lmm_utils.methods.wrappers import fast_decode
    from lmm_utils.models.transcriber import DecodeConfig, decode

    logit = torch.full((88, 10), -10.0)
    onset, frame = logit.clone(), logit.clone()
    onset[39, 2], onset[51, 2] = 4.0, 0.4055  # C4 certain, C5 (its octave partial) at 0.6
    frame[39, 2:8] = frame[51, 2:8] = 4.0
    out = {"onset": onset, "frame": frame, "velocity": torch.zeros(88, 10)}
    for dec in (decode, fast_decode):
        assert [n.pitch for n in dec(out, 50.0).notes] == [60]
        assert [n.pitch for n in dec(out, 50.0, DecodeConfig(harmonic_ratio=0.0)).notes] == [60, 72]
