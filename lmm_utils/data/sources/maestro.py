"""MAESTRO v3 (Hawthorne et al., 2019): ~200 h of piano recordings, each with its performance MIDI
(Disklavier key presses, velocities and sustain pedal, aligned to the audio within ~3 ms).

Layout read here (as distributed):

    <maestro_dir>/maestro-v3.0.0.csv      (or maestro-v3.0.0.json; any maestro-v*.csv / .json)
    <maestro_dir>/2004/MIDI-Unprocessed_..._wav--1.midi
    <maestro_dir>/2004/MIDI-Unprocessed_..._wav--1.wav     44.1 or 48 kHz stereo

Metadata columns used: canonical_composer, canonical_title, split, year, midi_filename,
audio_filename, duration. The JSON is pandas' column-oriented dump ({column: {row: value}}); a
list of row objects (older releases) is read too.
"""
from __future__ import annotations

import json
from pathlib import Path

from lmm_utils.data.sources import AdapterError, PerformanceRecord, read_csv, require_dir, slug

COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration")


def find_metadata(root: Path) -> Path:
    """maestro-v3.0.0.csv first, then any other maestro-v*.csv, then the JSON files."""
    for pattern in ("maestro-v3.0.0.csv", "maestro-v*.csv", "maestro-v3.0.0.json", "maestro-v*.json"):
        found = sorted(root.glob(pattern))
        if found:
            return found[-1]
    raise AdapterError(f"MAESTRO: no metadata file in {root} (expected maestro-v3.0.0.csv or maestro-v3.0.0.json)")


def read_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".csv":
        return read_csv(path, COLUMNS, "MAESTRO")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterError(f"MAESTRO: {path.name} is not valid JSON ({exc})") from exc
    if isinstance(data, dict):  # {column: {row index: value}}
        missing = [c for c in COLUMNS if c not in data]
        if missing:
            raise AdapterError(f"MAESTRO: {path.name} lacks column(s) {missing} (has {sorted(data)})")
        index = sorted(data["midi_filename"], key=lambda k: int(k) if str(k).isdigit() else k)
        return [{c: data[c].get(i) for c in COLUMNS} for i in index]
    if isinstance(data, list):
        for n, row in enumerate(data):
            missing = [c for c in COLUMNS if c not in row]
            if missing:
                raise AdapterError(f"MAESTRO: {path.name} row {n} lacks field(s) {missing}")
        return data
    raise AdapterError(f"MAESTRO: {path.name} must hold a column dict or a list of rows, got {type(data).__name__}")


def record_id(midi_filename: str) -> str:
    return "maestro-" + slug(Path(midi_filename).with_suffix("").as_posix())


def read_maestro(maestro_dir: str | Path, check_files: bool = True) -> list[PerformanceRecord]:
    """One record per metadata row. With check_files, a row whose MIDI or audio is missing raises."""
    root = require_dir(maestro_dir, "MAESTRO (real_data.maestro_dir)")
    meta = find_metadata(root)
    records = []
    for n, row in enumerate(read_rows(meta)):
        empty = [c for c in ("canonical_composer", "canonical_title", "midi_filename", "audio_filename") if not row.get(c)]
        if empty:
            raise AdapterError(f"MAESTRO: {meta.name} row {n} has empty {empty}")
        midi, audio = root / row["midi_filename"], root / row["audio_filename"]
        if check_files:
            for kind, p in (("MIDI", midi), ("audio", audio)):
                if not p.is_file():
                    raise AdapterError(f"MAESTRO: {kind} file {p} (row {n} of {meta.name}) not found")
        records.append(PerformanceRecord(
            id=record_id(row["midi_filename"]), source="maestro",
            composer=str(row["canonical_composer"]), title=str(row["canonical_title"]),
            midi=str(midi), audio=str(audio), maestro_file=Path(row["midi_filename"]).as_posix(),
            split=row.get("split") or None, year=int(row["year"]) if row.get("year") not in (None, "") else None,
            duration=float(row["duration"]) if row.get("duration") not in (None, "") else None,
        ))
    return records


__all__ = ["read_maestro", "find_metadata", "read_rows", "record_id", "COLUMNS"]
