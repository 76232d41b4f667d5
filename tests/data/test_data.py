"""The benchmark data: corpus parsing, deduplication, split, excerpts, pianist, engraving, rendering."""
import json

import factories
import numpy as np
import pytest

from lmm_utils.core.motion import Performance, PerformedNote, from_roll, read_midi, to_roll, write_midi
from lmm_utils.core.score import ScoreExcerpt, ScoreNote
from lmm_utils.data.corpus import (
    CHORALES,
    CorpusError,
    Piece,
    WorkRef,
    deduplicate,
    list_user_works,
    list_works,
    melody_hash,
    parse_work,
    parse_works,
)
from lmm_utils.data.engrave import EngraveConfig, engrave, spell
from lmm_utils.data.excerpts import ExcerptConfig, bar_windows, make_excerpts
from lmm_utils.data.pianist import PianistConfig, perform
from lmm_utils.data.pools import (
    POOLS,
    LeakageError,
    SplitError,
    TrainingData,
    check_disjoint,
    check_fractions,
    split_pieces,
)
from lmm_utils.data.render import FluidRenderer, MissingSystemDependency, RecordingConditions, find_soundfont


def make_piece(pid, pitches, collection="folk", durs=None, meter="4/4", transpose=0):
    durs = durs or [1.0] * len(pitches)
    notes, t = [], 0.0
    for p, d in zip(pitches, durs):
        notes.append([p + transpose, t, d, 0])
        t += d
    n_bars = int(np.ceil(t / 4))
    bars = [[4.0 * i, 4.0, meter] for i in range(n_bars)]
    return Piece(id=pid, collection=collection, source=pid, title=pid, key="C major", key_fifths=0,
                 tempo_bpm=None, bars=bars, dynamics=[], notes=notes, n_voices=1)


TUNE = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 67, 64, 60, 60]


def test_melody_hash_ignores_transposition_but_not_rhythm():
    a = make_piece("a", TUNE)
    b = make_piece("b", TUNE, transpose=5)
    c = make_piece("c", TUNE, durs=[0.5] + [1.0] * (len(TUNE) - 1))
    assert melody_hash(a.notes) == melody_hash(b.notes)
    assert melody_hash(a.notes) != melody_hash(c.notes)


def test_deduplicate_across_collections_keeps_one():
    pieces = [make_piece("x-essen", TUNE, "essenFolksong"), make_piece("y-oneill", TUNE, "oneills1850", transpose=2),
              make_piece("z", TUNE[::-1], "ryansMammoth")]
    kept, dropped = deduplicate(pieces)
    assert [p.id for p in kept] == ["x-essen", "z"]
    assert dropped == [{"id": "y-oneill", "duplicate_of": "x-essen", "hash": kept[0].melody_hash}]


def test_known_duplicate_tunes_in_the_corpus_are_merged():
    # BWV 39.7 and BWV 194.6 harmonize the same chorale melody with the same rhythm.
    results = [parse_work(WorkRef(CHORALES, f"bach/{f}.mxl")) for f in ("bwv39.7", "bwv194.6")]
    pieces = [p for _, p, err in results]
    assert all(pieces)
    kept, dropped = deduplicate(pieces)
    assert len(kept) == 1 and dropped[0]["duplicate_of"] == kept[0].id


def test_split_is_disjoint_stratified_and_seeded():
    pieces = [make_piece(f"{c}-{i}", TUNE[: 4 + i % 8], c) for c in ("folk", "chorale") for i in range(40)]
    fr = {"U_V": 0.35, "U_A": 0.35, "P": 0.15, "T": 0.15}
    a = split_pieces(pieces, fr, seed=1)
    assert a == split_pieces(pieces, fr, seed=1)
    assert a != split_pieces(pieces, fr, seed=2)
    all_ids = [i for pool in POOLS for i in a[pool]]
    assert len(all_ids) == len(set(all_ids)) == len(pieces)
    for pool in POOLS:
        assert {i.split("-")[0] for i in a[pool]} == {"folk", "chorale"}, pool
    assert abs(len(a["T"]) - 12) <= 1


@pytest.mark.parametrize("fractions, message", [
    ({"U_V": 0.5, "U_A": 0.5, "P": 0.1, "T": 0.1}, "sum to 1"),
    ({"U_V": 0.5, "U_A": 0.5}, "missing"),
    ({"U_V": 1.2, "U_A": -0.4, "P": 0.1, "T": 0.1}, "positive"),
])
def test_impossible_fractions_are_refused(fractions, message):
    with pytest.raises(SplitError, match=message):
        check_fractions(fractions)


def test_check_disjoint_catches_a_shared_hash():
    splits = {"pools": {p: {"pieces": [], "excerpts": [], "hashes": []} for p in POOLS}}
    splits["pools"]["P"]["hashes"] = ["abc"]
    splits["pools"]["T"]["hashes"] = ["abc"]
    with pytest.raises(SplitError, match="both P and T"):
        check_disjoint(splits)


def test_excerpts_have_whole_bars_tempo_and_dynamics():
    piece = make_piece("p", TUNE * 2)
    cfg = ExcerptConfig(n_bars=2, max_per_piece=10)
    assert bar_windows(piece, 2) == [0, 2, 4, 6]
    excerpts = make_excerpts(piece, cfg, seed=0)
    assert len(excerpts) == 4
    for ex in excerpts:
        assert ex.length_beats == 8.0
        assert all(0 <= n.onset < 8 and n.onset + n.duration <= 8 + 1e-9 for n in ex.notes)
        assert cfg.tempo_bpm[0] <= ex.tempo_bpm <= cfg.tempo_bpm[1] and not ex.tempo_from_source
        assert ex.dynamics[0][0] == 0.0
    assert make_excerpts(piece, cfg, seed=0)[0].to_dict() == excerpts[0].to_dict()


def test_excerpts_keep_source_marks():
    piece = make_piece("p", TUNE)
    piece.tempo_bpm, piece.dynamics = 96.0, [[0.0, "p"], [4.0, "f"]]
    ex = make_excerpts(piece, ExcerptConfig(n_bars=4), seed=0)[0]
    assert ex.tempo_bpm == 96.0 and ex.tempo_from_source
    assert ex.dynamics == [(0.0, "p"), (4.0, "f")] and ex.dynamics_from_source
    assert ScoreExcerpt.from_dict(json.loads(json.dumps(ex.to_dict()))) == ex


def _score(dyn="mf", pitches=TUNE, voices=1):
    notes = [ScoreNote(p - 12 * v, float(i), 1.0, v) for v in range(voices) for i, p in enumerate(pitches)]
    return factories.excerpt(notes, collection="folk", n_bars=len(pitches) // 4, dynamics=[(0.0, dyn)])


def test_pianist_is_seeded_and_follows_the_score():
    cfg = PianistConfig()
    a = perform(_score(), cfg, np.random.default_rng(0))
    assert a == perform(_score(), cfg, np.random.default_rng(0))
    assert a != perform(_score(), cfg, np.random.default_rng(1))
    onsets = [n.onset for n in a.notes]
    assert onsets == sorted(onsets)
    assert 7.0 < onsets[-1] - onsets[0] < 8.0 * 1.3  # 15 beats at 120 bpm = 7.5 s, with drift
    assert [n.pitch for n in a.notes] == TUNE


def test_pianist_velocity_follows_dynamics():
    cfg = PianistConfig()
    soft = np.mean([n.velocity for n in perform(_score("pp"), cfg, np.random.default_rng(0)).notes])
    loud = np.mean([n.velocity for n in perform(_score("ff"), cfg, np.random.default_rng(0)).notes])
    assert loud - soft > 50


def test_repeated_key_is_released_before_it_is_struck_again():
    perf = perform(_score(pitches=[60] * 8), PianistConfig(articulation=(1.0, 1.0)), np.random.default_rng(0))
    for a, b in zip(perf.notes, perf.notes[1:]):
        assert a.offset < b.onset


def test_midi_and_roll_round_trips(tmp_path):
    perf = perform(_score(voices=2), PianistConfig(pedal_prob=1.0), np.random.default_rng(3))
    write_midi(perf, tmp_path / "m.mid")
    back = read_midi(tmp_path / "m.mid")
    assert len(back.notes) == len(perf.notes) and len(back.pedal) == len(perf.pedal)
    assert max(abs(a.onset - b.onset) for a, b in zip(perf.notes, back.notes)) < 2e-3
    roll = to_roll(perf, fps=50)
    decoded = from_roll(roll["onset"], roll["frame"], 50, roll["velocity"])
    assert len(decoded.notes) == len(perf.notes)


def _from_roll_frame_by_frame(onset, frame, fps, min_frames=1):
    """The decoding rule written as the plain loop over frames: the reference for the vectorized one."""
    notes = []
    for k in range(onset.shape[0]):
        t = 0
        while t < onset.shape[1]:
            rises = t == 0 or onset[k, t] >= onset[k, t - 1]
            if onset[k, t] >= 0.5 and rises and (t + 1 == onset.shape[1] or onset[k, t] >= onset[k, t + 1]):
                end = t + 1
                while end < onset.shape[1] and frame[k, end] >= 0.5 and not (
                        end > t + 1 and onset[k, end] >= 0.5 and onset[k, end] >= onset[k, end - 1]):
                    end += 1
                end = max(end, t + min_frames)
                notes.append((k + 21, t / fps, end / fps))
                t = end
            else:
                t += 1
    return sorted(notes, key=lambda n: (n[1], n[0]))


def test_vectorized_decoding_equals_the_frame_by_frame_rule():
    rng = np.random.default_rng(0)
    for trial in range(100):
        T = int(rng.integers(1, 50))
        onset, frame = rng.random((88, T)) ** rng.uniform(0.5, 4), rng.random((88, T)) ** rng.uniform(0.2, 2)
        if trial % 3 == 0:  # ties between neighbouring frames
            onset, frame = np.round(onset, 1), np.round(frame, 1)
        mf = int(rng.integers(1, 4))
        got = [(n.pitch, n.onset, n.offset) for n in from_roll(onset, frame, 50, min_frames=mf).notes]
        assert got == _from_roll_frame_by_frame(onset, frame, 50, mf)


def test_key_down_threshold_drops_onset_blips_and_keeps_notes_whose_key_goes_down():
    """An onset peak with no key-down within min_frames frames is a blip (noise, reverberation): dropped only when
    key_down_threshold is set; a note whose key goes down a frame late is kept; 0 decodes as before."""
    onset, frame = np.zeros((88, 40)), np.zeros((88, 40))
    onset[40, 5] = 0.9                      # blip: the key never goes down
    onset[50, 10] = 0.9                     # a note whose key goes down one frame after the onset
    frame[50, 11:20] = 0.8
    onset[60, 20], frame[60, 21:23] = 0.9, 0.2   # a weak key-down: kept at threshold 0.1, dropped at 0.5
    notes = lambda **kw: [n.pitch for n in from_roll(onset, frame, 50, min_frames=2, **kw).notes]  # noqa: E731
    assert notes() == notes(key_down_threshold=0.0) == [61, 71, 81]
    assert notes(key_down_threshold=0.1) == [71, 81]
    assert notes(key_down_threshold=0.5) == [71]


def test_corrupt_midi_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00garbage")
    with pytest.raises(ValueError, match="not a readable MIDI file"):
        read_midi(bad)


def test_user_folder_skips_bad_files_and_reports_why(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "empty.mid").write_bytes(b"")
    (folder / "garbage.musicxml").write_text("<not really xml")
    (folder / "tune.abc").write_text("X:1\nT:Test\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|FEDC|]\n")
    (folder / "notes.txt").write_text("ignored: not a music file")
    works = list_user_works([str(folder)])
    assert len(works) == 3
    pieces, skipped = parse_works(works, workers=1)
    assert [p.collection for p in pieces] == ["user-mine"]
    reasons = {s["id"].split("-")[-1]: s["reason"] for s in skipped}
    assert "empty" in reasons["empty"]
    assert set(reasons) == {"empty", "garbage"}


def test_bad_corpus_parameters_are_explained(tmp_path):
    with pytest.raises(CorpusError, match="Unknown music21 collection"):
        list_works(["essenFolksongs"], 5, 0)
    with pytest.raises(CorpusError, match="does not exist"):
        list_user_works([str(tmp_path / "missing")])


def test_engraving_has_fixed_height_and_a_box_per_note():
    ex = _score(voices=2)
    png, boxes, xml = engrave(ex, EngraveConfig(height=120))
    assert png[:4] == b"\x89PNG"
    assert int.from_bytes(png[20:24], "big") == 120  # PNG IHDR height
    assert sorted(b["note"] for b in boxes) == list(range(len(ex.notes)))
    assert all(b["x1"] > b["x0"] and b["y1"] > b["y0"] for b in boxes)
    assert "<metronome" not in xml and "mf" in xml


def test_spelling_uses_the_key():
    assert spell(66, 1) == "F#4" and spell(70, -1) == "B-4" and spell(61, -1, "d minor") == "C#4"


def test_fluidsynth_renders_and_silence_stays_silent():
    renderer = FluidRenderer(16000)
    perf = Performance([PerformedNote(60, 0.1, 0.6, 100), PerformedNote(64, 0.1, 0.6, 100)])
    audio = renderer.render(perf, RecordingConditions("TimGM6mb.sf2"))
    assert audio.dtype == np.float32 and len(audio) == int(round(1.6 * 16000))
    assert np.abs(audio[1600:8000]).max() > 0.01
    # The same excerpt renders bit for bit the same, whatever was rendered before it (another soundfont,
    # another preset, reverb): the perform stage's workers render excerpts in no fixed order.
    renderer.render(Performance([PerformedNote(50, 0.0, 1.0, 120)]),
                    RecordingConditions("FluidR3_GM.sf2", preset=1, reverb_room=0.9, reverb_level=0.5))
    again = renderer.render(perf, RecordingConditions("TimGM6mb.sf2"))
    assert np.array_equal(audio, again)
    silent = renderer.render(Performance([]), RecordingConditions("TimGM6mb.sf2"))
    assert np.abs(silent).max() < 1e-4


def test_missing_soundfont_names_the_fix():
    with pytest.raises(MissingSystemDependency, match="apt-get install"):
        find_soundfont("NoSuchPiano.sf2")


def test_training_data_refuses_test_pool_motion_and_ua_scores(tmp_path):
    data = TrainingData(tmp_path)
    with pytest.raises(LeakageError):
        data.scores("T")
    with pytest.raises(LeakageError):
        data.scores("U_A")
    with pytest.raises(LeakageError):
        data.audio_ids("T")
    with pytest.raises(LeakageError):
        data.motion("P")
    restricted = data.restrict_pairs(["p1"])
    with pytest.raises(LeakageError):
        restricted.audio("P", "p2")


def test_missing_fluidsynth_library_names_the_packages(monkeypatch):
    import lmm_utils.data.render as render

    monkeypatch.setattr(render.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(MissingSystemDependency, match="fluidsynth"):
        render.check_fluidsynth()


def test_corpus_stage_fails_clearly_when_nothing_parses(tmp_path, monkeypatch):
    from lmm_utils.data.stages import build_corpus

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.krn").write_text("**kern\n*garbage\n")
    (folder / "b.mid").write_bytes(b"\x00" * 10)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match="None of the 2 works could be parsed"):
        build_corpus({"seed": 0, "collections": [], "user_folders": [str(folder)], "workers": 1})
    assert not (tmp_path / "data" / "corpus").exists(), "no half-written output"


def test_triplets_and_odd_durations_engrave():
    ex = _score()
    third = round(1 / 3, 4)  # how scores store a triplet eighth
    ex.notes = [ScoreNote(60 + i, round(i * third, 4), third, 0) for i in range(6)] + [ScoreNote(72, 2.0, 1.25, 0)]
    png, boxes, _ = engrave(ex, EngraveConfig())
    assert sorted({b["note"] for b in boxes}) == list(range(len(ex.notes)))


def test_data_card_headline_counts_excerpts_and_hours(tmp_path):
    from lmm_utils.data import datacard

    card = {"skipped_works": 3, "duplicates_dropped": 1, "pools": {
        "U_V": {"pieces": 5, "excerpts": 10}, "U_A": {"pieces": 5, "excerpts": 12, "audio_hours": 0.5},
        "P": {"pieces": 2, "excerpts": 4, "audio_hours": 0.25}, "T": {"pieces": 2, "excerpts": 4, "audio_hours": 0.25},
        "T_timbre": {"audio_hours": 0.25}}}
    assert datacard.headline(card) == {"excerpts": 30, "audio_h": 1.25}
    assert datacard.write_headline(card, tmp_path / "data.json") == json.loads((tmp_path / "data.json").read_text())


def test_logmel_is_computed_once_per_file_version(tmp_path):
    """EvaluationData.logmel caches per process (a grid of runs predicts the same recordings), keyed by the file's
    version: a rewritten recording is read again; callers get copies, so they cannot change the cache."""
    import numpy as np
    import soundfile as sf

    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.data.evaluation import EvaluationData

    feat = FeatureConfig()
    path = tmp_path / "data/audio/T/x.flac"
    path.parent.mkdir(parents=True)
    t = np.arange(feat.sample_rate) / feat.sample_rate
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), feat.sample_rate)
    ev = EvaluationData(tmp_path)
    a = ev.logmel("T", "x", feat)
    a[:] = 0.0  # a caller's copy
    b = ev.logmel("T", "x", feat)
    assert b.max() > 0.0
    import os

    sf.write(path, (0.1 * np.sin(2 * np.pi * 880 * t)).astype(np.float32), feat.sample_rate)
    os.utime(path, ns=(1, 1))  # a new version even on a coarse clock
    c = ev.logmel("T", "x", feat)
    assert not np.allclose(b, c)
