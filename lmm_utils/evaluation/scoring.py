"""The one scoring path: a run's saved predictions, scored against T's true motion, one row per excerpt.

    truth = EvaluationData(root).truth(ids)               # T's true performances (lmm_utils.data.evaluation)
    rows = score_run_folder(run_dir, truth)               # stage map: scores a run's predictions.json.gz
                                                          #   (evaluation.predictions) into run_dir/scores/<system>.json
    nested = nest({s: summarize(r) for s, r in rows.items()})   # metrics.json's h/g blocks
    runs = discover_runs(RUNS_DIR)                        # stages summary and evaluate read those rows back:
    table = collect(runs, truth, cache_dir)               #   one row per run x system x subset x metric

A mapping run scores its own predictions right after writing them (`score_run_folder`), so its metrics.json,
the summary stage (08) and the evaluate stage (10) all rest on the same per-excerpt rows. Rows carry a
fingerprint of the predictions' contents, the truth and the metric code; evaluation recomputes a run's
rows (into its cache, data/evaluate/scores) only when they are missing or the fingerprint differs -- e.g. it
scores the union of the runs' excerpts and a run predicted fewer. Peers (Basic Pitch) go through the same code.

A missing or unreadable prediction counts as an empty performance (F1 = 0), and is counted (`failed`). Subsets:
"all", the families of lmm_utils.data.corpus.family ("folk", "chorales", "polyphony") and each collection. Rows keep NaN for
undefined values (e.g. the tempo of a one-note excerpt); Python's json reads them back.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lmm_utils.core.io import read_json, write_json
from lmm_utils.core.motion import Performance
from lmm_utils.core.paths import DATA, RUNS_DIR, parse_run_name, sweep_runs
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import Truth
from lmm_utils.evaluation import metrics as metrics_mod
from lmm_utils.evaluation.predictions import MidiFolder, PredictionSource, run_sources

PEERS_DIR = DATA / "peers"
CACHE_DIR = DATA / "evaluate" / "scores"
SCORES = "scores"  # data/runs/<run>/scores/<system>.json: a run's per-excerpt rows

# system -> (pool whose recordings it reads, scorer). Truth is always T's motion: T_timbre and T_noisy are the same
# performances recorded on another piano / in a reverberant, noisy room. A run or peer made before T_noisy has no
# h_noisy: it is reported absent (no rows), never as zeros.
SYSTEMS = {"h": ("T", "transcription"), "h_timbre": ("T_timbre", "transcription"), "h_noisy": ("T_noisy", "transcription"),
           "g": ("T", "performance")}
TRANSCRIPTION_SYSTEMS = tuple(s for s, (_, kind) in SYSTEMS.items() if kind == "transcription")


# --- runs -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    name: str
    method: str
    K: int
    seed: int
    path: Path


def discover_runs(runs_dir: str | Path = RUNS_DIR) -> list[Run]:
    """Every run folder <method>/<method>-K<K>-s<seed> (and, from older layouts, <method>-K<K>-s<seed> directly
    under runs_dir); others, e.g. temporary ones, are ignored. Sorted by method, K, seed."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    out = []
    for d in sorted(runs_dir.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        parsed = parse_run_name(d.name)
        if parsed:
            out.append(Run(d.name, *parsed, d))
            continue
        for sub in sorted(d.iterdir()):
            parsed = parse_run_name(sub.name) if sub.is_dir() and not sub.name.startswith(".") else None
            if parsed and parsed[0] == d.name:
                out.append(Run(sub.name, *parsed, sub))
    return sorted(out, key=lambda r: (r.method, r.K, r.seed))


def in_sweep(runs: list[Run], map_params: dict | None) -> tuple[list[Run], list[Run]]:
    """(runs of the sweep params.yaml defines -- mapping.methods x mapping.Ks x mapping.seeds --, the others). Run
    folders of an older sweep stay on disk (DVC does not delete outputs of stages that are gone) and must not mix in."""
    if not map_params or not all(k in map_params for k in ("methods", "Ks", "seeds")):
        return list(runs), []
    want = set(sweep_runs(map_params))
    kept = [r for r in runs if (r.method, r.K, r.seed) in want]
    return kept, [r for r in runs if (r.method, r.K, r.seed) not in want]


def predicted_ids(runs: list[Run]) -> list[str]:
    """Excerpts any run wrote a prediction for: the mapping stage may score a fixed subset of T
    (mapping.eval.max_items), and evaluation (runs and peers alike) uses the same subset."""
    ids: set[str] = set()
    for r in runs:
        for src in run_sources(r.path, tuple(SYSTEMS)).values():
            ids |= set(src.ids())
    return sorted(ids)


# --- scoring a folder of predictions ----------------------------------------------------------------------

def _scorer(kind: str):
    return metrics_mod.transcription_scores if kind == "transcription" else metrics_mod.performance_scores


def read_prediction(path: Path) -> tuple[Performance, str]:
    """One MIDI file as (performance, status): status is ok / missing / unreadable; the last two give an empty one."""
    path = Path(path)
    return MidiFolder(path.parent).get(path.stem)


def score_source(source: PredictionSource, truth: Truth, kind: str, progress: bool = False,
                 desc: str = "") -> list[dict]:
    """One row per excerpt of `truth`: id, collection, family, status, and every metric of `kind`."""
    scorer = _scorer(kind)
    rows = []
    for i in tqdm(truth.ids, desc=desc, disable=not progress, mininterval=2.0, leave=False):
        est, status = source.get(i)
        row = {"id": i, "collection": truth.collection[i], "family": family(truth.collection[i]), "status": status}
        row.update(scorer(truth.perf[i], est))
        rows.append(row)
    return rows


def score_folder(pred_dir: str | Path, truth: Truth, kind: str, progress: bool = False,
                 desc: str = "") -> list[dict]:
    """score_source on a folder of <id>.mid files (peers)."""
    return score_source(MidiFolder(pred_dir), truth, kind, progress, desc or Path(pred_dir).name)


def _metric_code_hash() -> str:
    # Scores change when the metric code (or the family rule) changes; saved rows must notice.
    src = inspect.getsource(metrics_mod) + inspect.getsource(family)
    return hashlib.sha1(src.encode()).hexdigest()[:12]


def source_fingerprint(source: PredictionSource, truth_fp: str, kind: str) -> str:
    """Of the predictions' contents, the truth, the scorer and the metric code."""
    return hashlib.sha1("|".join([truth_fp, kind, _metric_code_hash(), source.fingerprint()]).encode()).hexdigest()[:16]


def folder_fingerprint(pred_dir: Path, truth_fp: str, kind: str) -> str:
    return source_fingerprint(MidiFolder(pred_dir), truth_fp, kind)


def read_rows(path: Path, fingerprint: str | None = None) -> list[dict] | None:
    """Saved rows; None when absent, torn, or (given a fingerprint) computed from other inputs."""
    try:
        saved = read_json(path)
        if fingerprint is None or saved["fingerprint"] == fingerprint:
            return saved["rows"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        pass
    return None


def cached_scores(name: str, source: PredictionSource | Path, truth: Truth, kind: str, cache_dir: Path | None,
                  truth_fp: str | None = None, progress: bool = False, saved: Path | None = None) -> list[dict]:
    """score_source, reusing `saved` (a run's own scores file) or cache_dir/<name>.json when the predictions,
    the truth and the code are unchanged; fresh scores go to the cache. A path means a folder of MIDI files."""
    if not isinstance(source, PredictionSource):
        source = MidiFolder(source)
    fp = source_fingerprint(source, truth_fp or truth.fingerprint(), kind)
    cache = cache_dir / f"{name}.json" if cache_dir is not None else None
    for path in (saved, cache):
        rows = read_rows(path, fp) if path is not None else None
        if rows is not None:
            return rows
    rows = score_source(source, truth, kind, progress, desc=name)
    if cache is not None:
        write_json({"fingerprint": fp, "rows": rows}, cache)
    return rows


def score_run_folder(run_dir: str | Path, truth: Truth, progress: bool = False) -> dict[str, list[dict]]:
    """Stage map: score each system of a run's saved predictions against `truth` (the excerpts it was asked to
    predict) and write the rows to run_dir/scores/<system>.json. -> {system: rows}."""
    run_dir = Path(run_dir)
    truth_fp = truth.fingerprint()
    sources = run_sources(run_dir, tuple(SYSTEMS))
    out = {}
    for system, (_, kind) in SYSTEMS.items():
        if system in sources:
            rows = score_source(sources[system], truth, kind, progress, desc=system)
            write_json({"fingerprint": source_fingerprint(sources[system], truth_fp, kind), "system": system,
                        "kind": kind, "rows": rows}, run_dir / SCORES / f"{system}.json")
            out[system] = rows
    return out


def saved_rows(run_dir: str | Path) -> dict[str, list[dict]]:
    """The rows a run wrote (scores/<system>.json), as they are: {system: rows} ({} for an unscored run)."""
    out = {}
    for system in SYSTEMS:
        rows = read_rows(Path(run_dir) / SCORES / f"{system}.json")
        if rows is not None:
            out[system] = rows
    return out


# --- summaries ----------------------------------------------------------------------------------------------

def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Means over excerpts: all, per family (folk / chorales) and per collection, each with n and `failed`, the
    fraction of predictions that were missing or unreadable."""
    rows = [{**r, "failed": float(r.get("status", "ok") != "ok")} for r in rows]
    out = dict(metrics_mod.aggregate(rows, "family"))
    for k, v in metrics_mod.aggregate(rows, "collection").items():
        out.setdefault(k, v)
    return out


def nest(summaries: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """{system: summary} -> {"h": {"T": .., "T_timbre": .., "T_noisy": ..}, "g": {"T": ..}}: metrics.json's layout."""
    out: dict[str, dict] = {}
    for system, summary in summaries.items():
        out.setdefault(system.split("_")[0], {})[SYSTEMS[system][0]] = summary
    return out


def score_run(run: Run, truth: Truth, cache_dir: Path | None = CACHE_DIR, progress: bool = False,
              truth_fp: str | None = None) -> dict[str, dict]:
    """{system: summary} for each system the run predicted (its own rows when they fit)."""
    out = {}
    sources = run_sources(run.path, tuple(SYSTEMS))
    for system, (_, kind) in SYSTEMS.items():
        if system in sources:
            rows = cached_scores(f"{run.name}__{system}", sources[system], truth, kind, cache_dir, truth_fp, progress,
                                 saved=run.path / SCORES / f"{system}.json")
            out[system] = summarize(rows)
    return out


def long_rows(name: str, method: str, K: int | None, seed: int | None, summaries: dict[str, dict]) -> list[dict]:
    rows = []
    for system, summary in summaries.items():
        for subset, means in summary.items():
            n = int(means.get("n", 0))
            for metric, value in means.items():
                if metric != "n":
                    rows.append({"run": name, "method": method, "K": K, "seed": seed, "system": system,
                                 "subset": subset, "metric": metric, "value": float(value), "n_excerpts": n})
    return rows


def _score_job(job: tuple) -> list[dict]:
    run, truth, cache_dir, truth_fp = job
    return long_rows(run.name, run.method, run.K, run.seed, score_run(run, truth, cache_dir, False, truth_fp))


def collect(runs: list[Run], truth: Truth, cache_dir: Path | None = CACHE_DIR, progress: bool = True,
            workers: int = 1) -> list[dict]:
    """Long table over all runs: run, method, K, seed, system, subset, metric, value, n_excerpts.
    workers > 1 scores runs in forked processes (results do not depend on it)."""
    truth_fp = truth.fingerprint()
    jobs = [(run, truth, cache_dir, truth_fp) for run in runs]
    bar = dict(total=len(jobs), desc="score runs", disable=not progress, mininterval=2.0)
    if workers > 1 and len(jobs) > 1:
        from multiprocessing import get_context  # deferred: only the parallel path forks

        with get_context("fork").Pool(workers) as pool:
            parts = list(tqdm(pool.imap(_score_job, jobs), **bar))
    else:
        parts = [_score_job(j) for j in tqdm(jobs, **bar)]
    return [row for part in parts for row in part]


def score_peers(peers_dir: str | Path, truth: Truth, cache_dir: Path | None = CACHE_DIR) -> tuple[list[dict], dict]:
    """Peers (data/peers/<name>/{T,T_timbre,T_noisy}/<id>.mid) scored like h: (long rows, {name: status note}).
    A folder that was never asked for some of the truth's excerpts (the references stage transcribes the runs' subset,
    mapping.eval.max_items) is left out and named in the note (`not_transcribed`), rather than scored as if the peer
    had heard nothing there; a file the peer failed on still counts as an empty transcription."""
    peers_dir = Path(peers_dir)
    rows, notes = [], {}
    if not peers_dir.is_dir():
        return rows, notes
    for d in sorted(p for p in peers_dir.iterdir() if p.is_dir()):
        status = read_json(d / "status.json") if (d / "status.json").is_file() else {}
        notes[d.name] = status
        summaries = {}
        for system in TRANSCRIPTION_SYSTEMS:
            folder = SYSTEMS[system][0]
            pred = d / folder
            if pred.is_dir() and any(pred.glob("*.mid")):
                asked = set(MidiFolder(pred).ids()) | {
                    Path(name).stem for name in ((status.get("pools") or {}).get(folder) or {}).get("failed", {})}
                absent = [i for i in truth.ids if i not in asked]
                if absent:
                    notes[d.name] = status = {**status, "not_transcribed": {
                        **status.get("not_transcribed", {}), folder: len(absent)}}
                    continue
                summaries[system] = summarize(cached_scores(f"peer-{d.name}__{system}", pred, truth, "transcription",
                                                            cache_dir))
        rows += long_rows(d.name, d.name, None, None, summaries)
    return rows, notes


def peer_summary(peer_dir: str | Path, truth: Truth, pools: tuple[str, ...] = ("T", "T_timbre", "T_noisy")) -> list[dict]:
    """Stage references: a peer's transcriptions of each pool's recordings scored on all of `truth`, one row
    per pool and subset (all, then each family); a pool the peer has no folder for (T_noisy before it existed)
    has no rows."""
    cols = ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1", "n")
    out = []
    for pool in pools:
        if not (Path(peer_dir) / pool).is_dir():
            continue
        s = summarize(score_folder(Path(peer_dir) / pool, truth, "transcription"))
        out += [{"recordings": pool, "subset": sub, **{k: s[sub][k] for k in cols}}
                for sub in ("all", *sorted({family(c) for c in truth.collection.values()})) if sub in s]
    return out


__all__ = ["Run", "SYSTEMS", "TRANSCRIPTION_SYSTEMS", "PEERS_DIR", "CACHE_DIR", "SCORES", "discover_runs", "in_sweep", "predicted_ids",
           "read_prediction", "score_source", "score_folder", "source_fingerprint", "folder_fingerprint", "read_rows", "cached_scores", "score_run_folder",
           "saved_rows", "summarize", "nest", "score_run", "long_rows", "collect", "score_peers", "peer_summary"]
