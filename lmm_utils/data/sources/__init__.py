"""Real recordings: MAESTRO v3 (audio + performance MIDI) and ASAP (scores + beat annotations).

Each adapter reads its dataset's own metadata and layout into plain records, without touching the
audio or parsing scores; `adapters.pipeline` (corpus, split stages) and `adapters.perform` (perform
stage) turn the records into the benchmark's pools and files: the same ScoreExcerpt / Performance /
FLAC layout as the built-in music21 corpus (lmm_utils.data.stages dispatches on corpus.source).

    maestro.read_maestro(dir)            -> [PerformanceRecord]           (audio-only pieces)
    asap.read_asap(dir, maestro_dir)     -> ([ScoreRecord], [PerformanceRecord])   (aligned pieces)

A missing or malformed folder raises `AdapterError` naming what is missing (the metadata file, a
column, a file a row points to).
"""
from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path


class AdapterError(ValueError):
    """A real-data folder is missing, or its metadata is malformed."""


@dataclass
class ScoreRecord:
    """One ASAP score folder: the MusicXML a sight-reader would see."""
    id: str  # "asap-<Composer>_<Piece...>", file-system safe
    composer: str
    title: str
    xml: str  # absolute path of xml_score.musicxml

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PerformanceRecord:
    """One recorded performance: its MIDI (motion) and audio, and where it sits in the score.

    `offset` is the time in the MIDI/audio files of the annotation clock's 0 (ASAP's `start`: some
    MAESTRO files hold several pieces). `downbeats` are the annotated downbeats (seconds on the
    annotation clock), None when the performance has no score (MAESTRO-only); `downbeat_measures`
    the index of the score measure each one starts (counting a pickup as measure 0, -1 = a split
    measure), from ASAP's asap_annotations.json, or None when only the .txt annotations were found
    (then the downbeats are matched to the score's measures in order; see real_data.measure_map).
    """
    id: str  # "maestro-<file stem>" or "asap-<folder>-<performer>", file-system safe
    source: str  # "maestro" | "asap"
    composer: str
    title: str
    midi: str  # absolute path
    audio: str | None  # absolute path, None when the recording is not available
    offset: float = 0.0
    end: float | None = None  # where the piece ends in the files (seconds), None = file end
    score_id: str | None = None
    downbeats: list[float] | None = None
    downbeat_measures: list[int] | None = None
    maestro_file: str | None = None  # MAESTRO's midi_filename (links ASAP rows to MAESTRO rows)
    split: str | None = None  # MAESTRO's own train/validation/test (kept for reference, not used)
    year: int | None = None
    duration: float | None = None
    notes: list[str] = field(default_factory=list)  # why parts of it are unusable (e.g. no annotations)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PerformanceRecord:
        return cls(**d)


def slug(text: str) -> str:
    """File-system-safe id part: runs of anything but letters and digits become one underscore."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def piece_key(composer: str, title: str) -> str:
    """Composer + title, case- and punctuation-insensitive: performances of one piece share it."""
    return f"{slug(composer).lower()}|{slug(title).lower()}"


def require_dir(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise AdapterError(f"{what}: no folder given (real_data in params.yaml)")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise AdapterError(f"{what}: folder {p} does not exist")
    return p.resolve()


def read_csv(path: Path, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a metadata CSV as dicts; raises naming the file or the missing columns."""
    if not path.is_file():
        raise AdapterError(f"{what}: metadata file {path} not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise AdapterError(f"{what}: {path.name} lacks column(s) {missing} (has {columns})")
        return [dict(r) for r in reader]


__all__ = ["AdapterError", "ScoreRecord", "PerformanceRecord", "slug", "piece_key", "require_dir", "read_csv"]
