"""ASAP (Foscarin et al., ISMIR 2020): MusicXML scores of classical piano pieces, performances (MIDI,
and audio via MAESTRO) and beat / downbeat annotations that tie each performance to its score.

Layout read here (as distributed, https://github.com/fosfrancesco/asap-dataset):

    <asap_dir>/metadata.csv                   one row per performance
    <asap_dir>/asap_annotations.json          optional: per performance, downbeats_score_map etc.
    <asap_dir>/Bach/Fugue/bwv_846/xml_score.musicxml
    <asap_dir>/Bach/Fugue/bwv_846/Shi05M.mid                 the performance MIDI
    <asap_dir>/Bach/Fugue/bwv_846/Shi05M_annotations.txt     time <tab> time <tab> db|b|bR[,4/4][,key]

Columns used: composer, title, folder, xml_score, midi_performance, performance_annotations,
maestro_midi_performance, maestro_audio_performance ("{maestro}/2006/....midi"), and when present
start / end (where the piece sits in the MAESTRO file) and audio_performance (a cut copy of the
MAESTRO audio made by ASAP's initialize_dataset.py).

Audio for a performance, in order of preference: the MAESTRO file under `maestro_dir` (times shifted
by `start`), else ASAP's own audio_performance if it exists; else the performance has no audio.
ASAP was built on MAESTRO v2.0.0: a MAESTRO file it names that the local copy lacks (renamed or removed
in v3) leaves that performance without audio, with the reason; when most are missing the folder is
wrong and `read_asap` raises, naming examples.
"""
from __future__ import annotations

import json
from pathlib import Path

from lmm_utils.data.sources import AdapterError, PerformanceRecord, ScoreRecord, read_csv, require_dir, slug

COLUMNS = ("composer", "title", "folder", "xml_score", "midi_performance", "performance_annotations",
           "maestro_midi_performance", "maestro_audio_performance")
MAESTRO_PREFIX = "{maestro}/"
MISSING_MAESTRO = "MAESTRO file not found: "
BEAT_LABELS = {"db", "b", "bR"}


def read_annotation_txt(path: Path) -> list[float]:
    """Downbeat times (s) from an ASAP annotation TSV; every beat line must parse."""
    if not path.is_file():
        raise AdapterError(f"ASAP: annotation file {path} not found")
    downbeats = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            t = float(cols[0])
            label = cols[2].strip().split(",")[0]
        except (IndexError, ValueError):
            raise AdapterError(f"ASAP: {path} line {n} is not 'time<TAB>time<TAB>label': {line!r}") from None
        if label not in BEAT_LABELS:
            raise AdapterError(f"ASAP: {path} line {n}: unknown label {label!r} (expected db, b or bR)")
        if label == "db":
            downbeats.append(t)
    return downbeats


def read_annotation_json(root: Path) -> dict:
    path = root / "asap_annotations.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterError(f"ASAP: {path} is not valid JSON ({exc})") from exc


def _measure_index(value) -> int:
    """downbeats_score_map entries are measure numbers, or "n1-n2" for a measure split in the score."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _float_or(text: str | None, default: float | None) -> float | None:
    return float(text) if text not in (None, "", "None", "nan") else default


def score_id(folder: str) -> str:
    return "asap-" + slug(folder)


def read_asap(asap_dir: str | Path, maestro_dir: str | Path | None = None) -> tuple[list[ScoreRecord], list[PerformanceRecord]]:
    """Scores (one per folder) and performances (one per metadata row). The score, MIDI and annotation
    files a row names must exist; MAESTRO files may be missing for a few rows (see the module doc)."""
    root = require_dir(asap_dir, "ASAP (real_data.asap_dir)")
    maestro = require_dir(maestro_dir, "MAESTRO (real_data.maestro_dir)") if maestro_dir is not None else None
    rows = read_csv(root / "metadata.csv", COLUMNS, "ASAP")
    annotations = read_annotation_json(root)
    scores: dict[str, ScoreRecord] = {}
    performances = []
    for n, row in enumerate(rows, 2):  # line 1 is the header
        where = f"metadata.csv line {n}"
        sid = score_id(row["folder"])
        if sid not in scores:
            xml = root / row["xml_score"]
            if not xml.is_file():
                raise AdapterError(f"ASAP: score {xml} ({where}) not found")
            scores[sid] = ScoreRecord(sid, row["composer"], row["title"], str(xml))
        performances.append(_performance(row, root, maestro, annotations, sid, where))
    missing = [p for p in performances if any(n.startswith(MISSING_MAESTRO) for n in p.notes)]
    linked = [p for p in performances if p.maestro_file]
    if maestro is not None and linked and len(missing) > len(linked) / 2:
        raise AdapterError(f"ASAP: {len(missing)} of the {len(linked)} MAESTRO files metadata.csv names are not in "
                           f"{maestro} (is real_data.maestro_dir the folder holding the year folders?), e.g. "
                           f"{missing[0].notes[0].removeprefix(MISSING_MAESTRO)}")
    return list(scores.values()), performances


def _performance(row: dict, root: Path, maestro: Path | None, annotations: dict, sid: str, where: str) -> PerformanceRecord:
    midi_rel = row["midi_performance"]
    rec = PerformanceRecord(
        id="asap-" + slug(f"{row['folder']}/{Path(midi_rel).stem}"), source="asap",
        composer=row["composer"], title=row["title"], midi=str(root / midi_rel), audio=None, score_id=sid,
    )
    maestro_midi = row["maestro_midi_performance"].removeprefix(MAESTRO_PREFIX)
    maestro_audio = row["maestro_audio_performance"].removeprefix(MAESTRO_PREFIX)
    rec.maestro_file = maestro_midi or None
    lost = [str(maestro / f) for f in (maestro_midi, maestro_audio) if maestro is not None and maestro_audio
            and not (maestro / f).is_file()]
    if lost:  # ASAP names MAESTRO v2.0.0 files; a few were renamed or dropped in v3
        rec.notes.append(MISSING_MAESTRO + lost[0])
    if maestro is not None and maestro_audio and not lost:
        rec.midi, rec.audio = str(maestro / maestro_midi), str(maestro / maestro_audio)
        rec.offset = _float_or(row.get("start"), 0.0) or 0.0
        rec.end = _float_or(row.get("end"), None)
    elif row.get("audio_performance") and (root / row["audio_performance"]).is_file():
        rec.audio = str(root / row["audio_performance"])  # already cut to the annotations' clock
    elif not lost:
        rec.notes.append("no audio (no MAESTRO file for it, or real_data.maestro_dir not set)")
    for kind, p in (("MIDI", rec.midi), ("audio", rec.audio)):
        if p is not None and not Path(p).is_file():
            raise AdapterError(f"ASAP: {kind} file {p} ({where}) not found")

    entry = annotations.get(midi_rel)
    if entry is not None:
        if not entry.get("score_and_performance_aligned", True):
            rec.notes.append("ASAP: score and performance annotations are not aligned")
            return rec
        rec.downbeats = [float(t) for t in entry["performance_downbeats"]]
        if "downbeats_score_map" in entry:
            rec.downbeat_measures = [_measure_index(m) for m in entry["downbeats_score_map"]]
    else:
        rec.downbeats = read_annotation_txt(root / row["performance_annotations"])
    return rec


__all__ = ["read_asap", "read_annotation_txt", "read_annotation_json", "score_id", "COLUMNS"]
