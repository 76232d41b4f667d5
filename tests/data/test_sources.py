"""Real-data adapters (MAESTRO v3, ASAP) on tiny fixtures made here in the datasets' own layouts, and
the corpus -> split -> perform stages on them (corpus.source: maestro_asap)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.data.sources import AdapterError
from lmm_utils.data.sources.asap import read_annotation_txt, read_asap
from lmm_utils.data.sources.maestro import COLUMNS as MAESTRO_COLUMNS
from lmm_utils.data.sources.maestro import read_maestro
from lmm_utils.data.sources.segments import aligned_windows, cut_performance, measure_map, read_audio_segment

N_BARS = 10  # score length; excerpts are 4 bars, so each performance has windows at bars 0 and 4
BAR_S = 1.0  # 240 quarter notes per minute: one 4/4 bar per second
SR = 44100
ASAP_COLUMNS = ("composer", "title", "folder", "xml_score", "midi_score", "midi_performance", "performance_annotations",
                "midi_score_annotations", "maestro_midi_performance", "maestro_audio_performance", "start", "end",
                "audio_performance")


# ---------------------------------------------------------------- fixture builders

def write_score(path: Path, transpose: int) -> None:
    from music21 import key, meter, note, stream

    part = stream.Part()
    for m in range(N_BARS):
        measure = stream.Measure(number=m + 1)
        if m == 0:
            measure.append(meter.TimeSignature("4/4"))
            measure.append(key.KeySignature(0))
        for b in range(4):
            measure.append(note.Note(60 + transpose + (m + b) % 7, quarterLength=1))
        part.append(measure)
    score = stream.Score()
    score.append(part)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.write("musicxml", fp=str(path))


def performance_notes(start: float, transpose: int) -> list[tuple[int, float, float]]:
    """One note per beat of the score (pitch, onset s, offset s), starting at `start` seconds."""
    return [(60 + transpose + (m + b) % 7, start + m * BAR_S + b * BAR_S / 4, start + m * BAR_S + b * BAR_S / 4 + 0.2)
            for m in range(N_BARS) for b in range(4)]


def write_midi(path: Path, notes: list[tuple[int, float, float]], pedal_at: list[float] = ()) -> None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=70, pitch=p, start=on, end=off) for p, on, off in notes]
    for t in pedal_at:  # a real Disklavier sends many CC64 values; repeat some to test the collapse
        piano.control_changes += [pretty_midi.ControlChange(64, 100, t), pretty_midi.ControlChange(64, 127, t + 0.01),
                                  pretty_midi.ControlChange(64, 0, t + 0.5)]
    pm.instruments.append(piano)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


def write_wav(path: Path, seconds: float, sr: int = SR) -> None:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    sf.write(str(path), np.stack([tone, 0.5 * tone], axis=1).astype(np.float32), sr)


def write_annotations(path: Path) -> None:
    lines = []
    for m in range(N_BARS):
        t = m * BAR_S
        lines.append(f"{t:.6f}\t{t:.6f}\t" + ("db,4/4,0" if m == 0 else "db"))
        lines += [f"{t + b * BAR_S / 4:.6f}\t{t + b * BAR_S / 4:.6f}\tb" for b in range(1, 4)]
    path.write_text("\n".join(lines) + "\n")


def maestro_name(year: int, n: int) -> str:
    return f"{year}/MIDI-Unprocessed_{n:02d}_R1_{year}_01-04_ORIG_MID--AUDIO_{n:02d}_R1_{year}_wav--1"


# The fixture: five ASAP pieces with MAESTRO audio (one MAESTRO file holds a prelude and its fugue),
# one ASAP piece without audio (score only), a MAESTRO-only piece, and a second, unannotated MAESTRO
# recording of the Chopin etude (must land in the same pool as the annotated one).
ASAP_PIECES = [  # composer, title, folder, [(performer, maestro n, start in the MAESTRO file)]
    ("Bach", "Prelude_bwv_846", "Bach/Prelude/bwv_846", [("Shi05M", 1, 0.0)]),
    ("Bach", "Fugue_bwv_846", "Bach/Fugue/bwv_846", [("Shi05M", 1, 11.0), ("Lee01M", 2, 0.0)]),
    ("Chopin", "Etude_op_10_3", "Chopin/Etudes_op_10/3", [("Kim01M", 3, 0.0)]),
    ("Beethoven", "Piano_Sonata_1_1", "Beethoven/Piano_Sonatas/1-1", [("Ali02M", 4, 0.0)]),
    ("Mozart", "Piano_Sonata_11_1", "Mozart/Piano_Sonatas/11-1", [("Bo01M", 5, 0.0)]),
    ("Liszt", "Sonata", "Liszt/Sonata", [("Co01M", 6, 0.0)]),
    ("Ravel", "Pavane", "Ravel/Pavane", [("Yamaha01", None, 0.0)]),  # no MAESTRO audio: score only
]
MAESTRO_TITLES = {1: ("Johann Sebastian Bach", "Prelude and Fugue in C Major, WTC I, BWV 846"),
                  2: ("Johann Sebastian Bach", "Prelude and Fugue in C Major, WTC I, BWV 846"),
                  3: ("Frédéric Chopin", "Etude Op. 10 No. 3"), 4: ("Ludwig van Beethoven", "Sonata No. 1"),
                  5: ("Wolfgang Amadeus Mozart", "Sonata K. 331"), 6: ("Franz Liszt", "Sonata in B Minor"),
                  7: ("Frédéric Chopin", "Etude Op. 10 No. 3"),  # unannotated second recording
                  8: ("Claude Debussy", "Clair de Lune")}  # no ASAP score: audio only


def make_datasets(root: Path, json_metadata: bool = False) -> tuple[Path, Path]:
    maestro, asap = root / "maestro-v3.0.0", root / "asap-dataset"
    maestro.mkdir(parents=True)
    asap.mkdir(parents=True)
    files: dict[int, list] = {n: [] for n in MAESTRO_TITLES}  # MAESTRO n -> notes in its MIDI
    asap_rows = []
    for i, (composer, title, folder, perfs) in enumerate(ASAP_PIECES):
        write_score(asap / folder / "xml_score.musicxml", transpose=i)
        for performer, n, start in perfs:
            notes = performance_notes(0.0, i)
            write_midi(asap / folder / f"{performer}.mid", notes)
            write_annotations(asap / folder / f"{performer}_annotations.txt")
            if n is not None:
                files[n] += performance_notes(start, i)
            name = maestro_name(2004 + (n or 0), n or 0)
            asap_rows.append({
                "composer": composer, "title": title, "folder": folder,
                "xml_score": f"{folder}/xml_score.musicxml", "midi_score": f"{folder}/midi_score.mid",
                "midi_performance": f"{folder}/{performer}.mid",
                "performance_annotations": f"{folder}/{performer}_annotations.txt",
                "midi_score_annotations": f"{folder}/midi_score_annotations.txt",
                "maestro_midi_performance": f"{{maestro}}/{name}.midi" if n else "",
                "maestro_audio_performance": f"{{maestro}}/{name}.wav" if n else "",
                "start": start if n and start else "", "end": "", "audio_performance": ""})
    files[7] = performance_notes(0.0, 2)
    files[8] = performance_notes(0.0, 9)
    rows = []
    for n, (composer, title) in MAESTRO_TITLES.items():
        name = maestro_name(2004 + n, n)
        (maestro / name).parent.mkdir(parents=True, exist_ok=True)
        write_midi(maestro / f"{name}.midi", files[n], pedal_at=[0.1, 4.2])
        seconds = max(off for _, _, off in files[n]) + 0.5
        write_wav(maestro / f"{name}.wav", seconds)
        rows.append({"canonical_composer": composer, "canonical_title": title, "split": "train", "year": 2004 + n,
                     "midi_filename": f"{name}.midi", "audio_filename": f"{name}.wav", "duration": seconds})
    if json_metadata:  # pandas' column-oriented dump, as maestro-v3.0.0.json is distributed
        cols = {c: {str(i): r[c] for i, r in enumerate(rows)} for c in MAESTRO_COLUMNS}
        (maestro / "maestro-v3.0.0.json").write_text(json.dumps(cols))
    else:
        write_csv(maestro / "maestro-v3.0.0.csv", rows, MAESTRO_COLUMNS)
    write_csv(asap / "metadata.csv", asap_rows, ASAP_COLUMNS)
    return maestro, asap


def write_csv(path: Path, rows: list[dict], columns) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path]:
    return make_datasets(tmp_path_factory.mktemp("real"))


# ---------------------------------------------------------------- adapters

def test_maestro_csv_and_json_agree(datasets, tmp_path):
    maestro, _ = datasets
    from_csv = read_maestro(maestro)
    assert len(from_csv) == len(MAESTRO_TITLES)
    assert from_csv[0].maestro_file.startswith("2005/MIDI-Unprocessed_01") and from_csv[0].audio.endswith("wav--1.wav")
    j_maestro, _ = make_datasets(tmp_path, json_metadata=True)
    from_json = read_maestro(j_maestro)
    assert [(r.id, r.composer, r.title, r.year, r.duration) for r in from_json] == \
           [(r.id, r.composer, r.title, r.year, r.duration) for r in from_csv]


def test_asap_records(datasets):
    maestro, asap = datasets
    scores, perfs = read_asap(asap, maestro)
    assert len(scores) == len(ASAP_PIECES)
    fugue = [p for p in perfs if p.title == "Fugue_bwv_846"]
    assert {p.offset for p in fugue} == {11.0, 0.0}  # ASAP `start`: the fugue follows the prelude in file 1
    assert all(p.audio and p.audio.endswith(".wav") for p in fugue)
    assert len(fugue[0].downbeats) == N_BARS and fugue[0].downbeat_measures is None  # from the .txt
    ravel = next(p for p in perfs if p.composer == "Ravel")
    assert ravel.audio is None and ravel.notes
    _, no_maestro = read_asap(asap, None)  # without MAESTRO no row has audio (no initialize_dataset copies)
    assert all(p.audio is None for p in no_maestro)


def test_asap_tolerates_a_few_missing_maestro_files(datasets, tmp_path):
    import shutil

    maestro, asap = datasets
    copy = Path(shutil.copytree(maestro, tmp_path / "maestro"))
    gone = next(copy.rglob("*wav--1.wav"))
    gone.unlink()  # ASAP names MAESTRO v2.0.0 files; v3 renamed or dropped a few
    _, perfs = read_asap(asap, copy)
    lost = [p for p in perfs if p.audio is None and any(gone.name in n for n in p.notes)]
    assert lost and all(p.midi.startswith(str(asap)) for p in lost)  # falls back to ASAP's own MIDI
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdapterError, match="maestro_dir"):  # all missing: the wrong folder
        read_asap(asap, empty)


def test_missing_things_are_named(datasets, tmp_path):
    maestro, asap = datasets
    with pytest.raises(AdapterError, match="does not exist"):
        read_maestro(tmp_path / "nowhere")
    with pytest.raises(AdapterError, match="maestro-v3.0.0.csv"):
        read_maestro(tmp_path)
    broken = tmp_path / "m"
    broken.mkdir()
    (broken / "maestro-v3.0.0.csv").write_text("canonical_composer,canonical_title,midi_filename\nA,B,c.midi\n")
    with pytest.raises(AdapterError, match="audio_filename"):
        read_maestro(broken)
    row = next(csv.DictReader(open(maestro / "maestro-v3.0.0.csv")))
    row.update(midi_filename=str(maestro / row["midi_filename"]), audio_filename="2005/missing.wav")
    write_csv(broken / "maestro-v3.0.0.csv", [row], MAESTRO_COLUMNS)
    with pytest.raises(AdapterError, match="missing.wav"):
        read_maestro(broken)
    with pytest.raises(AdapterError, match="metadata.csv"):
        read_asap(tmp_path, None)
    bad = tmp_path / "ann.txt"
    bad.write_text("0.5\t0.5\tdb\nnot a line\n")
    with pytest.raises(AdapterError, match="line 2"):
        read_annotation_txt(bad)


# ---------------------------------------------------------------- cutting

def test_cut_performance_shifts_and_keeps_pedal_state():
    perf = Performance([PerformedNote(60, 0.5, 3.0, 80), PerformedNote(62, 1.2, 1.5, 70), PerformedNote(64, 2.5, 2.7, 60)],
                       [PedalEvent(0.2, True), PedalEvent(0.3, True), PedalEvent(1.8, False)])
    cut = cut_performance(perf, 1.0, 2.0)
    assert [(n.pitch, n.onset, n.offset) for n in cut.notes] == [(62, pytest.approx(0.2), pytest.approx(0.5))]
    assert [(e.time, e.down) for e in cut.pedal] == [(0.0, True), (pytest.approx(0.8), False)]
    held = cut_performance(Performance([PerformedNote(60, 0.1, 5.0, 80)], [PedalEvent(0.0, True)]), 0.0, 1.0)
    assert held.notes[0].offset == 1.0 and [(e.time, e.down) for e in held.pedal] == [(0.0, True), (1.0, False)]


def test_audio_segment_is_mono_16k(tmp_path):
    write_wav(tmp_path / "a.wav", 3.0)
    seg = read_audio_segment(tmp_path / "a.wav", 1.0, 2.5, 16000)
    assert seg.ndim == 1 and seg.dtype == np.float32 and len(seg) == 24000
    spectrum = np.abs(np.fft.rfft(seg))
    assert abs(np.argmax(spectrum) * 16000 / len(seg) - 440) < 2  # the tone survives resampling
    with pytest.raises(AdapterError, match="outside the file"):
        read_audio_segment(tmp_path / "a.wav", 2.0, 4.0, 16000)


def test_measure_map_and_windows():
    bars = [[4.0 * i, 4.0, "4/4"] for i in range(6)]
    assert measure_map([0, 1, 2, 3, 4, 5], None, bars) == [0, 1, 2, 3, 4, 5]
    pickup = [[0.0, 1.0, "4/4"]] + [[1.0 + 4 * i, 4.0, "4/4"] for i in range(5)]
    assert measure_map([0, 1, 2, 3, 4], None, pickup) == [1, 2, 3, 4, 5]
    assert measure_map([0, 1, 2], None, bars) is None  # repeats or cuts: not guessable without the map
    # ASAP's downbeats_score_map with a repeat of measures 0-2: a window may not cross the jump back
    measures = [0, 1, 2, 0, 1, 2, 3, 4, 5]
    times = [float(t) for t in range(9)]
    assert aligned_windows([0, 1, 2, 3], times, measures, 2) == [(0, 0.0, 2.0), (1, 4.0, 6.0), (2, 5.0, 7.0), (3, 6.0, 8.0)]


# ---------------------------------------------------------------- the stages

def test_stages_on_real_layout(datasets, in_tmp):
    import soundfile as sf

    from lmm_utils.core import paths
    from lmm_utils.core.io import read_json, read_jsonl
    from lmm_utils.core.motion import read_midi
    from lmm_utils.data import datacard
    from lmm_utils.data.pools import TrainingData
    from lmm_utils.data.stages import build_corpus, build_performances, build_split, load_scores

    maestro, asap = datasets
    corpus = {"seed": 0, "collections": [], "user_folders": [], "workers": 1, "source": "maestro_asap"}
    real = {"maestro_dir": str(maestro), "asap_dir": str(asap), "excerpt_seconds": 3.0, "max_pieces": None,
            "max_performances_per_piece": None}
    summary = build_corpus(corpus, real)
    assert summary["scores_parsed"] == len(ASAP_PIECES) and summary["maestro_rows_annotated_by_asap"] == 6
    split = {"seed": 0, "fractions": {"U_V": 0.35, "U_A": 0.35, "P": 0.15, "T": 0.15},
             "excerpts": {"n_bars": 4, "max_per_piece": 3, "min_notes": 4, "tempo_bpm": [60, 140]}}
    build_split(split)
    build_performances({"workers": 1}, sample_rate=16000)

    splits = read_json(paths.SPLITS)
    pool_of = {p["id"]: pool for pool, v in splits["pools"].items() for p in v["pieces"]}
    bach = [pid for pid in pool_of if "bwv_846" in pid]
    assert len(bach) == 1  # prelude + fugue share MAESTRO file 1: one piece
    chopin = [pid for pid in pool_of if "etude" in pid]
    assert len(chopin) == 1  # the annotated and the unannotated recording are one piece, one pool
    assert pool_of["claude_debussy-clair_de_lune"] == "U_A" and pool_of["ravel-pavane"] == "U_V"
    assert {d["duplicate_of"].split("-")[0] for d in splits["duplicates_dropped"]} == {"asap"}

    for pool in ("P", "T"):
        excerpts = load_scores(pool)
        assert excerpts and all(e.n_bars == 4 and len(e.notes) == 16 for e in excerpts)
        assert all(e.tempo_bpm == pytest.approx(240.0) for e in excerpts)  # the performed tempo
        motion = {r["id"]: r for r in read_jsonl(paths.motion_file(pool))}
        assert set(motion) == {e.id for e in excerpts}
        for e in excerpts:
            perf = read_midi(paths.MOTION_DIR / pool / f"{e.id}.mid")
            assert len(perf.notes) == 16 and perf.notes[0].onset == pytest.approx(0.0, abs=2e-3)
            assert [n.pitch for n in perf.notes] == [n.pitch for n in e.notes]  # motion plays this score
            audio, sr = sf.read(paths.audio_path(pool, e.id))
            assert sr == 16000 and audio.ndim == 1 and len(audio) == pytest.approx(4 * BAR_S * 16000, abs=2)
    ua = TrainingData().audio_ids("U_A")
    assert any(i.endswith("-s00000") for i in ua)  # Debussy: audio-only excerpts of excerpt_seconds
    clip, _ = TrainingData().audio("U_A", next(i for i in ua if i.endswith("-s00000")))
    assert len(clip) == 3 * 16000
    assert not (paths.AUDIO_DIR / "T_timbre").exists()
    card = datacard.data_card(16000)
    assert card["pools"]["T"]["audio_hours"] > 0


def test_default_source_is_music21():
    from lmm_utils.data.corpus import CorpusError
    from lmm_utils.data.sources.pipeline import check_source

    assert check_source({}) == "music21"
    with pytest.raises(CorpusError, match="maestro_asap"):
        check_source({"source": "maestro"})
