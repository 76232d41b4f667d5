"""A run's predictions on T, as one compact file: what every reported number is computed from.

    write_predictions({"h": {id: Performance}, "h_timbre": {...}, "h_noisy": {...}, "g": {...}}, run_dir / PREDICTIONS_FILE)
    sources = run_sources(run_dir)          # {system: PredictionSource}: the file, or an older run's MIDI folders
    perf, status = sources["h"].get(excerpt_id)

The file is gzip'd JSON (`predictions.json.gz`): {"format": 1, "systems": {system: {id: {"notes": [[pitch, onset,
offset, velocity], ...], "pedal": [[time, down], ...]}}}} with times in seconds rounded to 10 us
(core.motion.Performance.to_dict). Anyone can recompute a run's scores from it with mir_eval alone, without
re-running anything; it replaces one MIDI file per excerpt and system (~600 files a run on all of T, and most of a
run's evaluation time went into writing and parsing them). The gzip header carries no time stamp, so the same
predictions give the same bytes (and the same DVC hash).

A file written before T_noisy existed simply has no "h_noisy": readers take the systems it has.

A `PredictionSource` is one system's predictions with a content fingerprint; peers (Basic Pitch) keep their MIDI
folders and are read through `MidiFolder`, so runs and peers go through the same scorer.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

from lmm_utils.core.motion import Performance, read_midi
from lmm_utils.evaluation.prediction_archive import ARCHIVE_SUFFIX, read_archive

PREDICTIONS_FILE = "predictions.json.gz"
LEGACY_DIR = "predictions"  # runs made before the compact file: predictions/<system>/<id>.mid
FORMAT = 1


def write_predictions(preds: dict[str, dict[str, Performance]], path: str | Path) -> None:
    """{system: {id: Performance}} -> one deterministic gzip'd JSON file."""
    doc = {"format": FORMAT,
           "systems": {s: {i: perfs[i].to_dict() for i in sorted(perfs)} for s, perfs in sorted(preds.items())}}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw)
    Path(path).write_bytes(buf.getvalue())


def read_predictions_doc(path: str | Path) -> dict[str, dict[str, dict]]:
    """{system: {id: performance dict}} as stored (a clear error on a foreign or torn file); a committed results
    folder's <run>.npz.xz (evaluation.prediction_archive) reads to the same document."""
    if str(path).endswith(ARCHIVE_SUFFIX):
        return read_archive(path)
    try:
        doc = json.loads(gzip.decompress(Path(path).read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable predictions file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("systems"), dict):
        raise ValueError(f"{path}: not a predictions file of format {FORMAT}")
    return doc["systems"]


def read_predictions(path: str | Path) -> dict[str, dict[str, Performance]]:
    return {s: {i: Performance.from_dict(d) for i, d in perfs.items()}
            for s, perfs in read_predictions_doc(path).items()}


class PredictionSource:
    """One system's predictions: the excerpts it has, each performance with a status, a content fingerprint."""

    def ids(self) -> list[str]:
        raise NotImplementedError

    def get(self, excerpt_id: str) -> tuple[Performance, str]:
        """(performance, status): status is ok / missing / unreadable; the last two give an empty performance."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError


class StoredSystem(PredictionSource):
    """One system of a predictions file (parsed lazily: a performance is built when it is asked for)."""

    def __init__(self, perfs: dict[str, dict]):
        self.perfs = perfs

    def ids(self) -> list[str]:
        return sorted(self.perfs)

    def get(self, excerpt_id: str) -> tuple[Performance, str]:
        d = self.perfs.get(excerpt_id)
        if d is None:
            return Performance(notes=[]), "missing"
        try:
            return Performance.from_dict(d), "ok"
        except (KeyError, TypeError, ValueError):
            return Performance(notes=[]), "unreadable"

    def fingerprint(self) -> str:
        raw = json.dumps(self.perfs, sort_keys=True, separators=(",", ":")).encode()
        return "stored:" + hashlib.sha1(raw).hexdigest()


class MidiFolder(PredictionSource):
    """<dir>/<id>.mid, one file per excerpt (peers, and runs made before the compact file)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def ids(self) -> list[str]:
        return sorted(f.stem for f in self.folder.glob("*.mid")) if self.folder.is_dir() else []

    def get(self, excerpt_id: str) -> tuple[Performance, str]:
        path = self.folder / f"{excerpt_id}.mid"
        if not path.is_file():
            return Performance(notes=[]), "missing"
        try:
            return read_midi(path), "ok"
        except ValueError:
            return Performance(notes=[]), "unreadable"

    def fingerprint(self) -> str:
        # Of the files' names and contents, not their times: DVC restores files with new ones.
        files = sorted(self.folder.glob("*.mid")) if self.folder.is_dir() else []
        parts = [f"{f.name}:{hashlib.sha1(f.read_bytes()).hexdigest()}" for f in files]
        return "midi:" + hashlib.sha1("|".join(parts).encode()).hexdigest()


def run_sources(run_dir: str | Path, systems: tuple[str, ...] | None = None) -> dict[str, PredictionSource]:
    """{system: source} of a run folder: its predictions file, else (older runs) its predictions/<system> MIDI
    folders; {} when it has neither. An unreadable file raises (a torn run must not score as all-empty)."""
    run_dir = Path(run_dir)
    path = run_dir / PREDICTIONS_FILE
    if path.is_file():
        out: dict[str, PredictionSource] = {s: StoredSystem(p) for s, p in read_predictions_doc(path).items()}
    else:
        legacy = run_dir / LEGACY_DIR
        out = {d.name: MidiFolder(d) for d in sorted(legacy.iterdir()) if d.is_dir()} if legacy.is_dir() else {}
    return {s: src for s, src in out.items() if systems is None or s in systems}


__all__ = ["PREDICTIONS_FILE", "LEGACY_DIR", "write_predictions", "read_predictions", "read_predictions_doc",
           "PredictionSource", "StoredSystem", "MidiFolder", "run_sources"]
