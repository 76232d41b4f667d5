"""The summary stage (notebook 08): method x K, mean +- std over seeds, of the sweep's runs.

    summary, md, missing = write_summary(params["mapping"])   # reports/metrics/summary.json + reports/summary.md
                                                              # + reports/headline/map.json (dvc metrics show)

Each run's scores are read from its per-excerpt rows (data/runs/<run>/scores/<system>.json, written by the map
stage with lmm_utils.evaluation.scoring) and summarised with the same code as its metrics.json and as the
evaluate stage, so the three never disagree. metrics.json supplies the rest (training time, diagnostics).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lmm_utils.core.io import atomic_path, jsonable, write_headline, write_json
from lmm_utils.core.paths import HEADLINE_DIR, METRICS_DIR, REPORTS, RUNS_DIR, run_name, run_path
from lmm_utils.evaluation.report import headline_k
from lmm_utils.evaluation.scoring import SCORES, nest, saved_rows
from lmm_utils.evaluation.scoring import summarize as summarize_rows
from lmm_utils.mapping.draws import sweep

# (label, pool, subset, metric); lower is better for onset dev ms, tempo log err and velocity MAE
H_COLUMNS = [("note F1", "T", "all", "note_f1"), ("note+off F1", "T", "all", "note_offset_f1"),
             ("note+off+vel F1", "T", "all", "note_offset_velocity_f1"), ("frame F1", "T", "all", "frame_f1"),
             ("note F1 folk", "T", "folk", "note_f1"), ("note F1 chorales", "T", "chorales", "note_f1"),
             ("note F1 polyphony", "T", "polyphony", "note_f1"),
             ("T_timbre note F1", "T_timbre", "all", "note_f1"), ("T_timbre frame F1", "T_timbre", "all", "frame_f1"),
             ("T_noisy note F1", "T_noisy", "all", "note_f1"), ("T_noisy frame F1", "T_noisy", "all", "frame_f1")]
G_COLUMNS = [("velocity r", "T", "all", "velocity_r"), ("log-IOI r", "T", "all", "log_ioi_r"),
             ("articulation r", "T", "all", "articulation_r"), ("onset dev ms", "T", "all", "onset_dev_ms"),
             ("note F1", "T", "all", "note_f1"), ("aligned F1", "T", "all", "aligned_note_f1"),
             ("tempo log err", "T", "all", "tempo_log_error"), ("velocity MAE", "T", "all", "velocity_mae"),
             ("pedal F1", "T", "all", "pedal_f1")]


def read_run(run_dir: str | Path) -> dict | None:
    """A finished run as the summary sees it: metrics.json with its h / g blocks recomputed from the run's
    saved rows. None when the run has no metrics.json or no scores."""
    run_dir = Path(run_dir)
    f = run_dir / "metrics.json"
    rows = saved_rows(run_dir) if f.is_file() else {}
    if not rows:
        return None
    metrics = json.loads(f.read_text())
    metrics.update(nest({system: summarize_rows(r) for system, r in rows.items()}))
    return metrics


def collect(map_params: dict, root: str | Path = ".", runs_dir: str | Path | None = None) -> list[dict]:
    """Every run of the sweep that exists (missing runs are listed by missing_runs)."""
    base = Path(runs_dir or Path(root) / RUNS_DIR)
    runs = (read_run(run_path(base, m, k, s)) for m, k, s in sweep(map_params))
    return [r for r in runs if r is not None]


def missing_runs(map_params: dict, root: str | Path = ".", runs_dir: str | Path | None = None) -> list[str]:
    """Runs of the sweep without metrics.json or scores (those collect leaves out)."""
    base = Path(runs_dir or Path(root) / RUNS_DIR)
    return [run_name(m, k, s) for m, k, s in sweep(map_params) if not _finished(run_path(base, m, k, s))]


def _finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file() and any((run_dir / SCORES).glob("*.json"))


def _get(metrics: dict, model: str, pool: str, group: str, key: str):
    try:
        v = metrics[model][pool][group][key]
    except (KeyError, TypeError):
        return None
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def summarize(runs: list[dict]) -> dict:
    """method x K table, mean +- std over seeds (sample std; n = seeds found), for h and g.

    -> {"rows": [{"method", "K", "n_seeds", "h": {label: {"mean", "std"}}, "g": {...}, "train_seconds"}], ...}
    """
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["method"], int(r["K"])), []).append(r)
    order = list(dict.fromkeys(r["method"] for r in runs))
    rows = []
    for (m, k), rs in sorted(groups.items(), key=lambda x: (order.index(x[0][0]), x[0][1])):
        row: dict = {"method": m, "K": k, "n_seeds": len(rs), "seeds": sorted(r["seed"] for r in rs)}
        for model, cols in (("h", H_COLUMNS), ("g", G_COLUMNS)):
            row[model] = {}
            for label, pool, group, key in cols:
                vals = [v for v in (_get(r, model, pool, group, key) for r in rs) if v is not None]
                row[model][label] = {"mean": float(np.mean(vals)) if vals else None,
                                     "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None, "n": len(vals)}
        secs = [r["train"]["seconds"] for r in rs if "train" in r]
        row["train_seconds"] = float(np.mean(secs)) if secs else None
        pseudo = [r["diagnostic"]["pseudo_motion"]["note_f1"] for r in rs if "pseudo_motion" in r.get("diagnostic", {})]
        row["pseudo_motion_note_f1"] = float(np.mean(pseudo)) if pseudo else None
        sel = [r["diagnostic"]["lmM_selection"] for r in rs if "lmM_selection" in r.get("diagnostic", {})]
        if sel:  # lmm's label cleaning: each criterion's rank correlation with the labels' true F1, mean over seeds
            keys = [k for k in sel[0] if k.startswith("spearman") or k.endswith("note_f1")]
            row["label_selection"] = {k: _nanmean([s.get(k) for s in sel]) for k in keys}
        rows.append(row)
    return {"rows": rows, "n_runs": len(runs)}


def _nanmean(vals: list) -> float | None:
    v = [float(x) for x in vals if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


def _cell(c: dict, digits: int = 3) -> str:
    if c["mean"] is None:
        return "–"
    s = f"{c['mean']:.{digits}f}"
    return s + (f" ± {c['std']:.{digits}f}" if c["std"] is not None else "")


def markdown(summary: dict, missing: list[str] | None = None) -> str:
    """The summary as two markdown tables (h: A -> M, g: V -> M)."""
    out = []
    for model, cols, title in (("h", H_COLUMNS, "h: A → M (transcription of T; T_timbre = unheard piano; T_noisy = reverb and noise)"),
                               ("g", G_COLUMNS, "g: V → M (performance of T's scores)")):
        labels = [c[0] for c in cols]
        out.append(f"### {title}\n")
        out.append("| method | K | seeds | " + " | ".join(labels) + " |")
        out.append("|---|---:|---:|" + "---:|" * len(labels))
        for row in summary["rows"]:
            out.append(f"| {row['method']} | {row['K']} | {row['n_seeds']} | "
                       + " | ".join(_cell(row[model][lab]) for lab in labels) + " |")
        out.append("")
    out.append("mean ± sample std over seeds. g, per note on the notes matched after DTW alignment: velocity r and "
               "log-IOI r = Pearson r with the true performance (0 for a constant estimate), articulation r = of log "
               "durations, onset dev = RMS onset deviation after a global tempo fit (ms); tempo log err = |ln(performed "
               "span / true span)|, velocity MAE in MIDI units (lower is better for these three); aligned F1 = note F1 "
               "after DTW-aligning onsets (timing-invariant).")
    if missing:
        out.append(f"\nMissing runs ({len(missing)}): " + ", ".join(missing))
    return "\n".join(out) + "\n"


def summary_metrics(summary: dict) -> dict:
    """Compact form for reports/metrics/summary.json (a plain output; the headline is `headline`): {"<method>-K<K>": {"h": {label: mean},
    "g": {...}, "h_std": {...}, "g_std": {...}, "n_seeds"}}."""
    out = {}
    for row in summary["rows"]:
        key = f"{row['method']}-K{row['K']}"
        out[key] = {"n_seeds": row["n_seeds"]}
        for model in ("h", "g"):
            out[key][model] = {lab: c["mean"] for lab, c in row[model].items()}
            out[key][f"{model}_std"] = {lab: c["std"] for lab, c in row[model].items()}
        if row.get("label_selection"):
            out[key]["label_selection"] = row["label_selection"]
    return jsonable(out)


HEADLINE_FILE = HEADLINE_DIR / "map.json"
# The pretrained LMs' gains, read off the ablations: (model, column) the term's switch is judged on.
ABLATION_GAINS = {"lmA": ("h", "note F1"), "lmV": ("g", "note F1")}


def headline(summary: dict, Ks, reference: str = "supervised", target: str = "lmm") -> dict:
    """The sweep's headline metrics (`dvc metrics show`), at K = evaluation.report.headline_k(Ks) (16 when swept):
    h note F1 on T (mean over seeds) of the best method (ablations aside) and its name, of `reference`, and --
    when the sweep has the ablations -- the pretrained LMs' gains: gain_lmA = h note F1 of `target` minus that
    of `target`-no_lmA, gain_lmV = the same on g's note F1 with `target`-no_lmV."""
    K = headline_k(Ks)
    cells = {row["method"]: row for row in summary["rows"] if row["K"] == K}

    def mean(method: str, model: str = "h", label: str = "note F1") -> float | None:
        row = cells.get(method)
        return row[model][label]["mean"] if row else None

    out: dict = {}
    scored = [(v, m) for m in cells if "-no_" not in m and (v := mean(m)) is not None]
    if scored:
        value, method = max(scored)
        out[f"h_f1_K{K}_best"], out[f"best_K{K}"] = value, method
    out[f"h_f1_K{K}_{'sup' if reference == 'supervised' else reference}"] = mean(reference)
    for term, (model, label) in ABLATION_GAINS.items():
        full, ablated = mean(target, model, label), mean(f"{target}-no_{term}", model, label)
        if full is not None and ablated is not None:
            out[f"gain_{term}"] = full - ablated
    return out


def write_summary(map_params: dict, root: str | Path = ".", runs_dir: str | Path | None = None,
                  metrics_file: str | Path = METRICS_DIR / "summary.json",
                  markdown_file: str | Path = REPORTS / "summary.md",
                  headline_file: str | Path = HEADLINE_FILE) -> tuple[dict, str, list[str]]:
    """The summary stage: collect the sweep's runs, tabulate them, write summary.json, summary.md and the headline
    (paths relative to root). -> (summary, markdown, missing runs)."""
    root = Path(root)
    runs = collect(map_params, root, runs_dir)
    missing = missing_runs(map_params, root, runs_dir)
    summary = summarize(runs)
    md = markdown(summary, missing)
    write_json(summary_metrics(summary), root / metrics_file)
    write_headline(headline(summary, map_params.get("Ks") or []), root / headline_file)
    with atomic_path(root / markdown_file) as tmp:
        tmp.write_text("# Mapping sweep: summary\n\n" + md)
    return summary, md, missing


__all__ = ["H_COLUMNS", "G_COLUMNS", "read_run", "collect", "missing_runs", "summarize", "markdown",
           "summary_metrics", "headline", "write_summary", "HEADLINE_FILE", "ABLATION_GAINS"]
