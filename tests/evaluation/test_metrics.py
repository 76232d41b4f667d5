"""metrics.py: known answers on hand-made performances."""
import math

import numpy as np
import pytest

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.evaluation.metrics import (
    aggregate,
    dtw_align_onsets,
    frame_scores,
    note_scores,
    performance_scores,
    transcription_scores,
)


def _perf(seed: int = 0, n: int = 30, chords: bool = True) -> Performance:
    rng = np.random.default_rng(seed)
    notes, t = [], 0.3
    for _ in range(n):
        size = int(rng.integers(1, 4)) if chords else 1
        for p in rng.choice(np.arange(48, 84), size=size, replace=False):
            notes.append(PerformedNote(int(p), t, t + float(rng.uniform(0.15, 0.5)), int(rng.integers(30, 110))))
        t += float(rng.choice([0.25, 0.5]))
    return Performance(notes=sorted(notes, key=lambda x: (x.onset, x.pitch)))


def _map(perf: Performance, f) -> Performance:
    return Performance(notes=[f(n) for n in perf.notes])


def test_perfect_transcription_scores_one():
    ref = _perf()
    s = transcription_scores(ref, ref)
    for k in ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"):
        assert s[k] == pytest.approx(1.0), k


def test_onset_tolerance_is_50ms():
    ref = _perf()

    def late(d: float) -> Performance:
        return _map(ref, lambda n: PerformedNote(n.pitch, n.onset + d, n.offset + d, n.velocity))

    assert note_scores(ref, late(0.03))["note_f1"] == pytest.approx(1.0)
    assert note_scores(ref, late(0.10))["note_f1"] == 0.0


def test_wrong_pitch_and_offsets_and_velocity():
    ref = _perf(chords=False)  # in a chord a semitone up can land on another chord note
    up = _map(ref, lambda n: PerformedNote(n.pitch + 1, n.onset, n.offset, n.velocity))
    assert note_scores(ref, up)["note_f1"] == 0.0
    short = _map(ref, lambda n: PerformedNote(n.pitch, n.onset, n.onset + 0.05, n.velocity))
    s = note_scores(ref, short)
    assert s["note_f1"] == pytest.approx(1.0) and s["note_offset_f1"] < 0.2
    # Velocity F1 tolerates a global rescaling (mir_eval fits one) but not scrambled velocities.
    scaled = _map(ref, lambda n: PerformedNote(n.pitch, n.onset, n.offset, max(1, n.velocity // 2)))
    assert note_scores(ref, scaled)["note_offset_velocity_f1"] > 0.9
    rng = np.random.default_rng(1)
    scrambled = _map(ref, lambda n: PerformedNote(n.pitch, n.onset, n.offset, int(rng.integers(1, 128))))
    assert note_scores(ref, scrambled)["note_offset_velocity_f1"] < 0.6


def test_frame_f1_half_overlap():
    ref = Performance(notes=[PerformedNote(60, 0.0, 1.0, 80)])
    est = Performance(notes=[PerformedNote(60, 0.5, 1.5, 80)])
    s = frame_scores(ref, est)
    assert s["frame_p"] == pytest.approx(0.5) and s["frame_r"] == pytest.approx(0.5)


def test_empty_performances():
    empty, ref = Performance(notes=[]), _perf()
    assert note_scores(empty, empty)["note_f1"] == 1.0
    assert note_scores(ref, empty)["note_f1"] == 0.0
    assert note_scores(empty, ref)["note_f1"] == 0.0
    assert performance_scores(ref, empty)["aligned_note_f1"] == 0.0


def test_tempo_stretch_is_caught_by_tempo_not_by_aligned_f1():
    ref = _perf(seed=2)
    slow = _map(ref, lambda n: PerformedNote(n.pitch, 1.25 * n.onset, 1.25 * n.offset, n.velocity + 5))
    s = performance_scores(ref, slow)
    assert s["note_f1"] < 0.3
    assert s["aligned_note_f1"] == pytest.approx(1.0)
    assert s["duration_ratio"] == pytest.approx(1.25, rel=1e-6)
    assert s["ioi_ratio"] == pytest.approx(1.25, rel=1e-6)
    assert s["tempo_log_error"] == pytest.approx(math.log(1.25), rel=1e-6)
    assert s["velocity_mae"] == pytest.approx(5.0)


def test_aligned_f1_still_counts_wrong_and_missing_notes():
    ref = _perf(seed=3, chords=False)
    # Drop every 4th note and transpose every 5th of the rest, then play 10% faster with jitter.
    rng = np.random.default_rng(0)
    kept = [n for i, n in enumerate(ref.notes) if i % 4 != 3]
    est = Performance(notes=[PerformedNote(n.pitch + (1 if i % 5 == 0 else 0), 0.9 * n.onset + rng.normal(0, 0.01),
                                           0.9 * n.offset, n.velocity) for i, n in enumerate(kept)])
    s = performance_scores(ref, est)
    n_ok = sum(1 for i in range(len(kept)) if i % 5 != 0)
    p, r = n_ok / len(kept), n_ok / len(ref.notes)
    assert s["aligned_note_f1"] == pytest.approx(2 * p * r / (p + r), abs=0.03)
    assert len(dtw_align_onsets(ref, est).notes) == len(est.notes)


def test_aggregate_means_per_collection_and_skips_nan():
    rows = [{"id": "a", "collection": "folk", "f1": 1.0, "tempo": float("nan")},
            {"id": "b", "collection": "folk", "f1": 0.5, "tempo": 2.0},
            {"id": "c", "collection": "chorales", "f1": 0.0, "tempo": 1.0}]
    agg = aggregate(rows)
    assert agg["all"]["f1"] == pytest.approx(0.5) and agg["all"]["n"] == 3
    assert agg["folk"]["f1"] == pytest.approx(0.75) and agg["folk"]["tempo"] == pytest.approx(2.0)
    assert agg["chorales"]["n"] == 1


def test_undefined_timing_is_nan_not_an_error():
    one = Performance(notes=[PerformedNote(60, 0.5, 1.0, 80)])
    s = performance_scores(one, one)
    assert s["aligned_note_f1"] == 1.0 and math.isnan(s["duration_ratio"])  # one onset: no span to compare
    assert math.isnan(performance_scores(_perf(), Performance(notes=[]))["duration_ratio"])


def test_predictions_file_round_trip_is_deterministic_and_scored_like_midi(tmp_path):
    """The compact predictions file gives the same performances back, the same bytes for the same predictions,
    and the same scores as MIDI files of those performances (up to MIDI's tick rounding)."""
    from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote, write_midi
    from lmm_utils.evaluation.predictions import (
        PREDICTIONS_FILE,
        MidiFolder,
        read_predictions,
        run_sources,
        write_predictions,
    )
    from lmm_utils.evaluation.scoring import score_source

    perf = Performance([PerformedNote(60, 0.1, 0.6, 80), PerformedNote(64, 0.5, 1.2, 70)], [PedalEvent(0.2, True)])
    preds = {"h": {"x1": perf, "x0": Performance(notes=[])}, "g": {"x1": perf}}
    write_predictions(preds, tmp_path / "a.gz")
    write_predictions(preds, tmp_path / "b.gz")
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    back = read_predictions(tmp_path / "a.gz")
    assert back["h"]["x1"] == perf and back["h"]["x0"].notes == []
    write_predictions(preds, tmp_path / PREDICTIONS_FILE)
    src = run_sources(tmp_path)
    assert set(src) == {"h", "g"} and src["h"].ids() == ["x0", "x1"] and src["g"].get("x0")[1] == "missing"
    (tmp_path / "midi").mkdir()
    write_midi(perf, tmp_path / "midi" / "x1.mid")

    class _Truth:
        ids = ["x1"]
        collection = {"x1": "essenFolksong"}
        perf = {"x1": Performance([PerformedNote(60, 0.1, 0.6, 80), PerformedNote(67, 0.5, 1.0, 70)])}

    a = score_source(src["h"], _Truth, "transcription")[0]
    b = score_source(MidiFolder(tmp_path / "midi"), _Truth, "transcription")[0]
    assert a["note_f1"] == b["note_f1"] == 0.5 and a["status"] == b["status"] == "ok"
    (tmp_path / PREDICTIONS_FILE).write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a readable predictions file"):
        run_sources(tmp_path)


def test_expressive_scores_reward_structure_not_one_drift():
    """Per-note velocity / timing correlations: the truth itself scores r = 1; a constant velocity scores r = 0; a
    uniformly slower rendition keeps log-IOI r = 1 and no onset deviation after the tempo fit."""
    from lmm_utils.evaluation.metrics import performance_scores

    rng = np.random.default_rng(0)
    onsets = np.cumsum(rng.uniform(0.2, 0.6, 24))
    vel = rng.integers(30, 110, 24)
    ref = Performance([PerformedNote(60 + i % 12, float(t), float(t) + 0.3 + 0.1 * (i % 3), int(v))
                       for i, (t, v) in enumerate(zip(onsets, vel))])
    same = performance_scores(ref, ref)
    assert same["velocity_r"] == pytest.approx(1.0) and same["log_ioi_r"] == pytest.approx(1.0)
    assert same["articulation_r"] == pytest.approx(1.0) and same["onset_dev_ms"] == pytest.approx(0.0, abs=1e-6)
    flat = Performance([PerformedNote(n.pitch, n.onset, n.offset, 64) for n in ref.notes])
    assert performance_scores(ref, flat)["velocity_r"] == 0.0
    slow = Performance([PerformedNote(n.pitch, 1.1 * n.onset, 1.1 * n.offset, n.velocity) for n in ref.notes])
    s = performance_scores(ref, slow)
    assert s["log_ioi_r"] == pytest.approx(1.0) and s["onset_dev_ms"] == pytest.approx(0.0, abs=1e-6)
    assert s["tempo_log_error"] == pytest.approx(np.log(1.1))


def test_pedal_f1_counts_pedal_down_frames_only_where_the_truth_pedals():
    """pedal_f1: nan without pedal in the truth; 1 for the same pedalling; 0 for none; a half-overlap in between."""
    from lmm_utils.core.motion import PedalEvent
    from lmm_utils.evaluation.metrics import pedal_scores

    notes = [PerformedNote(60, 0.0, 4.0, 64)]
    ref = Performance(notes, pedal=[PedalEvent(0.0, True), PedalEvent(2.0, False)])
    assert math.isnan(pedal_scores(Performance(notes), ref)["pedal_f1"])
    assert pedal_scores(ref, ref)["pedal_f1"] == pytest.approx(1.0)
    assert pedal_scores(ref, Performance(notes))["pedal_f1"] == 0.0
    shifted = Performance(notes, pedal=[PedalEvent(1.0, True), PedalEvent(3.0, False)])
    assert pedal_scores(ref, shifted)["pedal_f1"] == pytest.approx(0.5, abs=0.02)  # 1 s of 2 s overlap
    assert math.isnan(performance_scores(Performance(notes), Performance(notes))["pedal_f1"])
    assert performance_scores(ref, ref)["pedal_f1"] == pytest.approx(1.0)
