"""alignment.py: DTW pseudo-motion recovers the onsets of a tempo-changed rendering of a score."""
import dataclasses

import factories
import numpy as np
import pytest
import torch

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.evaluation.metrics import alignment_accuracy
from lmm_utils.methods.alignment import (
    AlignConfig,
    TemplateSynth,
    align_pair,
    render_logmel,
    time_map,
)
from lmm_utils.models.performer import PlainConfig, plain_performance

FEAT = FeatureConfig()


def _score(seed: int, voices: int, bpm: float = 100.0) -> ScoreExcerpt:
    def walk(rng, p, centre):  # no repeated pitch: see test_repeated_notes
        return int(np.clip(p + int(rng.choice([-4, -3, -2, -1, 1, 2, 3, 4])), centre - 7, centre + 7))

    notes = factories.voices(np.random.default_rng(seed), voices, 16.0, [0.5, 1.0, 1.0, 2.0], walk)
    return factories.excerpt(notes, id=f"a{seed}", piece_id=f"p{seed}", n_bars=4, bpm=bpm)


def _expressive(score: ScoreExcerpt, factor: float, seed: int) -> Performance:
    """The score played `factor` times slower than the mark, with a slow rubato and 8 ms onset jitter."""
    rng = np.random.default_rng(seed)
    plain = plain_performance(score, PlainConfig(lead_in=0.3))
    def warp(t):
        return 0.3 + factor * (t - 0.3) + 0.15 * np.sin(2 * np.pi * (t - 0.3) / 6.0)
    return Performance(notes=[PerformedNote(n.pitch, float(warp(n.onset) + rng.normal(0, 0.008)),
                                            float(warp(n.offset) - 0.05), int(rng.integers(55, 90)))
                              for n in plain.notes])


@pytest.mark.parametrize("voices,factor", [(1, 1.25), (4, 0.8)])
def test_recovers_onsets_of_a_tempo_changed_rendering(voices, factor):
    torch.set_num_threads(1)
    score = _score(voices, voices)
    truth = _expressive(score, factor, seed=voices)
    synth = TemplateSynth(FEAT)
    recording = render_logmel(truth, synth, FEAT.fps, int((truth.duration + 1.0) * FEAT.fps))
    recording = recording + 0.05 * np.random.default_rng(0).standard_normal(recording.shape).astype(np.float32)
    pseudo = align_pair(score, recording, synth, AlignConfig())
    acc = alignment_accuracy(pseudo, truth)
    assert acc["note_f1"] >= 0.95, acc
    assert acc["onset_median_error_ms"] <= 20.0, acc
    # Contract: one note per score note, in score order.
    assert [n.pitch for n in pseudo.notes] == [n.pitch for n in score.notes]
    # Without alignment the plain performance is far off: the test is not trivially passed.
    assert alignment_accuracy(plain_performance(score), truth)["note_f1"] < 0.5


def test_aligns_a_fluidsynth_recording_with_a_crude_template():
    render = pytest.importorskip("lmm_utils.data.render")
    try:
        renderer = render.FluidRenderer(FEAT.sample_rate)
        cond = render.RecordingConditions("FluidR3_GM.sf2", reverb_level=0.1, gain_db=-6.0)
        render.find_soundfont(cond.soundfont)
    except render.MissingSystemDependency as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(1)
    score = _score(10, 1)
    truth = _expressive(score, 1.2, seed=10)
    recording = log_mel(renderer.render(truth, cond), FEAT)
    acc = alignment_accuracy(align_pair(score, recording, TemplateSynth(FEAT)), truth)
    assert acc["note_f1"] >= 0.85, acc


def test_alignment_accuracy_of_the_truth_is_perfect():
    truth = _expressive(_score(3, 2), 1.0, seed=3)
    acc = alignment_accuracy(truth, truth)
    assert acc["note_f1"] == 1.0 and acc["onset_median_error_ms"] == 0.0 and acc["velocity_mae"] == 0.0


def test_time_map_is_monotone_and_exact_on_a_diagonal():
    diag = np.stack([np.arange(50), np.arange(50)], axis=1)
    assert np.allclose(time_map(diag, 50.0)(np.array([0.1, 0.5, 0.73])), [0.1, 0.5, 0.73])
    # A path where the recording is twice as slow: template frame i -> recording frames 2i, 2i+1.
    slow = np.array([(i // 2, i) for i in range(100)])
    mapped = time_map(slow, 50.0)(np.linspace(0, 0.98, 30))
    assert np.all(np.diff(mapped) >= 0) and mapped[-1] == pytest.approx(2 * 0.98, abs=0.03)


def test_dynamics_velocity_mode_uses_the_marks():
    score = dataclasses.replace(_score(4, 1), dynamics=[(0.0, "pp"), (8.0, "ff")])
    synth = TemplateSynth(FEAT)
    plain = plain_performance(score)
    recording = render_logmel(plain, synth, FEAT.fps, int((plain.duration + 1.0) * FEAT.fps))
    pseudo = align_pair(score, recording, synth, AlignConfig(velocity_mode="dynamics"))
    assert [n.velocity for n in pseudo.notes] == [n.velocity for n in plain.notes]
    energy = align_pair(score, recording, synth, AlignConfig(velocity_mode="energy", velocity_energy_weight=1.0))
    # The recording is the template itself, so the energy estimate agrees with the marks (to rounding).
    assert np.abs(np.array([n.velocity for n in energy.notes]) - [n.velocity for n in plain.notes]).max() <= 3


def test_invert_velocity_mode_reads_the_recordings_dynamics_through_S():
    """A recording whose velocities follow a known arch (S = the recorder here): inverting S's response recovers
    them closely (r > 0.9, MAE < 6); the marks (one mark: one velocity) recover none of it."""
    torch.set_num_threads(1)
    score = _score(5, 1)
    plain = plain_performance(score)
    arch = [int(45 + 50 * np.sin(np.pi * i / max(len(plain.notes) - 1, 1))) for i in range(len(plain.notes))]
    truth = Performance(notes=[PerformedNote(n.pitch, n.onset, n.offset, v) for n, v in zip(plain.notes, arch)])
    synth = TemplateSynth(FEAT)
    recording = render_logmel(truth, synth, FEAT.fps, int((truth.duration + 1.0) * FEAT.fps))
    vel = np.array([n.velocity for n in align_pair(score, recording, synth, AlignConfig(
        velocity_mode="invert", velocity_energy_weight=1.0)).notes])
    # the gain is unknown: the median note is anchored at the mark, so compare after removing the median ratio
    scaled = vel * np.median(np.array(arch) / vel)
    assert np.corrcoef(arch, vel)[0, 1] > 0.9 and np.mean(np.abs(scaled - arch)) < 6.0
    marks = [n.velocity for n in align_pair(score, recording, synth, AlignConfig(velocity_mode="dynamics")).notes]
    assert np.std(marks) == 0.0
    with pytest.raises(ValueError, match="velocity_mode"):
        align_pair(score, recording, synth, AlignConfig(velocity_mode="loud"))
