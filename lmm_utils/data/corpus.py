"""music21's corpus and user folders -> `Piece`s: plain, JSON-able notes with bars, meter, key, marks.

Parsing is the slow part of data preparation (~0.04 s per folk tune, ~0.2 s per chorale), so it runs on
all cores and its result is cached as a DVC stage output. A work that fails to parse is skipped and
reported with its reason; nothing else stops the batch.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from lmm_utils.core.filecheck import DEFAULT_MAX_MB, ScoreFileError, check_score_file
from lmm_utils.core.io import atomic_path
from lmm_utils.core.score import DYNAMICS

FOLK = ("essenFolksong", "oneills1850", "ryansMammoth", "airdsAirs")
CHORALES = "bachChorales"  # music21's bach/ folder restricted to the four-part chorales (bwvNNN.N files)
# Denser ensemble writing played on the piano: Renaissance masses, motets and madrigals, string quartets.
POLYPHONY = ("palestrina", "monteverdi", "josquin", "haydn", "mozart", "beethoven")
# Single-instrument keyboard works of the corpus (source-path prefixes). They stay out of every pool, whatever
# collection lists them, so that h can be checked on real keyboard writing it never heard (an outside check).
KEYBOARD_WORKS = ("joplin/", "chopin/", "cpebach/", "mozart/k545/", "schoenberg/opus19/", "schumann_clara/polonaise_op1")
USER_SUFFIXES = {".xml", ".musicxml", ".mxl", ".mid", ".midi", ".abc", ".krn"}
_CHORALE_FILE = re.compile(r"^bach/bwv\d+\.\d+\.(mxl|xml|krn)$")
FAMILIES = ("folk", "chorales", "polyphony")  # the subsets every report keys its scores by (besides "all")


def family(collection: str) -> str:
    """The family of a collection: "folk" (the FOLK collections), "chorales" (CHORALES), "polyphony" (the
    POLYPHONY collections), else the collection itself (a user folder is its own family). The one rule for the
    whole project: mapping runs, evaluation, the gallery and the LM reports all key their subsets by it."""
    if collection in FOLK:
        return "folk"
    if collection in POLYPHONY:
        return "polyphony"
    return "chorales" if collection == CHORALES else collection


def cap_keys(collections: list[str]) -> set[str]:
    """The names corpus.max_works_by_collection may use: the listed collections and every family's (a cap on one not
    listed is kept for when it is, e.g. by a profile that lists fewer)."""
    return {*collections, *FOLK, CHORALES, *POLYPHONY}


def is_keyboard_work(source: str) -> bool:
    """A corpus file of KEYBOARD_WORKS (kept out of every pool)."""
    return source.startswith(KEYBOARD_WORKS)


@dataclass
class WorkRef:
    """Where a work comes from: a corpus file (+ tune number inside an ABC opus) or a user file."""
    collection: str
    source: str  # corpus-relative path, or absolute path for user files
    number: int | None = None
    user: bool = False
    label: str | None = None  # user files: the path inside the folder, made unique (see list_user_works)
    max_mb: float | None = None  # user files: size limit checked before parsing

    @property
    def id(self) -> str:
        stem = self.label
        if stem is None:
            stem = Path(self.source).name
            for suffix in (".abc", ".mxl", ".xml", ".musicxml", ".krn", ".mid", ".midi"):
                stem = stem.removesuffix(suffix)
            # A nested corpus file (haydn/opus74no1/movement1.mxl) keeps its folders: movement1 alone is not unique.
            stem = "_".join([*Path(self.source).parts[1:-1], stem]) if not self.user else stem
        slug = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")
        return f"{self.collection}-{slug}" + (f"-{self.number}" if self.number is not None else "")


@dataclass
class Piece:
    id: str
    collection: str
    source: str
    title: str
    key: str  # "G major"
    key_fifths: int
    tempo_bpm: float | None  # quarter notes per minute, if the source has a metronome mark
    bars: list[list]  # [offset_q, length_q, "3/4"] per bar, in order
    dynamics: list[list]  # [offset_q, mark]
    notes: list[list]  # [pitch, onset_q, duration_q, voice]
    n_voices: int
    melody_hash: str = ""
    duplicates: list[str] = field(default_factory=list)  # ids of pieces dropped as duplicates of this one

    def to_dict(self) -> dict:
        return asdict(self)


class CorpusError(ValueError):
    """Bad corpus parameters (unknown collection, missing folder...)."""


def available_collections() -> list[str]:
    from music21 import corpus  # deferred: music21 takes about a second to import; only score parsing needs it

    roots = {str(p).split("/corpus/")[-1].split("/")[0] for p in corpus.corpora.CoreCorpus().getPaths()}
    return sorted(roots | {CHORALES})


def list_works(collections: list[str], max_works: int | None, seed: int,
               max_by_collection: dict[str, int] | None = None) -> list[WorkRef]:
    """Works of the chosen corpus collections; a seeded random sample of at most `max_works` each
    (`max_by_collection[c]` for collection c where given). KEYBOARD_WORKS are never listed."""
    from music21 import corpus  # deferred: music21 takes about a second to import; only score parsing needs it

    known = available_collections()
    unknown = [c for c in collections if c not in known]
    if unknown:
        raise CorpusError(f"Unknown music21 collection(s) {unknown}. Available: {', '.join(known)}")
    caps = dict(max_by_collection or {})
    stray = sorted(set(caps) - cap_keys(collections))
    if stray:
        raise CorpusError(f"corpus.max_works_by_collection names {stray}: neither in corpus.collections nor a "
                          f"collection of a family (a typo would silently read every work). Listed: {collections}")
    by_collection: dict[str, list[WorkRef]] = {c: [] for c in collections}
    for entry in corpus.corpora.CoreCorpus().metadataBundle:
        source = str(entry.sourcePath)
        top = source.split("/")[0]
        # scores only: music21's catalogue also holds Roman-numeral analyses (.rntxt: chord symbols, not parts)
        if is_keyboard_work(source) or Path(source).suffix.lower() not in USER_SUFFIXES:
            continue
        number = int(entry.number) if entry.number not in (None, "") else None
        if top in by_collection and top != "bach":
            by_collection[top].append(WorkRef(top, source, number))
        if CHORALES in by_collection and _CHORALE_FILE.match(source):
            by_collection[CHORALES].append(WorkRef(CHORALES, source, number))
        elif "bach" in by_collection and top == "bach":
            by_collection["bach"].append(WorkRef("bach", source, number))
    works = []
    for c in collections:
        refs = sorted(by_collection[c], key=lambda r: (r.source, r.number or 0))
        refs = list({r.id: r for r in refs}.values())
        if not refs:
            raise CorpusError(f"Collection {c!r} has no work left: its works are keyboard works (KEYBOARD_WORKS), "
                              "kept out of every pool for an outside check")
        cap = caps.get(c, max_works)
        if cap is not None and len(refs) > cap:
            refs = random.Random(f"{seed}-{c}").sample(refs, cap)
        works += sorted(refs, key=lambda r: r.id)
    return works


def list_user_works(folders: list[str], max_mb: float | None = DEFAULT_MAX_MB) -> list[WorkRef]:
    """Music files (MusicXML, MIDI, ABC, kern) under each user folder; collection = 'user-<folder name>'.

    A work's id comes from its path inside the folder (sub/tune.abc -> user-<folder>-sub_tune); where two
    files would share an id (tune.abc and tune.mid) each keeps its suffix (tune_abc, tune_mid).
    """
    works = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise CorpusError(f"User folder {folder!r} does not exist or is not a folder (corpus.user_folders)")
        name = "user-" + re.sub(r"[^A-Za-z0-9]+", "_", root.resolve().name)
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in USER_SUFFIXES]
        stems = [str(p.relative_to(root).with_suffix("")) for p in files]
        for path, stem in zip(files, stems):
            label = stem + ("_" + path.suffix[1:] if stems.count(stem) > 1 else "")
            works.append(WorkRef(name, str(path.resolve()), None, user=True, label=label, max_mb=max_mb))
    return works


def _parse(ref: WorkRef):
    # deferred: music21 takes about a second to import; only score parsing needs it
    from music21 import converter, corpus, stream

    if ref.user:
        check_score_file(ref.source, ref.max_mb)
        obj = converter.parse(ref.source)
    else:
        obj = corpus.parse(ref.source, number=ref.number)
    if isinstance(obj, stream.Opus):
        if not len(obj.scores):
            raise ValueError("opus holds no score")
        obj = obj.scores[0]
    return obj


def extract_piece(ref: WorkRef, score) -> Piece:
    """music21 stream -> Piece (ties merged, grace notes dropped, chords split into notes)."""
    # deferred: music21 takes about a second to import; only score parsing needs it
    from music21 import dynamics, key, meter, tempo

    parts = list(score.parts) or [score]
    notes = []
    for voice, part in enumerate(parts):
        for el in part.flatten().stripTies().notes:
            dur = float(el.quarterLength)
            if dur <= 0:  # grace notes have no duration in the score
                continue
            onset = float(el.offset)
            for p in el.pitches:
                notes.append([int(p.midi), round(onset, 4), round(dur, 4), voice])
    if not notes:
        raise ValueError("no notes")
    notes.sort(key=lambda n: (n[1], n[3], -n[0]))

    bars, ts = [], None
    measures = list(parts[0].getElementsByClass("Measure"))
    for m in measures:
        ts = m.timeSignature or ts
        if ts is None:
            found = list(parts[0].recurse().getElementsByClass(meter.TimeSignature))
            ts = found[0] if found else meter.TimeSignature("4/4")
        bars.append([round(float(m.offset), 4), round(float(m.duration.quarterLength), 4), ts.ratioString])
    if not bars:
        raise ValueError("no bars (the file has no measures)")

    keys = list(score.recurse().getElementsByClass(key.Key))
    sigs = list(score.recurse().getElementsByClass(key.KeySignature))
    if keys:
        k = keys[0]
    elif sigs:
        k = sigs[0].asKey("major")
    else:
        k = key.Key("C")
    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
    bpm = None
    if marks and marks[0].number:
        bpm = float(marks[0].getQuarterBPM())
    dyn = sorted(
        [round(float(d.getOffsetInHierarchy(score)), 4), d.value]
        for d in score.recurse().getElementsByClass(dynamics.Dynamic)
        if d.value in DYNAMICS
    )
    title = (score.metadata.title if score.metadata and score.metadata.title else "") or ref.id
    return Piece(
        id=ref.id, collection=ref.collection, source=ref.source, title=str(title),
        key=f"{k.tonic.name} {k.mode}", key_fifths=int(k.sharps),
        tempo_bpm=bpm, bars=bars, dynamics=dyn, notes=notes, n_voices=len(parts),
    )


def parse_work(ref: WorkRef) -> tuple[WorkRef, Piece | None, str | None]:
    """Parse one work; never raises: failures come back as a reason string."""
    try:
        piece = extract_piece(ref, _parse(ref))
        if ref.collection == CHORALES and piece.n_voices != 4:
            return ref, None, f"not a four-part chorale ({piece.n_voices} parts)"
        return ref, piece, None
    except ScoreFileError as exc:
        return ref, None, str(exc)
    except Exception as exc:  # music21 raises many exception types on bad input
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return ref, None, f"{type(exc).__name__}: {message}"


def parse_works(works: list[WorkRef], workers: int = 0) -> tuple[list[Piece], list[dict]]:
    """Parse on `workers` processes (0 = all cores) with a progress bar. Returns (pieces, skipped)."""
    workers = workers or os.cpu_count() or 1
    pieces, skipped = [], []
    if workers == 1 or len(works) < 8:
        results = map(parse_work, works)
        for ref, piece, err in tqdm(results, total=len(works), desc="parse", unit="work"):
            _collect(ref, piece, err, pieces, skipped)
    else:
        # Longest first, one work per task: a string-quartet movement parses ~100x slower than a folk tune, and
        # slow works drawn last (or four to a chunk) left one core parsing alone at the end. Output order is by id.
        order = sorted(works, key=_parse_cost, reverse=True)
        with get_context("fork").Pool(workers) as pool:
            results = pool.imap_unordered(parse_work, order, chunksize=1)
            for ref, piece, err in tqdm(results, total=len(works), desc="parse", unit="work"):
                _collect(ref, piece, err, pieces, skipped)
    pieces.sort(key=lambda p: p.id)
    skipped.sort(key=lambda s: s["id"])
    return pieces, skipped


def _parse_cost(ref: WorkRef) -> int:
    """A work's parse cost, roughly: its file's size (0 for one tune of an ABC book or a file not found)."""
    if ref.number is not None:
        return 0
    try:
        if ref.user:
            return Path(ref.source).stat().st_size
        from music21 import common  # deferred: music21 takes about a second to import

        return (Path(common.getCorpusFilePath()) / ref.source).stat().st_size
    except OSError:
        return 0


def _collect(ref, piece, err, pieces, skipped):
    if piece is None:
        skipped.append({"id": ref.id, "collection": ref.collection, "source": ref.source, "reason": err})
    else:
        pieces.append(piece)


def melody_hash(notes: list[list]) -> str:
    """Transposition-invariant fingerprint of the top line: pitch intervals and durations (1/12 beat)."""
    top: dict[float, list] = {}
    for pitch, onset, dur, voice in notes:
        if voice == 0 and (onset not in top or pitch > top[onset][0]):
            top[onset] = [pitch, dur]
    line = [top[o] for o in sorted(top)]
    seq = [(b[0] - a[0], round(a[1] * 12)) for a, b in zip(line, line[1:])]
    seq.append((0, round(line[-1][1] * 12)) if line else (0, 0))
    return hashlib.sha1(json.dumps(seq).encode()).hexdigest()[:16]


def deduplicate(pieces: list[Piece]) -> tuple[list[Piece], list[dict]]:
    """Keep one piece per melody hash (the first by id); the others are listed as dropped duplicates."""
    kept: dict[str, Piece] = {}
    dropped = []
    for p in sorted(pieces, key=lambda p: p.id):
        p.melody_hash = p.melody_hash or melody_hash(p.notes)
        if p.melody_hash in kept:
            keeper = kept[p.melody_hash]
            keeper.duplicates.append(p.id)
            dropped.append({"id": p.id, "duplicate_of": keeper.id, "hash": p.melody_hash})
        else:
            kept[p.melody_hash] = p
    return sorted(kept.values(), key=lambda p: p.id), dropped


def save_pieces(pieces: list[Piece], path: Path) -> None:

    with atomic_path(path) as tmp, gzip.open(tmp, "wt") as f:
        for p in pieces:
            f.write(json.dumps(p.to_dict()) + "\n")


def load_pieces(path: Path) -> list[Piece]:
    with gzip.open(path, "rt") as f:
        return [Piece(**json.loads(line)) for line in f]
