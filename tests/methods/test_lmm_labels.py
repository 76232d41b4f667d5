"""lmm's label cleaning: criteria combined by z-score, S's reconstruction prefers the right transcription."""
from __future__ import annotations

import numpy as np
import pytest

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.methods.alignment import TemplateSynth, render_logmel
from lmm_utils.methods.lmm_labels import combine_criteria, keep_best, rank_transcriptions, recon_errors
from lmm_utils.tokens.motion import MotionTokenizer

FEAT = FeatureConfig()


def _perf(pitches: list[int]) -> Performance:
    return Performance([PerformedNote(p, 0.2 + 0.4 * i, 0.55 + 0.4 * i, 80) for i, p in enumerate(pitches)])


def test_combine_criteria_sums_z_scores_and_keeps_minus_inf():
    assert np.allclose(combine_criteria({"a": [1.0, 2.0, 3.0], "b": [30.0, 20.0, 10.0]}), 0.0)  # opposite, cancel
    out = combine_criteria({"a": [1.0, 2.0, 3.0], "b": [30.0, 20.0, float("-inf")]})
    assert out[2] == float("-inf") and out[0] > out[1]  # z-scores: b's scale does not matter
    assert combine_criteria({}) == []


def test_recon_error_prefers_the_transcription_that_explains_the_recording():
    synth = TemplateSynth(FEAT)
    truth = _perf([60, 64, 67, 72])
    rec = render_logmel(truth, synth, FEAT.fps, 150)
    wrong = _perf([61, 66, 70, 75])
    half = _perf([60, 64])
    err = recon_errors([truth, wrong, half, Performance([])], [rec] * 4, synth, FEAT.fps)
    assert err[0] < err[2] < err[1] and err[3] == float("inf")


def test_rank_transcriptions_without_criteria_is_random_but_seeded():
    synth, tok = TemplateSynth(FEAT), MotionTokenizer()
    truth = _perf([60, 64, 67])
    rec = render_logmel(truth, synth, FEAT.fps, 120)
    cands = [_perf([50, 52, 55]), truth, Performance([])]
    scores, crit = rank_transcriptions(cands, [rec] * 3, None, tok, synth, FEAT.fps, (1, 4), np.random.default_rng(0))
    assert set(crit) == {"recon"} and keep_best(scores, 1) == [1]
    r1, c1 = rank_transcriptions(cands, [rec] * 3, None, tok, None, FEAT.fps, (1,), np.random.default_rng(5))
    r2, _ = rank_transcriptions(cands, [rec] * 3, None, tok, None, FEAT.fps, (1,), np.random.default_rng(5))
    assert c1 == {} and r1 == r2 and r1[2] == float("-inf")


def test_certainty_prefers_sure_rolls_ignores_silence_and_joins_the_ranking():
    import torch

    from lmm_utils.methods.lmm_labels import certainty

    def logits(p_on: float, n_on: int = 20) -> dict[str, torch.Tensor]:
        p = torch.full((88, 100), 1e-4)
        p[40, :n_on] = p_on
        x = torch.logit(p)
        return {"onset": x, "frame": x, "velocity": x}

    sure, unsure = certainty(logits(0.97)), certainty(logits(0.55))
    assert unsure < sure <= 0 and unsure == pytest.approx(-4 * 0.55 * 0.45, abs=1e-4)
    assert certainty(logits(0.97, n_on=80)) == pytest.approx(sure, abs=1e-6)  # more silence or more notes: same
    assert certainty(logits(0.05)) == float("-inf")  # nothing at or above the floor: nothing transcribed
    dead_frames = {**logits(0.97), "frame": torch.full((88, 100), -12.0)}  # a collapsed frame head: onsets decide
    assert certainty(dead_frames) == pytest.approx(-4 * 0.97 * 0.03, abs=1e-4)
    perfs = [Performance([PerformedNote(60, 0.0, 0.5, 80)])] * 3
    scores, crit = rank_transcriptions(perfs, [np.zeros((8, 10))] * 3, None, MotionTokenizer(), None, 50.0, (1,),
                                       np.random.default_rng(0), certainties=[-0.9, -0.1, -0.5])
    assert crit == {"certainty": [-0.9, -0.1, -0.5]} and keep_best(scores, 1) == [1]
