"""The mapping sweep: one run = (method, K, seed) -> h and g, evaluated on T and T_timbre.

    from lmm_utils.mapping import run as mapping
    metrics = mapping.run("lmm", K=4, seed=0, map_params=params["mapping"], features=params["features"])
    table = mapping.summarize(mapping.collect(params["mapping"]))

A run has two parts that never mix:

  train_run   draws the run's K pairs from P (seeded and *nested*: the draw for K=4 starts with the one for
              K=1), builds `TrainingData().restrict_pairs(draw)` -- the only door training code gets -- loads
              the frozen synthesizer S, and runs the method (lmm_utils.methods). Nothing of T, and no motion.
  evaluate    reads T's scores, recordings (T and T_timbre) and ground-truth motion *by path*, transcribes and
              performs with h and g, and scores them with lmm_utils.evaluation.metrics (overall and per family: folk vs
              bachChorales). Diagnostics, clearly labelled: how good the run's pseudo-motion was (against P's
              ground truth, for the K pairs) and, for lmm, whether LM^M picked better self-training labels
              (against U_A's ground truth). They are computed here, after training, and never fed back.

Outputs (written atomically): data/runs/<method>-K<K>-s<seed>/{h.pt, g.pt, metrics.json, draw.json,
predictions/h/<id>.mid, predictions/h_timbre/<id>.mid, predictions/g/<id>.mid[, lmM/]} and a flat copy of the
numbers in reports/metrics/map/<run>.json (for `dvc metrics`).
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from lmm_utils.core import paths
from lmm_utils.data.excerpts import stable_seed
from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.io import atomic_dir, read_jsonl, write_json
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods import check_method, run_method
from lmm_utils.training.distributed import default_device

RUNS_DIR = paths.DATA / "runs"
RUN_METRICS_DIR = paths.METRICS_DIR / "map"
FOLK = ("essenFolksong", "oneills1850", "ryansMammoth", "airdsAirs")


def run_name(method: str, K: int, seed: int) -> str:
    return f"{method}-K{int(K)}-s{int(seed)}"


def family(collection: str) -> str:
    return "folk" if collection in FOLK else collection


# ---------------------------------------------------------------------------------------------------------
# Pair draws
# ---------------------------------------------------------------------------------------------------------

def pair_pool(root: str | Path = ".") -> list[str]:
    """P's excerpts usable as pairs (a score with notes and a recording), sorted."""
    data = TrainingData(Path(root))
    with_audio = set(data.audio_ids("P"))
    return sorted(s.id for s in data.scores("P") if s.notes and s.id in with_audio)


def draw_pairs(pool: list[str], K: int, seed: int) -> list[str]:
    """The K pairs of seed `seed`: the first K of one seeded permutation of the pool, so draws are nested
    (K=1's pair is the first of K=4's) and do not depend on which Ks are in the sweep."""
    pool = sorted(pool)
    if K > len(pool):
        raise ValueError(f"K={K} pairs asked for, but the pair pool P holds {len(pool)} usable excerpts")
    if K < 0:
        raise ValueError(f"K must be >= 0, got {K}")
    order = np.random.default_rng(stable_seed("pairs", seed)).permutation(len(pool))
    return [pool[i] for i in order[:K]]


# ---------------------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------------------

def run_params(map_params: dict, seed: int) -> dict:
    """The map section as a method sees it: method.seed = the run's seed, method.device = map.device."""
    p = copy.deepcopy(map_params or {})
    p.setdefault("method", {})
    p["method"]["seed"] = int(seed)
    p["method"].setdefault("device", p.get("device", "auto"))
    return p


class DeviceSynth:
    """S on its device, callable with rolls on any device (alignment and synth-pairs build their rolls on the
    CPU; the training loops of cycle / lmm on the run's device): inputs go to S's device, the log-mel comes
    back on the inputs' device. Gradients flow through the transfers."""

    def __init__(self, synth):
        self.synth = synth

    def __call__(self, onset, velocity, sustain):
        dev = next(self.synth.parameters()).device
        out = self.synth(onset.to(dev), velocity.to(dev), sustain.to(dev))
        return out.to(onset.device)


def load_frozen_synth(path: str | Path, device: str = "cpu"):
    """S from its checkpoint (models/synth.py), frozen: methods train through it, never on it."""
    from lmm_utils.models.synth import load_synth

    s = load_synth(path, map_location=device)
    for p in s.parameters():
        p.requires_grad_(False)
    return s.eval()


# ---------------------------------------------------------------------------------------------------------
# Training part (TrainingData only)
# ---------------------------------------------------------------------------------------------------------

def train_run(method: str, K: int, seed: int, map_params: dict, features: dict | None = None,
              root: str | Path = ".", progress: bool = False, synth=None) -> dict:
    """Draw the pairs, train the method. Reads data only through TrainingData (restricted to the draw).

    -> the method's result as a dict (methods.base.MethodResult.as_dict: "h", "g", "pseudo", "info") with the
    run's "method", "K", "seed", "draw", "train_seconds" and "device"."""
    check_method(method)
    feat = FeatureConfig.from_params(features or {})
    p = run_params(map_params, seed)
    torch.set_num_threads(int(p["method"].get("threads", 1)))
    draw = draw_pairs(pair_pool(root), K, seed)
    data = TrainingData(Path(root)).restrict_pairs(draw)
    device = default_device(p["method"]["device"])
    if synth is None:
        synth = load_frozen_synth(Path(root) / p.get("synth", "data/synth/S.pt"), str(device))
    if hasattr(synth, "to"):
        synth = DeviceSynth(synth.to(device))
    t0 = time.perf_counter()
    result = run_method(method, data, synth, p, feat, progress)
    return {**result.as_dict(), "method": method, "K": int(K), "seed": int(seed), "draw": draw,
            "train_seconds": time.perf_counter() - t0, "device": str(device)}


# ---------------------------------------------------------------------------------------------------------
# Evaluation part (reads T and ground-truth motion by path; never called by training code)
# ---------------------------------------------------------------------------------------------------------

def _read_scores(pool: str, root: Path) -> dict:
    from lmm_utils.core.score import ScoreExcerpt

    return {r["id"]: ScoreExcerpt.from_dict(r) for r in read_jsonl(root / paths.scores_file(pool))}


def _read_motion(pool: str, root: Path) -> dict:
    from lmm_utils.core.motion import Performance

    return {r["id"]: Performance.from_dict(r["performance"]) for r in read_jsonl(root / paths.motion_file(pool))}


def _read_logmel(pool: str, excerpt_id: str, feat: FeatureConfig, root: Path) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(root / paths.audio_path(pool, excerpt_id), dtype="float32")
    if sr != feat.sample_rate:
        raise ValueError(f"{pool}/{excerpt_id}: {sr} Hz, features expect {feat.sample_rate} Hz")
    return log_mel(audio.mean(1) if audio.ndim == 2 else audio, feat)


def eval_ids(root: str | Path = ".", max_items: int | None = None) -> list[str]:
    """T's excerpts evaluated: every one with notes and both recordings; with max_items, a fixed subset
    (the first max_items in a seed-independent hash order, so every run and method sees the same ones)."""
    root = Path(root)
    scores = _read_scores("T", root)
    ids = [i for i, s in scores.items() if s.notes and (root / paths.audio_path("T", i)).is_file()
           and (root / paths.audio_path("T_timbre", i)).is_file()]
    ids.sort(key=lambda i: stable_seed("eval", i))
    return sorted(ids[:max_items] if max_items else ids)


def _spearman(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def evaluate(result: dict, eval_params: dict | None = None, features: dict | None = None, root: str | Path = ".",
             progress: bool = False) -> tuple[dict, dict]:
    """Score a trained run on T (h on T and T_timbre recordings, g on T scores) -> (metrics, predictions).

    predictions: {"h": {id: Performance}, "h_timbre": {...}, "g": {...}}. Reads ground truth by path.
    """
    from tqdm import tqdm

    from lmm_utils.methods.alignment import alignment_accuracy
    from lmm_utils.evaluation.metrics import aggregate, performance_scores, transcription_scores

    root = Path(root)
    ep = eval_params or {}
    feat = FeatureConfig.from_params(features or {})
    t0 = time.perf_counter()
    ids = eval_ids(root, ep.get("max_items"))
    scores = _read_scores("T", root)
    truth = _read_motion("T", root)
    h, g = result["h"], result["g"]
    preds: dict = {"h": {}, "h_timbre": {}, "g": {}}
    rows: dict = {"h": [], "h_timbre": [], "g": []}
    for i in tqdm(ids, desc="evaluate h", disable=not progress, mininterval=2.0):
        fam = family(scores[i].collection)
        for key, pool in (("h", "T"), ("h_timbre", "T_timbre")):
            est = h.transcribe(_read_logmel(pool, i, feat, root))
            preds[key][i] = est
            rows[key].append({"id": i, "family": fam, **transcription_scores(truth[i], est)})
    for i, est in zip(ids, g.perform([scores[i] for i in ids])):
        preds["g"][i] = est
        rows["g"].append({"id": i, "family": family(scores[i].collection), **performance_scores(truth[i], est)})
    metrics: dict = {
        "h": {"T": aggregate(rows["h"], "family"), "T_timbre": aggregate(rows["h_timbre"], "family")},
        "g": {"T": aggregate(rows["g"], "family")},
    }
    # -- diagnostics (ground truth of P and U_A, read here only) -----------------------------------------
    diag: dict = {"note": "diagnostics: computed after training against ground-truth motion (P: the run's "
                          "pairs; U_A: lmm's self-training candidates); no training code reads them"}
    pseudo = result.get("pseudo") or {}
    if pseudo:
        truth_p = _read_motion("P", root)
        diag["pseudo_motion"] = aggregate([alignment_accuracy(p, truth_p[i]) for i, p in pseudo.items()])["all"]
    st = (result.get("info") or {}).get("selftrain")
    if st:
        truth_u = _read_motion("U_A", root)
        f1 = [transcription_scores(truth_u[i], st["decodes"][i])["note_f1"] for i in st["ids"]]
        kept = set(st["kept"])
        k_f1 = [f for i, f in zip(st["ids"], f1) if i in kept]
        d_f1 = [f for i, f in zip(st["ids"], f1) if i not in kept]
        diag["lmM_selection"] = {
            "kept_note_f1": float(np.mean(k_f1)) if k_f1 else float("nan"),
            "dropped_note_f1": float(np.mean(d_f1)) if d_f1 else float("nan"),
            "spearman_score_vs_f1": _spearman(st["score"], f1), "n_kept": len(k_f1), "n": len(f1)}
    metrics["diagnostic"] = diag
    metrics["eval"] = {"n_T": len(ids), "max_items": ep.get("max_items"), "seconds": time.perf_counter() - t0}
    return metrics, preds


# ---------------------------------------------------------------------------------------------------------
# One run, end to end
# ---------------------------------------------------------------------------------------------------------

def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    return str(x)


def _train_summary(result: dict) -> dict:
    info = result.get("info") or {}
    out = {"seconds": result["train_seconds"], "device": result["device"], "terms": info.get("terms", {})}
    for k in ("n_pairs", "n_unpaired", "n_unpaired_audio", "n_unpaired_scores", "n_synth", "g_choice"):
        if k in info:
            out[k] = info[k]
    for k in ("loss_h", "loss_g"):
        if info.get(k):
            out[f"final_{k}"] = float(np.mean(info[k][-max(1, len(info[k]) // 10):]))
    for k in ("hist_h", "hist_g"):
        if info.get(k) and info[k].get("train_loss"):
            out[f"final_{k.replace('hist', 'loss')}"] = float(info[k]["train_loss"][-1])
    return out


def flat_metrics(metrics: dict) -> dict:
    """The numbers DVC shows: h / g scores overall and per family, timings."""
    keep_h = ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1", "note_p", "note_r")
    keep_g = ("note_f1", "aligned_note_f1", "tempo_log_error", "velocity_mae", "ioi_ratio")
    out: dict = {"h": {}, "g": {}}
    for pool, groups in metrics["h"].items():
        out["h"][pool] = {grp: {k: v.get(k) for k in keep_h} for grp, v in groups.items()}
    for pool, groups in metrics["g"].items():
        out["g"][pool] = {grp: {k: v.get(k) for k in keep_g} for grp, v in groups.items()}
    if "pseudo_motion" in metrics["diagnostic"]:
        out["diagnostic_pseudo_note_f1"] = metrics["diagnostic"]["pseudo_motion"].get("note_f1")
    out["train_seconds"] = metrics["train"]["seconds"]
    out["eval_seconds"] = metrics["eval"]["seconds"]
    return _jsonable(out)


def save_run(result: dict, metrics: dict, preds: dict, out_dir: str | Path) -> Path:
    """Write the run folder atomically (a half-written run never looks finished)."""
    from lmm_utils.methods.checkpoints import save_g, save_h
    from lmm_utils.core.motion import write_midi

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        save_h(result["h"], tmp / "h.pt", {"run": out_dir.name})
        save_g(result["g"], tmp / "g.pt", {"run": out_dir.name})
        (tmp / "draw.json").write_text(json.dumps({"K": result["K"], "seed": result["seed"], "pairs": result["draw"]},
                                                  indent=1) + "\n")
        for key, perfs in preds.items():
            (tmp / "predictions" / key).mkdir(parents=True, exist_ok=True)
            for i, perf in perfs.items():
                write_midi(perf, tmp / "predictions" / key / f"{i}.mid")
        lmM = (result.get("info") or {}).get("lmM")
        if lmM is not None:
            lmM.save(tmp / "lmM")
        (tmp / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=1) + "\n")
    return out_dir


def run(method: str, K: int, seed: int, map_params: dict, features: dict | None = None, root: str | Path = ".",
        progress: bool = False, runs_dir: str | Path | None = None, metrics_dir: str | Path | None = None) -> dict:
    """Train, evaluate and save one run; returns its metrics."""
    root = Path(root)
    result = train_run(method, K, seed, map_params, features, root, progress)
    metrics, preds = evaluate(result, (map_params or {}).get("eval"), features, root, progress)
    metrics = {"run": run_name(method, K, seed), "method": method, "K": int(K), "seed": int(seed),
               "pairs": result["draw"], "train": _train_summary(result), **metrics}
    name = run_name(method, K, seed)
    save_run(result, metrics, preds, Path(runs_dir or root / RUNS_DIR) / name)
    write_json(flat_metrics(metrics), Path(metrics_dir or root / RUN_METRICS_DIR) / f"{name}.json")
    return metrics


# ---------------------------------------------------------------------------------------------------------
# The sweep's summary
# ---------------------------------------------------------------------------------------------------------

# (label, model, pool, group, metric); lower is better for the last two g columns
H_COLUMNS = [("note F1", "T", "all", "note_f1"), ("note+off F1", "T", "all", "note_offset_f1"),
             ("note+off+vel F1", "T", "all", "note_offset_velocity_f1"), ("frame F1", "T", "all", "frame_f1"),
             ("note F1 folk", "T", "folk", "note_f1"), ("note F1 chorales", "T", "bachChorales", "note_f1"),
             ("T_timbre note F1", "T_timbre", "all", "note_f1"), ("T_timbre frame F1", "T_timbre", "all", "frame_f1")]
G_COLUMNS = [("note F1", "T", "all", "note_f1"), ("aligned F1", "T", "all", "aligned_note_f1"),
             ("aligned F1 folk", "T", "folk", "aligned_note_f1"),
             ("aligned F1 chorales", "T", "bachChorales", "aligned_note_f1"),
             ("tempo log err", "T", "all", "tempo_log_error"), ("velocity MAE", "T", "all", "velocity_mae")]


def sweep(map_params: dict) -> list[tuple[str, int, int]]:
    return [(m, int(k), int(s)) for m in map_params["methods"] for k in map_params["Ks"] for s in map_params["seeds"]]


def collect(map_params: dict, root: str | Path = ".", runs_dir: str | Path | None = None) -> list[dict]:
    """metrics.json of every run of the sweep that exists (missing runs are reported by summarize)."""
    base = Path(runs_dir or Path(root) / RUNS_DIR)
    out = []
    for m, k, s in sweep(map_params):
        f = base / run_name(m, k, s) / "metrics.json"
        if f.is_file():
            out.append(json.loads(f.read_text()))
    return out


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
        rows.append(row)
    return {"rows": rows, "n_runs": len(runs)}


def _cell(c: dict, digits: int = 3) -> str:
    if c["mean"] is None:
        return "–"
    s = f"{c['mean']:.{digits}f}"
    return s + (f" ± {c['std']:.{digits}f}" if c["std"] is not None else "")


def markdown(summary: dict, missing: list[str] | None = None) -> str:
    """The summary as two markdown tables (h: A -> M, g: V -> M)."""
    out = []
    for model, cols, title in (("h", H_COLUMNS, "h: A → M (transcription of T; T_timbre = unheard piano)"),
                               ("g", G_COLUMNS, "g: V → M (performance of T's scores)")):
        labels = [c[0] for c in cols]
        out.append(f"### {title}\n")
        out.append("| method | K | seeds | " + " | ".join(labels) + " |")
        out.append("|---|---:|---:|" + "---:|" * len(labels))
        for row in summary["rows"]:
            out.append(f"| {row['method']} | {row['K']} | {row['n_seeds']} | "
                       + " | ".join(_cell(row[model][l]) for l in labels) + " |")
        out.append("")
    out.append("mean ± sample std over seeds. g: tempo log err = |ln(performed span / true span)|, velocity MAE in MIDI "
               "units (lower is better); aligned F1 = note F1 after DTW-aligning onsets (timing-invariant).")
    if missing:
        out.append(f"\nMissing runs ({len(missing)}): " + ", ".join(missing))
    return "\n".join(out) + "\n"


def missing_runs(map_params: dict, root: str | Path = ".") -> list[str]:
    base = Path(root) / RUNS_DIR
    return [run_name(m, k, s) for m, k, s in sweep(map_params) if not (base / run_name(m, k, s) / "metrics.json").is_file()]


def summary_metrics(summary: dict) -> dict:
    """Compact form for reports/metrics/summary.json (dvc metrics): {"<method>-K<K>": {"h": {label: mean},
    "g": {...}, "h_std": {...}, "g_std": {...}, "n_seeds"}}."""
    out = {}
    for row in summary["rows"]:
        key = f"{row['method']}-K{row['K']}"
        out[key] = {"n_seeds": row["n_seeds"]}
        for model in ("h", "g"):
            out[key][model] = {l: c["mean"] for l, c in row[model].items()}
            out[key][f"{model}_std"] = {l: c["std"] for l, c in row[model].items()}
    return _jsonable(out)


# ---------------------------------------------------------------------------------------------------------
# Pictures for the notebook
# ---------------------------------------------------------------------------------------------------------

def plot_predictions(run_dir: str | Path, ids: list[str], root: str | Path = ".", seconds: float | None = None):
    """Piano rolls per excerpt: truth, h(a) on T, h(a) on T_timbre, g(v) (evaluation display only)."""
    import matplotlib.pyplot as plt

    from lmm_utils.core.motion import read_midi, to_roll

    root, run_dir = Path(root), Path(run_dir)
    truth = _read_motion("T", root)
    panels = [("truth", None), ("h(a), T", "h"), ("h(a), T_timbre", "h_timbre"), ("g(v)", "g")]
    fig, axes = plt.subplots(len(ids), len(panels), figsize=(4 * len(panels), 2.4 * len(ids)), squeeze=False)
    for r, i in enumerate(ids):
        perfs = [truth[i]] + [read_midi(run_dir / "predictions" / k / f"{i}.mid") for _, k in panels[1:]]
        dur = seconds or max(p.duration for p in perfs if p.notes) + 0.2
        n = int(dur * 50) + 1
        lo = min((x.pitch for x in truth[i].notes), default=60) - 21 - 6
        hi = max((x.pitch for x in truth[i].notes), default=72) - 21 + 6
        for c, ((title, _), perf) in enumerate(zip(panels, perfs)):
            ax = axes[r, c]
            roll = to_roll(perf, 50.0, n)["frame"] + to_roll(perf, 50.0, n)["onset"]
            ax.imshow(roll[max(lo, 0):hi], aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=2,
                      extent=(0, n / 50.0, max(lo, 0) + 21, hi + 21))
            ax.set_title(f"{title}" + (f"\n{i}" if c == 0 else ""), fontsize=8)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


__all__ = ["run_name", "pair_pool", "draw_pairs", "train_run", "evaluate", "run", "save_run", "collect", "summarize",
           "markdown", "sweep", "eval_ids", "missing_runs", "flat_metrics", "summary_metrics", "plot_predictions"]
