"""Evaluation of the mapping sweep: every run's predictions on T scored against the true motion, then
sample-efficiency curves (quality against K), their areas, and the effective-data multiplier.

    runs = discover_runs("data/runs")                      # <method>-K<K>-s<seed> folders
    truth = load_truth()                                   # T's true performances (evaluation only)
    table = collect(runs, truth, cache_dir)                # one row per run x system x subset x metric
    pts = curve_points(table, Curve("h", "note_f1", "all"))   # mean and band per method and K
    auc(...), multiplier(...)

Scores are recomputed from the MIDI predictions each run wrote (predictions/{h,h_timbre,g}/<id>.mid) with
lmm_utils.evaluation.metrics, so runs, the Basic Pitch peer and anything else are scored by one piece of code. A
missing or unreadable prediction counts as an empty performance (F1 = 0), and is counted. Per-run scores
are cached (keyed on the prediction files' names, sizes and times, the truth and the metric code), so a
re-run after a few new runs scores only those (scoring costs ~10 ms per excerpt and system on one core,
mostly mir_eval; ~5 s for a run predicted on all 194 T excerpts).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmm_utils.evaluation import metrics as metrics_mod
from lmm_utils.data.corpus import CHORALES, FOLK
from lmm_utils.evaluation.curves import (CURVE_METRICS, LOWER_IS_BETTER, METRIC_LABELS, SUBSETS, SYSTEM_LABELS, Curve, all_curves,  # noqa: F401
                     auc, band, best_runs, by_method, curve_points, equivalent_k, method_k_table, multiplier,
                     peer_value)
from lmm_utils.core.io import read_json, write_json
from lmm_utils.core.motion import Performance, read_midi
from lmm_utils.core.paths import DATA, motion_file, scores_file

RUNS_DIR = DATA / "runs"
PEERS_DIR = DATA / "peers"
CACHE_DIR = DATA / "evaluate" / "scores"
RUN_NAME = re.compile(r"^(?P<method>.+?)-K(?P<K>\d+)-s(?P<seed>\d+)$")

# system -> (pool whose audio it reads, scorer). Truth is always T's motion: T_timbre is the same
# performances recorded on another piano.
SYSTEMS = {"h": ("T", "transcription"), "h_timbre": ("T_timbre", "transcription"), "g": ("T", "performance")}


# --- runs and truth ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    name: str
    method: str
    K: int
    seed: int
    path: Path


def parse_run_name(name: str) -> tuple[str, int, int] | None:
    m = RUN_NAME.match(name)
    return (m["method"], int(m["K"]), int(m["seed"])) if m else None


def discover_runs(runs_dir: str | Path = RUNS_DIR) -> list[Run]:
    """Every <method>-K<K>-s<seed> folder (others, e.g. temporary ones, are ignored), sorted."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    out = []
    for d in sorted(runs_dir.iterdir()):
        parsed = parse_run_name(d.name) if d.is_dir() and not d.name.startswith(".") else None
        if parsed:
            out.append(Run(d.name, *parsed, d))
    return sorted(out, key=lambda r: (r.method, r.K, r.seed))


def in_sweep(runs: list[Run], map_params: dict | None) -> tuple[list[Run], list[Run]]:
    """(runs of the sweep params.yaml defines -- mapping.methods x mapping.Ks x mapping.seeds --, the others). Run folders
    of an older sweep stay on disk (DVC does not delete outputs of stages that are gone) and must not mix in."""
    if not map_params or not all(k in map_params for k in ("methods", "Ks", "seeds")):
        return list(runs), []
    want = {(m, int(k), int(s)) for m in map_params["methods"] for k in map_params["Ks"] for s in map_params["seeds"]}
    kept = [r for r in runs if (r.method, r.K, r.seed) in want]
    return kept, [r for r in runs if (r.method, r.K, r.seed) not in want]


def family(collection: str) -> str:
    """folk / chorales / the collection itself (user folders)."""
    if collection in FOLK:
        return "folk"
    return "chorales" if collection == CHORALES else collection


@dataclass
class Truth:
    perf: dict[str, Performance]  # T's true performances by excerpt id
    collection: dict[str, str]

    @property
    def ids(self) -> list[str]:
        return sorted(self.perf)

    def fingerprint(self) -> str:
        blob = json.dumps({i: self.perf[i].to_dict() for i in self.ids}, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:16]


def load_truth(root: str | Path = ".", pool: str = "T") -> Truth:
    """T's ground-truth motion -- evaluation is the only reader of motion."""
    root = Path(root)
    perf = {}
    for line in (root / motion_file(pool)).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            perf[row["id"]] = Performance.from_dict(row["performance"])
    coll = {}
    for line in (root / scores_file(pool)).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            coll[row["id"]] = row["collection"]
    return Truth(perf, {i: coll.get(i, "unknown") for i in perf})


def predicted_ids(runs: list[Run]) -> list[str]:
    """Excerpts any run wrote a prediction for: the mapping stage may score a fixed subset of T
    (mapping.eval.max_items), and evaluation (runs and peers alike) uses the same subset."""
    ids: set[str] = set()
    for r in runs:
        for system in SYSTEMS:
            d = r.path / "predictions" / system
            if d.is_dir():
                ids |= {f.stem for f in d.glob("*.mid")}
    return sorted(ids)


def restrict(truth: Truth, ids: list[str] | None) -> Truth:
    """Truth on `ids` (those T has); None or empty: unchanged."""
    if not ids:
        return truth
    keep = [i for i in ids if i in truth.perf]
    return Truth({i: truth.perf[i] for i in keep}, {i: truth.collection[i] for i in keep})


# --- scoring ----------------------------------------------------------------------------------------------

def _scorer(kind: str):
    return metrics_mod.transcription_scores if kind == "transcription" else metrics_mod.performance_scores


def read_prediction(path: Path) -> tuple[Performance, str]:
    """(performance, status): status is ok / missing / unreadable; the last two give an empty one."""
    if not path.is_file():
        return Performance(notes=[]), "missing"
    try:
        return read_midi(path), "ok"
    except ValueError:
        return Performance(notes=[]), "unreadable"


def score_folder(pred_dir: str | Path, truth: Truth, kind: str, progress: bool = False,
                 desc: str = "") -> list[dict]:
    """One row per T excerpt: id, collection, family, status, and every metric of `kind`."""
    pred_dir = Path(pred_dir)
    scorer = _scorer(kind)
    rows = []
    for i in tqdm(truth.ids, desc=desc or pred_dir.name, disable=not progress, mininterval=2.0, leave=False):
        est, status = read_prediction(pred_dir / f"{i}.mid")
        row = {"id": i, "collection": truth.collection[i], "family": family(truth.collection[i]), "status": status}
        row.update(scorer(truth.perf[i], est))
        rows.append(row)
    return rows


def _metric_code_hash() -> str:
    # Scores change when the metric code changes; the cache must notice.
    return hashlib.sha1(inspect.getsource(metrics_mod).encode()).hexdigest()[:12]


def folder_fingerprint(pred_dir: Path, truth_fp: str) -> str:
    files = sorted(pred_dir.glob("*.mid")) if pred_dir.is_dir() else []
    parts = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha1("|".join([truth_fp, _metric_code_hash(), *parts]).encode()).hexdigest()[:16]


def cached_scores(name: str, pred_dir: Path, truth: Truth, kind: str, cache_dir: Path | None,
                  truth_fp: str | None = None, progress: bool = False) -> list[dict]:
    """score_folder, reusing cache_dir/<name>.json when the prediction files and code are unchanged."""
    fp = folder_fingerprint(pred_dir, truth_fp or truth.fingerprint())
    cache = cache_dir / f"{name}.json" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        try:
            saved = read_json(cache)
            if saved.get("fingerprint") == fp:
                return saved["rows"]
        except (json.JSONDecodeError, KeyError):
            pass  # a torn cache file is simply recomputed
    rows = score_folder(pred_dir, truth, kind, progress, desc=name)
    if cache is not None:
        write_json({"fingerprint": fp, "rows": rows}, cache)
    return rows


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Means over excerpts: all, per family (folk / chorales) and per collection, each with n and the
    fraction of predictions that were missing or unreadable."""
    for r in rows:
        r["failed"] = float(r.get("status", "ok") != "ok")
    by_family = metrics_mod.aggregate(rows, "family")
    by_coll = metrics_mod.aggregate(rows, "collection")
    out = dict(by_family)
    for k, v in by_coll.items():
        out.setdefault(k, v)
    return out


def score_run(run: Run, truth: Truth, cache_dir: Path | None = CACHE_DIR, progress: bool = False,
              truth_fp: str | None = None) -> dict[str, dict]:
    """{system: summary} for each predictions/<system> folder the run has."""
    out = {}
    for system, (_, kind) in SYSTEMS.items():
        pred_dir = run.path / "predictions" / system
        if pred_dir.is_dir():
            rows = cached_scores(f"{run.name}__{system}", pred_dir, truth, kind, cache_dir, truth_fp, progress)
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
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            parts = list(tqdm(pool.imap(_score_job, jobs), **bar))
    else:
        parts = [_score_job(j) for j in tqdm(jobs, **bar)]
    return [row for part in parts for row in part]


def score_peers(peers_dir: str | Path, truth: Truth, cache_dir: Path | None = CACHE_DIR) -> tuple[list[dict], dict]:
    """Peers (data/peers/<name>/{T,T_timbre}/<id>.mid) scored like h: (long rows, {name: status note})."""
    peers_dir = Path(peers_dir)
    rows, notes = [], {}
    if not peers_dir.is_dir():
        return rows, notes
    for d in sorted(p for p in peers_dir.iterdir() if p.is_dir()):
        status = read_json(d / "status.json") if (d / "status.json").is_file() else {}
        notes[d.name] = status
        summaries = {}
        for system in ("h", "h_timbre"):
            pred = d / SYSTEMS[system][0]
            if pred.is_dir() and any(pred.glob("*.mid")):
                summaries[system] = summarize(cached_scores(f"peer-{d.name}__{system}", pred, truth, "transcription",
                                                            cache_dir))
        rows += long_rows(d.name, d.name, None, None, summaries)
    return rows, notes


# --- LM^M ---------------------------------------------------------------------------------------------------

def find_lm_m(run_dir: Path) -> Path | None:
    """A LanguageModel folder (lm.pt + info.json) over motion tokens saved anywhere inside a run."""
    for ck in sorted(Path(run_dir).rglob("lm.pt")):
        info = ck.parent / "info.json"
        try:
            modality = json.loads(info.read_text()).get("tokenizer", {}).get("modality") if info.is_file() else None
        except json.JSONDecodeError:
            modality = None
        if modality == "M":
            return ck.parent
    return None


def lm_m_bits(runs: list[Run], truth: Truth, progress: bool = True) -> dict:
    """Bits per token of each run's LM^M on T's true motion (each LM with its own tokenizer)."""
    from lmm_utils.lm.model import LanguageModel

    found = [(r, find_lm_m(r.path)) for r in runs]
    found = [(r, d) for r, d in found if d is not None]
    if not found:
        return {"note": "no run saved an LM^M (a LanguageModel folder over motion tokens inside data/runs/<run>/)"}
    out = {}
    for r, d in tqdm(found, desc="LM^M bits", disable=not progress, mininterval=2.0):
        lm = LanguageModel.load(d)
        res = lm.bits_per_token([lm.tokenizer.encode(truth.perf[i]) for i in truth.ids])
        n_notes = sum(len(truth.perf[i].notes) for i in truth.ids)
        out[r.name] = {"method": r.method, "K": r.K, "seed": r.seed, "path": str(d), **res,
                       "bits_per_note": res["bits_per_token"] * res["n_tokens"] / max(n_notes, 1),
                       "tokens": lm.tokenizer.config()}
    return {"runs": out}


# --- the stage's outputs ----------------------------------------------------------------------------------

def curve_file_rows(points: list[dict], peers: dict[str, float] | None = None) -> list[dict]:
    """Rows of one DVC plot file: one line per method (x = K, y = mean, band lo..hi); a peer is a flat
    line over the K range (lo = hi = its value)."""
    rows = [{"method": p["method"], "K": p["K"], "mean": p["mean"], "lo": p["lo"], "hi": p["hi"], "n": p["n"],
             "band": p["band"]} for p in points if np.isfinite(p["mean"])]
    ks = sorted({p["K"] for p in points})
    for name, value in (peers or {}).items():
        if value is not None and ks:
            rows += [{"method": f"{name} (peer)", "K": k, "mean": value, "lo": value, "hi": value, "n": 1,
                      "band": "peer"} for k in (ks[0], ks[-1])]
    return rows


def write_curve_files(points_by_curve: dict[str, list[dict]], peers_by_curve: dict[str, dict[str, float]],
                      out_dir: str | Path) -> list[Path]:
    """One JSON file per curve (DVC plots with the sample_efficiency template), written atomically."""
    from lmm_utils.core.io import atomic_dir

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for key, points in points_by_curve.items():
            rows = curve_file_rows(points, peers_by_curve.get(key))
            if rows:
                (tmp / f"{key}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return sorted(out_dir.glob("*.json"))


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy scalars -> float (dvc metrics and json both choke on NaN)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def band_description(confidence: float, kind: str) -> str:
    q = "Student t(n-1)" if kind == "t" else "normal"
    return (f"mean over seeds; band = mean +- q * std / sqrt(n) with q the {q} quantile at {confidence:g} "
            "for n >= 3 seeds, the min-max range for n < 3")


def build_metrics(table: list[dict], runs: list[Run], points_by_curve: dict[str, list[dict]],
                  peers_by_curve: dict[str, dict[str, float]], peer_notes: dict, section: dict,
                  extra: dict | None = None) -> dict:
    """reports/metrics/evaluate.json: runs, best runs, AUC per curve and method, the effective-data
    multiplier, the peer values; `extra` adds LM^M bits and LM alignment."""
    target, reference = section.get("target_method", "lmm"), section.get("reference_method", "supervised")
    methods: dict[str, dict] = {}
    for r in runs:
        m = methods.setdefault(r.method, {"K": set(), "seeds": set(), "n_runs": 0})
        m["K"].add(r.K)
        m["seeds"].add(r.seed)
        m["n_runs"] += 1
    out = {
        "band": band_description(section.get("confidence", 0.95), section.get("band", "t")),
        "runs": {"n": len(runs), "methods": {k: {"K": sorted(v["K"]), "seeds": sorted(v["seeds"]), "n_runs": v["n_runs"]}
                                             for k, v in methods.items()}},
        "best_runs": best_runs(table),
        "auc": {key: auc(pts) for key, pts in points_by_curve.items() if pts},
        "multiplier": {},
        "peers": {},
    }
    for key in section.get("multiplier_curves", []):
        pts = points_by_curve.get(key, [])
        rows = multiplier(pts, target, reference, Curve.parse(key).higher_is_better)
        out["multiplier"][key] = ({f"K={r['K']}": r for r in rows} if rows else
                                  {"note": f"needs runs of both {target} and {reference} with {key.split('-')[0]} predictions"})
    for name, status in peer_notes.items():
        vals = {k: v[name] for k, v in peers_by_curve.items() if v.get(name) is not None}
        out["peers"][name] = {"available": bool(status.get("available", bool(vals))), **vals}
        if status.get("note"):
            out["peers"][name]["note"] = status["note"]
    if not peer_notes:
        out["peers"]["note"] = "no peer outputs (data/peers missing): run the `peers` stage"
    out.update(extra or {})
    return _clean(out)


__all__ = [
    "Run", "Truth", "Curve", "SYSTEMS", "CURVE_METRICS", "SUBSETS", "RUNS_DIR", "PEERS_DIR", "CACHE_DIR",
    "discover_runs", "in_sweep", "parse_run_name", "load_truth", "predicted_ids", "restrict", "score_folder", "score_run", "summarize", "collect",
    "score_peers", "all_curves", "band", "curve_points", "peer_value", "auc", "equivalent_k", "multiplier",
    "best_runs", "method_k_table", "family", "read_prediction", "write_curve_files", "build_metrics", "curve_file_rows",
    "find_lm_m", "lm_m_bits",
]
