"""The evaluate stage (notebook 10) as functions: which runs and excerpts are scored, the scores, the curves and
their files, the method x K tables, areas, the effective-data multiplier, the peer comparison and
reports/metrics/evaluate.json. The notebook calls these and displays; tests call them directly.

    sel = select(runs_dir, params["mapping"], EvaluationData())    # runs of the sweep, T restricted to what they predicted
    scored = score(sel, cache_dir, workers)                       # long table of runs + peers (saved rows reused)
    points, peers = curves_and_peers(scored, conf, kind)          # per curve key
    write_curve_files(points, peers, out_dir)                     # DVC plots
    metrics = build_metrics(scored.rows, sel.runs, points, peers, scored.peer_notes, section, extra)
    write_headline_metrics(points, section)                      # reports/headline/eval.json (dvc metrics show)
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmm_utils.core.io import atomic_dir, jsonable, write_headline
from lmm_utils.core.paths import HEADLINE_DIR, RUNS_DIR
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.evaluation import curves
from lmm_utils.evaluation.curves import Curve
from lmm_utils.evaluation.scoring import (
    CACHE_DIR,
    PEERS_DIR,
    Run,
    collect,
    discover_runs,
    in_sweep,
    predicted_ids,
    score_peers,
)

# The tables the notebook shows, and the curves their areas are reported for. Not g's DTW-aligned note F1: it is
# ~0.999 for every method (timing removed, the notes are the score's), so it ranks nothing; it stays in the full
# curve grids, evaluate.json's areas and the summary's g table.
# g: per-note velocity and timing correlations (what a score can predict), then the absolute-timing note F1.
HEADLINE = ["h-note_f1-all", "h-frame_f1-all", "h_timbre-note_f1-all", "h_noisy-note_f1-all", "h-note_f1-folk",
            "h-note_f1-chorales", "h-note_f1-polyphony",
            "g-velocity_r-all", "g-log_ioi_r-all", "g-note_f1-all", "g-tempo_log_error-all", "g-velocity_mae-all"]
# The curves `dvc plots show` draws (dvc.yaml's top-level plots, in this order); the stage writes them even empty.
PLOTTED = ["h-note_f1-all", "h-note_f1-chorales", "h_timbre-note_f1-all", "g-note_f1-all"]
HEADLINE_FILE = HEADLINE_DIR / "eval.json"
HEADLINE_CURVE = "h-note_f1-all"  # the curve of the headline multiplier
HEADLINE_K = 16  # the few-pairs point the headline metrics report (this stage's and the summary's), when swept


def headline_k(Ks: Iterable[int]) -> int | None:
    """The K of the headline metrics: HEADLINE_K when the sweep has it, else the sweep's largest K (None: no K).
    Here, not in curves.py, so that changing it re-runs the summary and evaluate stages, not the mapping runs."""
    ks = sorted({int(k) for k in Ks})
    if not ks:
        return None
    return HEADLINE_K if HEADLINE_K in ks else ks[-1]


# --- what is scored ---------------------------------------------------------------------------------------

@dataclass
class Selection:
    runs: list[Run]
    stale: list[Run]  # run folders outside the current sweep, ignored
    truth_all: Truth  # all of T
    truth: Truth  # T on the excerpts the runs predicted

    def describe(self, runs_dir: str | Path = RUNS_DIR) -> str:
        counts = {f: sum(family(self.truth.collection[i]) == f for i in self.truth.ids)
                  for f in sorted({family(c) for c in self.truth.collection.values()})}
        return (f"{len(self.runs)} runs in {runs_dir}; scoring {len(self.truth.ids)} of {len(self.truth_all.ids)} "
                f"T excerpts ({', '.join(f'{f}: {n}' for f, n in counts.items())})")

    def runs_table(self) -> list[dict]:
        by_m: dict[str, list[Run]] = {}
        for r in self.runs:
            by_m.setdefault(r.method, []).append(r)
        return [{"method": m, "K": sorted({r.K for r in rs}), "seeds": sorted({r.seed for r in rs}), "runs": len(rs)}
                for m, rs in sorted(by_m.items())]


def select(runs_dir: str | Path, map_params: dict | None, data: EvaluationData) -> Selection:
    """The runs in runs_dir -- only those of the sweep `map_params` defines when runs_dir is the project's
    data/runs -- and T restricted to the excerpts they predicted (mapping.eval.max_items may pick a subset;
    runs and peers are all scored on it)."""
    runs = discover_runs(runs_dir)
    stale: list[Run] = []
    if Path(runs_dir) == RUNS_DIR or Path(runs_dir) == data.root / RUNS_DIR:
        runs, stale = in_sweep(runs, map_params)
    truth_all = data.truth()
    return Selection(runs, stale, truth_all, truth_all.restrict(predicted_ids(runs)))


@dataclass
class Scored:
    rows: list[dict]  # runs: run, method, K, seed, system, subset, metric, value, n_excerpts
    peer_rows: list[dict]
    peer_notes: dict = field(default_factory=dict)

    @property
    def peer_names(self) -> list[str]:
        return sorted({r["method"] for r in self.peer_rows})

    def failed(self) -> list[tuple[str, str, float]]:
        """(run, system, fraction) with missing or unreadable predictions."""
        return [(r["run"], r["system"], round(r["value"], 3)) for r in self.rows
                if r["metric"] == "failed" and r["subset"] == "all" and r["value"] > 0]


def cache_dir_for(runs_dir: str | Path, out_plots: str | Path) -> Path:
    """data/evaluate/scores for the project's runs; a folder next to the plots for any other runs folder."""
    return CACHE_DIR if Path(runs_dir) == RUNS_DIR else Path(out_plots) / "score_cache"


def score(sel: Selection, cache_dir: Path | None, workers: int = 1, peers_dir: Path = PEERS_DIR,
          progress: bool = True) -> Scored:
    """Every run (its own saved rows when they fit sel.truth, else rescored into the cache) and every peer."""
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)  # a DVC output even when there is nothing to cache
    rows = collect(sel.runs, sel.truth, cache_dir, progress=progress, workers=workers)
    peer_rows, notes = score_peers(peers_dir, sel.truth, cache_dir)
    return Scored(rows, peer_rows, notes)


# --- curves and tables ------------------------------------------------------------------------------------

def system_curves(system: str) -> list[Curve]:
    """The curves of one panel grid: the system's metrics (columns) x subsets (rows)."""
    return [Curve(system, m, s) for s in curves.SUBSETS for m in curves.CURVE_METRICS[system]]


def curves_and_peers(scored: Scored, confidence: float = 0.95, kind: str = "t") -> tuple[dict, dict]:
    """({curve key: points}, {curve key: {peer: value}}) for every curve; peers only on the h curves."""
    every = curves.all_curves()
    points = {c.key: curves.curve_points(scored.rows, c, confidence, kind) for c in every}
    peers = {c.key: {p: curves.peer_value(scored.peer_rows, p, c) for p in scored.peer_names}
             for c in every if c.system != "g"}
    return points, peers


def headline_tables(rows: list[dict], confidence: float = 0.95, kind: str = "t",
                    keys: list[str] = HEADLINE) -> dict[str, dict[str, dict[str, str]]]:
    """{curve label: {method: {"K=k": "mean ± std (n)"}}} for the headline curves that have runs."""
    out = {}
    for key in keys:
        c = Curve.parse(key)
        t = curves.method_k_table(rows, c, confidence, kind)
        if t:
            out[c.label] = {m: {f"K={k}": v for k, v in sorted(ks.items())} for m, ks in sorted(t.items())}
    return out


def auc_table(points: dict[str, list[dict]], keys: list[str] = HEADLINE) -> list[dict]:
    rows = []
    for key in keys:
        for m, v in sorted(curves.auc(points.get(key) or []).items()):
            rows.append({"curve": key, "method": m, **{k: v[k] for k in ("auc", "auc_mean", "K_min", "K_max", "grid")}})
    return rows


def multipliers(points: dict[str, list[dict]], section: dict) -> dict[str, list[dict]]:
    """{curve key: multiplier rows of target vs reference, with their interval over seeds at section["confidence"]}
    for section["multiplier_curves"]."""
    target, reference = section.get("target_method", "lmm"), section.get("reference_method", "supervised")
    confidence = float(section.get("confidence", 0.95))
    paired = resampling(section) == "paired"
    return {key: curves.multiplier(points.get(key, []), target, reference, Curve.parse(key).higher_is_better,
                                   confidence, paired=paired)
            for key in section.get("multiplier_curves", [])}


def resampling(section: dict) -> str:
    """evaluation.multiplier_resampling: "paired" (the default: a seed draws the same pairs for every method, so
    both curves are resampled by the same seeds) or "independent" (each method's seeds apart, as evaluate.json was
    made before 2026-12-04: the draw's spread counted twice, wider intervals)."""
    how = section.get("multiplier_resampling", curves.RESAMPLING[0])
    if how not in curves.RESAMPLING:  # a notebook run by hand skips the stage runner's params checks
        raise ValueError(f"evaluation.multiplier_resampling must be 'paired' or 'independent', got {how!r}")
    return how


def multiplier_display(rows: list[dict], target: str, reference: str) -> list[dict]:
    return [{"K": r["K"], target: r[target], f"{reference} at K": r[f"{reference}_at_K"],
             f"{reference} needs K'": r["equivalent_K_display"], "multiplier [interval]": r["display"],
             "seeds": r["n_seeds"]} for r in rows]


def peer_comparison(scored: Scored, best: dict[str, dict]) -> list[dict]:
    """Each peer next to one run per method (`best`: the evaluate stage passes curves.representative_runs, picked
    without a score): h, h_timbre and h_noisy note / frame F1 on all and each family."""
    cols = [(s, m, sub) for s in ("h", "h_timbre", "h_noisy") for m in ("note_f1", "frame_f1") for sub in curves.SUBSETS]
    out = [{"system": f"{name} (peer)", **{f"{s}:{m}:{sub}": curves.peer_value(scored.peer_rows, name, Curve(s, m, sub))
                                           for s, m, sub in cols}} for name in scored.peer_names]
    for _, b in sorted(best.items()):
        vals = {(r["system"], r["metric"], r["subset"]): r["value"] for r in scored.rows if r["run"] == b["run"]}
        out.append({"system": b["run"], **{f"{s}:{m}:{sub}": vals.get((s, m, sub)) for s, m, sub in cols}})
    return out


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
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for key in dict.fromkeys([*PLOTTED, *points_by_curve]):
            rows = curve_file_rows(points_by_curve.get(key) or [], peers_by_curve.get(key))
            if rows or key in PLOTTED:  # dvc.yaml names the PLOTTED files: they exist, if empty, without runs
                (tmp / f"{key}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return sorted(out_dir.glob("*.json"))


def headline(points_by_curve: dict[str, list[dict]], section: dict) -> dict:
    """The stage's headline metric (`dvc metrics show`): mult_K<K>, the effective-data multiplier of the target
    method against the reference on h's note F1 (all of T) at K = headline_k (16 when swept): a number
    (3 significant digits) when the reference's mean curve reaches the target's value inside its K range, else
    the bound as text ("> 4x", "<= 0.25x"). The point estimate only, read off the mean curves: its interval over
    seeds is in evaluate.json (one number per experiment keeps `dvc exp show` narrow)."""
    target, reference = section.get("target_method", "lmm"), section.get("reference_method", "supervised")
    points = points_by_curve.get(HEADLINE_CURVE) or []
    K = headline_k(p["K"] for p in points if p["method"] == target)
    row = next((r for r in curves.multiplier(points, target, reference) if r["K"] == K), None)
    if row is None:
        return {}
    exact = row["bound"] == "exact" and row["multiplier"] is not None
    return {f"mult_K{K}": float(f"{row['multiplier']:.3g}") if exact else row["point_display"]}


def write_headline_metrics(points_by_curve: dict[str, list[dict]], section: dict,
                           path: str | Path = HEADLINE_FILE) -> dict:
    return write_headline(headline(points_by_curve, section), path)


def multiplier_description(confidence: float, how: str = "paired") -> str:
    seeds = ("one resample of the seeds for target and reference (a seed draws the same pairs for both; rows say "
             "\"resampling\", and fall back to independent when the two ran other seeds)" if how == "paired" else
             "seeds of target and reference resampled independently")
    return (f"K' read off the mean curves (interpolated in log2(K + 1)); interval = {confidence:g} percentile "
            f"bootstrap over seeds ({curves.BOOTSTRAP_RESAMPLES} resamples, seed {curves.BOOTSTRAP_SEED}; {seeds}, "
            "each seed with all its K); n_above_max / n_below_min: "
            "resamples whose K' fell outside the reference's K range (an interval end there is a bound)")


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
        "best_runs": curves.best_runs(table),
        "auc": {key: curves.auc(pts) for key, pts in points_by_curve.items() if pts},
        "multiplier_method": multiplier_description(section.get("confidence", 0.95), resampling(section)),
        "multiplier": {},
        "peers": {},
    }
    for key, rows in multipliers(points_by_curve, section).items():
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
    return jsonable(out)


__all__ = ["HEADLINE", "Selection", "Scored", "select", "cache_dir_for", "score", "system_curves",
           "curves_and_peers", "headline_tables", "auc_table", "multipliers", "multiplier_display",
           "peer_comparison", "curve_file_rows", "write_curve_files", "headline", "write_headline_metrics",
           "band_description", "multiplier_description", "build_metrics", "PLOTTED", "HEADLINE_FILE", "HEADLINE_CURVE", "HEADLINE_K",
           "headline_k"]
