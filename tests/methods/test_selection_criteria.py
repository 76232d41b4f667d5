"""Label-free criteria for choosing an h: S's reconstruction and LM^M prefer the h that hears the recording."""
from __future__ import annotations

import numpy as np
import pytest

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.methods.alignment import TemplateSynth, render_logmel
from lmm_utils.methods.selection import unsupervised_criteria
from lmm_utils.tokens.motion import MotionTokenizer

FEAT = FeatureConfig()


def _perf(pitches: list[int]) -> Performance:
    return Performance([PerformedNote(p, 0.2 + 0.4 * i, 0.55 + 0.4 * i, 80) for i, p in enumerate(pitches)])


class FixedH:
    """An 'h' that answers every recording with one performance."""

    def __init__(self, perf: Performance):
        self.perf = perf

    def transcribe(self, logmel):
        return self.perf


class PitchLM:
    """A stand-in LM^M: log-prob -1 for every token."""

    tokenizer = MotionTokenizer()

    def log_probs(self, tokens):
        return np.full(len(tokens), -1.0)


def test_recon_prefers_the_h_whose_notes_explain_the_recording():
    synth = TemplateSynth(FEAT)
    truth = _perf([60, 64, 67, 72])
    sample = [("a", render_logmel(truth, synth, FEAT.fps, 150)), ("b", render_logmel(truth, synth, FEAT.fps, 150))]
    right = unsupervised_criteria(FixedH(truth), sample, synth, PitchLM(), FEAT)
    wrong = unsupervised_criteria(FixedH(_perf([61, 66, 70, 75])), sample, synth, PitchLM(), FEAT)
    silent = unsupervised_criteria(FixedH(Performance([])), sample, synth, PitchLM(), FEAT)
    assert right["recon"] > max(wrong["recon"], silent["recon"])
    assert right["empty_fraction"] == 0.0 and silent["empty_fraction"] == 1.0
    chance = -np.log(PitchLM.tokenizer.vocab_size)
    assert right["lmM"] == pytest.approx(-1.0) and silent["lmM"] == pytest.approx(chance)   # empty: chance


def test_an_empty_sample_is_refused():
    with pytest.raises(ValueError, match="empty"):
        unsupervised_criteria(FixedH(Performance([])), [], TemplateSynth(FEAT), PitchLM(), FEAT)
