"""The corpus and split stages for real recordings (corpus.source: maestro_asap).

corpus: read MAESTRO and ASAP metadata (adapters), group performances into pieces, parse the ASAP
        scores -> data/corpus/{works.jsonl.gz, performances.jsonl, pieces.json, skipped.json, source.json}
split:  pieces -> pools, excerpts -> data/scores/<pool>.jsonl, data/scores/segments.jsonl (which
        stretch of which recording each excerpt of U_A, P and T is), data/splits.json

Pieces. The piece key is composer + title; performances that share a MAESTRO recording are the same
piece too (ASAP links its rows to MAESTRO files; one MAESTRO file may hold a prelude and its fugue),
so every performance of a piece lands in one pool. A MAESTRO row that ASAP annotates is used once,
as the ASAP performance (listed in splits.json "duplicates_dropped").

Pools. A piece with a score and at least one recording aligned to it ("asap") is split over U_V,
U_A, P and T by split.fractions; a piece with a score but no aligned recording goes to U_V; a piece
with recordings but no score ("maestro") goes to U_A (unpaired audio needs no score).

Excerpts. Scores are cut at whole bars as in the built-in corpus (split.excerpts). A recorded
excerpt is the stretch between the annotated downbeats of its first bar and of the bar after it;
its id is <performance id>-b<first bar>. Audio-only excerpts are `excerpt_seconds` long,
<performance id>-s<start second>. The tempo mark of a recorded excerpt is the score's if it has one,
else the performance's mean tempo over the excerpt (tempo_from_source false).
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from lmm_utils.core import paths
from lmm_utils.core.io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl
from lmm_utils.core.params import ParamsError
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.corpus import CorpusError, Piece, WorkRef, load_pieces, parse_works, save_pieces
from lmm_utils.data.excerpts import ExcerptConfig, bar_windows, excerpt_at, make_excerpts, stable_seed, window_notes
from lmm_utils.data.pools import POOLS, check_disjoint, split_pieces
from lmm_utils.data.sources import PerformanceRecord, ScoreRecord, piece_key
from lmm_utils.data.sources.asap import read_asap
from lmm_utils.data.sources.maestro import read_maestro
from lmm_utils.data.sources.segments import aligned_windows, measure_map

SOURCE = "maestro_asap"
SOURCES = ("music21", SOURCE)
SEGMENTS_FILE = paths.SCORES_DIR / "segments.jsonl"
SOURCE_FILE = paths.CORPUS_DIR / "source.json"
PERFORMED = ("U_A", "P", "T")


def check_source(corpus: dict) -> str:
    source = corpus.get("source", "music21")
    if source not in SOURCES:
        raise CorpusError(f"corpus.source must be one of {SOURCES}, got {source!r}")
    return source


def is_real_corpus() -> bool:
    return SOURCE_FILE.is_file() and read_json(SOURCE_FILE).get("source") == SOURCE


def is_real_split() -> bool:
    return paths.SPLITS.is_file() and read_json(paths.SPLITS).get("source") == SOURCE


# ---------------------------------------------------------------- corpus

class _Groups:
    """Union-find over piece keys."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, k: str) -> str:
        self.parent.setdefault(k, k)
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_pieces(scores: list[ScoreRecord], asap: list[PerformanceRecord],
                 maestro: list[PerformanceRecord]) -> tuple[dict[str, dict], list[PerformanceRecord], list[dict]]:
    """Pieces {id: {key, collection, scores, performances}}, the performances kept, and the MAESTRO
    records dropped because ASAP annotates the same recording."""
    by_file = {m.maestro_file: m for m in maestro}
    groups = _Groups()
    for s in scores:
        groups.find(piece_key(s.composer, s.title))
    for p in asap:
        groups.find(piece_key(p.composer, p.title))
        linked = by_file.get(p.maestro_file)
        if linked is not None:  # the same recording: its MAESTRO title is the same piece
            groups.union(piece_key(p.composer, p.title), piece_key(linked.composer, linked.title))
    annotated = {p.maestro_file: p for p in asap if p.maestro_file and p.audio and p.maestro_file in by_file}
    dropped = [{"id": m.id, "duplicate_of": annotated[m.maestro_file].id} for m in maestro if m.maestro_file in annotated]
    kept = asap + [m for m in maestro if m.maestro_file not in annotated]
    for m in kept:
        groups.find(piece_key(m.composer, m.title))

    asap_keys = {piece_key(s.composer, s.title) for s in scores} | {piece_key(p.composer, p.title) for p in asap}
    names: dict[str, str] = {}
    for key in sorted(groups.parent, key=lambda k: (k not in asap_keys, k)):  # ASAP's names first: shorter
        names.setdefault(groups.find(key), key.replace("|", "-"))

    def pid(key: str) -> str:  # "bach|fugue_bwv_846" -> "bach-fugue_bwv_846": the piece id in splits.json
        return names[groups.find(key)]

    pieces: dict[str, dict] = {}
    for key in sorted(groups.parent):
        pieces.setdefault(pid(key), {"keys": [], "scores": [], "performances": []})["keys"].append(key)
    for s in scores:
        pieces[pid(piece_key(s.composer, s.title))]["scores"].append(s.id)
    for p in kept:
        pieces[pid(piece_key(p.composer, p.title))]["performances"].append(p.id)
    return pieces, kept, dropped


def check_real_data(real: dict) -> dict:
    """real_data section: folder strings or null, positive sizes or null; names the bad key."""

    for key in ("maestro_dir", "asap_dir"):
        if real.get(key) is not None and not isinstance(real[key], str):
            raise ParamsError(f"params.yaml: real_data.{key} must be a folder path or null, got {real[key]!r}")
    for key in ("max_pieces", "max_performances_per_piece"):
        value = real.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ParamsError(f"params.yaml: real_data.{key} must be a positive integer or null, got {value!r}")
    seconds = real.get("excerpt_seconds", 10.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        raise ParamsError(f"params.yaml: real_data.excerpt_seconds must be > 0, got {seconds!r}")
    return real


def build_real_corpus(corpus: dict, real: dict) -> dict:
    check_real_data(real)
    maestro_dir, asap_dir = real.get("maestro_dir"), real.get("asap_dir")
    if maestro_dir is None and asap_dir is None:
        raise CorpusError(f"corpus.source is {SOURCE} but real_data.maestro_dir and real_data.asap_dir are both null")
    maestro = read_maestro(maestro_dir) if maestro_dir is not None else []
    scores, asap = read_asap(asap_dir, maestro_dir) if asap_dir is not None else ([], [])
    pieces, performances, dropped = group_pieces(scores, asap, maestro)

    seed = int(corpus.get("seed", 0))
    ids = sorted(pieces)
    if real.get("max_pieces") is not None and len(ids) > int(real["max_pieces"]):
        ids = sorted(random.Random(f"{seed}-pieces").sample(ids, int(real["max_pieces"])))
    cap = real.get("max_performances_per_piece")
    by_id = {p.id: p for p in performances}
    for pid in ids:
        perfs = sorted(pieces[pid]["performances"])
        if cap is not None and len(perfs) > int(cap):
            perfs = sorted(random.Random(f"{seed}-{pid}").sample(perfs, int(cap)))
        pieces[pid]["performances"] = perfs
    pieces = {pid: pieces[pid] for pid in ids}
    used_scores = {s for p in pieces.values() for s in p["scores"]}
    used_perfs = [by_id[i] for p in pieces.values() for i in p["performances"]]

    score_by_xml = {s.xml: s for s in scores if s.id in used_scores}
    refs = [WorkRef("asap", xml, None, user=True) for xml in sorted(score_by_xml)]
    parsed, skipped = parse_works(refs, corpus.get("workers", 0)) if refs else ([], [])
    works: list[Piece] = []
    for piece in parsed:
        rec = score_by_xml[piece.source]
        works.append(replace(piece, id=rec.id, title=f"{rec.composer}: {rec.title}"))
    for s in skipped:
        s["id"] = score_by_xml[s["source"]].id
    skipped += [{"id": p.id, "collection": p.source, "source": p.midi, "reason": "; ".join(p.notes)}
                for p in used_perfs if p.notes]
    with atomic_dir(paths.CORPUS_DIR) as tmp:
        save_pieces(sorted(works, key=lambda w: w.id), tmp / "works.jsonl.gz")
        write_jsonl((p.to_dict() for p in used_perfs), tmp / "performances.jsonl")
        write_json({"pieces": pieces, "duplicates_dropped": dropped}, tmp / "pieces.json")
        write_json(skipped, tmp / "skipped.json")
        write_json({"source": SOURCE, "real_data": real}, tmp / "source.json")
    return {"source": SOURCE, "pieces": len(pieces), "scores_parsed": len(works), "performances": len(used_perfs),
            "with_audio": sum(p.audio is not None for p in used_perfs),
            "with_downbeats": sum(p.downbeats is not None for p in used_perfs),
            "maestro_rows_annotated_by_asap": len(dropped), "skipped": len(skipped)}


# ---------------------------------------------------------------- split

def _kind(piece: dict, works: dict[str, Piece], perfs: dict[str, PerformanceRecord]) -> str:
    has_score = any(s in works for s in piece["scores"])
    audio = [perfs[i] for i in piece["performances"] if perfs[i].audio is not None]
    if has_score and any(p.downbeats is not None and p.score_id in works for p in audio):
        return "asap"
    if has_score:
        return "score_only"
    return "maestro" if audio else "unusable"


def _recorded_excerpts(perf: PerformanceRecord, piece: Piece, cfg: ExcerptConfig, seed: int) -> tuple[list[ScoreExcerpt], list[dict], str | None]:
    measures = measure_map(perf.downbeats or [], perf.downbeat_measures, piece.bars)
    if measures is None:
        return [], [], "downbeats do not match the score's measures (repeats?); asap_annotations.json resolves them"
    starts = [w for w in bar_windows(piece, cfg.n_bars) if len(window_notes(piece, w, cfg.n_bars)[0]) >= cfg.min_notes]
    windows = [w for w in aligned_windows(starts, perf.downbeats, measures, cfg.n_bars)
               if perf.end is None or w[2] + perf.offset <= perf.end]
    rng = np.random.default_rng(stable_seed(seed, perf.id))
    if len(windows) > cfg.max_per_piece:
        windows = [windows[i] for i in sorted(rng.choice(len(windows), cfg.max_per_piece, replace=False))]
    excerpts, segments = [], []
    for bar, t0, t1 in windows:
        ex = excerpt_at(piece, bar, cfg, rng)
        ex = replace(ex, id=f"{perf.id}-b{bar:03d}")
        if not ex.tempo_from_source:  # the tempo the pianist took over these bars
            ex = replace(ex, tempo_bpm=round(ex.length_beats * 60.0 / (t1 - t0), 1))
        excerpts.append(ex)
        segments.append({"id": ex.id, "performance": perf.id, "midi": perf.midi, "audio": perf.audio,
                         "start": round(t0 + perf.offset, 5), "end": round(t1 + perf.offset, 5)})
    return excerpts, segments, None


def _audio_only_segments(perf: PerformanceRecord, seconds: float, max_n: int, seed: int) -> list[dict]:

    end = perf.end if perf.end is not None else perf.duration if perf.duration else sf.info(perf.audio).duration
    starts = [perf.offset + k * seconds for k in range(int((end - perf.offset) // seconds))]
    if len(starts) > max_n:
        rng = np.random.default_rng(stable_seed(seed, perf.id))
        starts = [starts[i] for i in sorted(rng.choice(len(starts), max_n, replace=False))]
    return [{"id": f"{perf.id}-s{int(s):05d}", "performance": perf.id, "midi": perf.midi, "audio": perf.audio,
             "start": round(s, 5), "end": round(s + seconds, 5)} for s in starts]


def build_real_split(section: dict) -> dict:
    seed = int(section["seed"])
    cfg = ExcerptConfig.from_params(section["excerpts"])
    real = read_json(SOURCE_FILE)["real_data"]
    meta = read_json(paths.CORPUS_DIR / "pieces.json")
    works = {w.id: w for w in load_pieces(paths.CORPUS_DIR / "works.jsonl.gz")}
    perfs = {r["id"]: PerformanceRecord.from_dict(r) for r in read_jsonl(paths.CORPUS_DIR / "performances.jsonl")}
    pieces = meta["pieces"]
    kinds = {pid: _kind(p, works, perfs) for pid, p in pieces.items()}
    assignment = split_pieces([SimpleNamespace(id=pid, collection="asap") for pid, k in kinds.items() if k == "asap"],
                              section["fractions"], seed)
    assignment["U_V"] = sorted(assignment["U_V"] + [pid for pid, k in kinds.items() if k == "score_only"])
    assignment["U_A"] = sorted(assignment["U_A"] + [pid for pid, k in kinds.items() if k == "maestro"])

    scores: dict[str, list[ScoreExcerpt]] = {p: [] for p in POOLS}
    segments: dict[str, list[dict]] = {p: [] for p in POOLS}
    unaligned = []
    for pool in POOLS:
        for pid in assignment[pool]:
            piece = pieces[pid]
            if pool == "U_V":
                for sid in piece["scores"]:
                    scores[pool] += make_excerpts(works[sid], cfg, seed) if sid in works else []
                continue
            for perf in (perfs[i] for i in piece["performances"]):
                if perf.audio is None:
                    continue
                if kinds[pid] == "maestro":
                    segments[pool] += _audio_only_segments(perf, float(real.get("excerpt_seconds", 10.0)), cfg.max_per_piece, seed)
                elif perf.downbeats is not None and perf.score_id in works:
                    ex, seg, why = _recorded_excerpts(perf, works[perf.score_id], cfg, seed)
                    scores[pool] += ex
                    segments[pool] += seg
                    if why:
                        unaligned.append({"id": perf.id, "reason": why})
    splits = {"seed": seed, "fractions": section["fractions"], "source": SOURCE,
              "duplicates_dropped": meta["duplicates_dropped"], "unaligned_performances": unaligned,
              "unusable_pieces": sorted(pid for pid, k in kinds.items() if k == "unusable"), "pools": {}}
    for pool in POOLS:
        scored = {e.id for e in scores[pool]}
        ids = [e.id for e in scores[pool]] + [s["id"] for s in segments[pool] if s["id"] not in scored]  # + audio only
        splits["pools"][pool] = {
            "pieces": [{"id": pid, "collection": kinds[pid], "hash": pid} for pid in assignment[pool]],
            "hashes": sorted(assignment[pool]), "excerpts": ids}
    check_disjoint(splits)
    if not scores["T"] or not scores["P"]:
        raise ValueError(f"The split left pool T or P without recorded excerpts ({Counter(kinds.values())} pieces by "
                         "kind): they need ASAP pieces with MAESTRO audio and downbeats that match the score.")
    with atomic_dir(paths.SCORES_DIR) as tmp:
        for pool in POOLS:
            write_jsonl((e.to_dict() for e in scores[pool]), tmp / f"{pool}.jsonl")
        write_jsonl(({"pool": pool, **s} for pool in PERFORMED for s in segments[pool]), tmp / SEGMENTS_FILE.name)
    write_json(splits, paths.SPLITS)
    return {"source": SOURCE, "pieces": len(pieces), "duplicates_dropped": len(meta["duplicates_dropped"]),
            "unaligned_performances": len(unaligned), **{f"{k}_pieces": v for k, v in Counter(kinds.values()).items()},
            **{f"{p}_pieces": len(assignment[p]) for p in POOLS},
            **{f"{p}_excerpts": len(splits["pools"][p]["excerpts"]) for p in POOLS}}


__all__ = ["SOURCE", "SOURCES", "check_source", "is_real_corpus", "is_real_split", "group_pieces",
           "build_real_corpus", "build_real_split", "SEGMENTS_FILE"]
