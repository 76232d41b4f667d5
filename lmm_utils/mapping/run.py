"""One run of the mapping sweep: (method, K, seed) -> h and g, their predictions on T, and their scores.

    from lmm_utils.mapping import run as runner
    metrics = runner.run("lmm", K=4, seed=0, map_params=params["mapping"], features=params["features"])

A run has two parts that never mix:

  train_run   draws the run's K pairs from P (lmm_utils.mapping.draws), builds
              `TrainingData().restrict_pairs(draw)` -- the only door training code gets -- loads the frozen
              synthesizer S, and runs the method (lmm_utils.methods). Nothing of T, and no motion.
  evaluation  through `EvaluationData` (lmm_utils.data.evaluation), the only reader of T and of motion:
              `predict` transcribes T's, T_timbre's and T_noisy's recordings with h and performs T's scores with g on the
              fixed subset `eval_ids(mapping.eval.max_items)`; `save_run` writes the predictions as one compact
              file (lmm_utils.evaluation.predictions) and scores *that file* with lmm_utils.evaluation.scoring -- the code the evaluate stage uses --
              into scores/<system>.json, one row per excerpt; metrics.json summarises those rows (all, folk,
              chorales, each collection). Diagnostics, clearly labelled and computed after training, never fed
              back: how good the run's pseudo-motion was (against P's ground truth, for the K pairs) and, for
              lmm, whether LM^M picked better self-training labels (against U_A's ground truth).

Outputs (the folder is built under a temporary name and swapped in whole): data/runs/<method>/<method>-K<K>-s<seed>/
{h.pt, g.pt, draw.json, predictions.json.gz, scores/{h,h_timbre,h_noisy,g}.json, metrics.json[, lmM/]}
and a flat copy of the headline numbers in reports/metrics/map/<method>/<run>.json. Several runs share one process
through lmm_utils.mapping.grid (S and the LMs loaded once, finished runs reused by fingerprint).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import atomic_dir, jsonable, write_json
from lmm_utils.core.paths import RUN_METRICS_DIR, RUNS_DIR, run_metrics_path, run_name, run_path
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.data.pools import TrainingData
from lmm_utils.evaluation.metrics import aggregate, alignment_accuracy, transcription_scores
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, run_sources, write_predictions
from lmm_utils.evaluation.scoring import (
    SCORES,
    SYSTEMS,
    nest,
    read_rows,
    score_run_folder,
    source_fingerprint,
    summarize,
)
from lmm_utils.mapping.draws import draw_pairs, pair_pool, run_params
from lmm_utils.methods import check_method, run_method
from lmm_utils.methods.checkpoints import save_g, save_h
from lmm_utils.models.transcriber import DecodeConfig
from lmm_utils.training.distributed import default_device


class DeviceSynth:
    """S on its device, callable with rolls on any device (alignment and synth-pairs build their rolls on the
    CPU; the training loops of cycle / lmm on the run's device): inputs go to S's device, the log-mel comes
    back on the inputs' device. Gradients flow through the transfers."""

    def __init__(self, synth):
        self.synth = synth

    @property
    def takes_sounding(self) -> bool:
        return getattr(self.synth, "takes_sounding", False)

    def __call__(self, onset, velocity, sustain, **kw):
        dev = next(self.synth.parameters()).device
        out = self.synth(onset.to(dev), velocity.to(dev), sustain.to(dev), **{k: v.to(dev) for k, v in kw.items()})
        return out.to(onset.device)


def load_frozen_synth(path: str | Path, device: str = "cpu"):
    """S from its checkpoint (models/synth.py), frozen: methods train through it, never on it."""
    from lmm_utils.models.synth import load_synth  # deferred: S's code loads only when a run has no S passed in

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
# Evaluation part (EvaluationData only; never called by training code)
# ---------------------------------------------------------------------------------------------------------

def predict(result, data: EvaluationData, eval_params: dict | None = None, features: dict | None = None,
            progress: bool = False, decode: DecodeConfig = DecodeConfig()) -> tuple[dict[str, dict], list[str]]:
    """h on the recordings of T, T_timbre and T_noisy (decoded with `decode`, which metrics.json records), g on T's
    scores, for the fixed subset eval_ids(max_items). -> ({system: {id: Performance}}, ids). A recording pool missing some of the excerpts (T_noisy on data made
    before it) is left out: its system is absent from the predictions, not scored as empty."""
    feat = FeatureConfig.from_params(features or {})
    ids = data.eval_ids((eval_params or {}).get("max_items"))
    scores = data.scores("T")
    preds = predict_h(result.get("h"), data, ids, feat, decode, progress)
    preds["g"] = dict(zip(ids, result.get("g").perform([scores[i] for i in ids])))
    return preds, ids


def predict_h(h, data: EvaluationData, ids: list[str], feat: FeatureConfig, decode: DecodeConfig = DecodeConfig(),
              progress: bool = False) -> dict[str, dict]:
    """h's transcriptions of `ids` in every recording pool that has them all: {system: {id: Performance}}."""
    heard = [(system, pool) for system, (pool, kind) in SYSTEMS.items()
             if kind == "transcription" and data.has_recordings(pool, ids)]
    preds: dict[str, dict] = {system: {} for system, _ in heard}
    for i in tqdm(ids, desc="predict h", disable=not progress, mininterval=2.0):
        for system, pool in heard:
            preds[system][i] = h.transcribe(data.logmel(pool, i, feat), decode)
    return preds


def _spearman(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def diagnostics(result, data: EvaluationData) -> dict:
    """Against ground truth that training never reads: the pseudo-motion of the run's pairs (P) and lmm's
    LM^M selection of self-training labels (U_A)."""
    diag: dict = {"note": "diagnostics: computed after training against ground-truth motion (P: the run's "
                          "pairs; U_A: lmm's self-training candidates); no training code reads them"}
    pseudo = result.get("pseudo") or {}
    if pseudo:
        truth_p = data.motion("P")
        diag["pseudo_motion"] = aggregate([alignment_accuracy(p, truth_p[i]) for i, p in pseudo.items()])["all"]
    st = (result.get("info") or {}).get("selftrain")
    if st:
        truth_u = data.motion("U_A")
        f1 = [transcription_scores(truth_u[i], st["decodes"][i])["note_f1"] for i in st["ids"]]
        kept = set(st["kept"])
        k_f1 = [f for i, f in zip(st["ids"], f1) if i in kept]
        d_f1 = [f for i, f in zip(st["ids"], f1) if i not in kept]
        diag["lmM_selection"] = {
            "kept_note_f1": float(np.mean(k_f1)) if k_f1 else float("nan"),
            "dropped_note_f1": float(np.mean(d_f1)) if d_f1 else float("nan"),
            "spearman_score_vs_f1": _spearman(st["score"], f1), "n_kept": len(k_f1), "n": len(f1),
            **{f"spearman_{k}_vs_f1": _spearman(v, f1) for k, v in (st.get("criteria") or {}).items()}}
    return diag


def train_summary(result) -> dict:
    info = result.get("info") or {}
    out = {"seconds": result.get("train_seconds"), "device": result.get("device"), "terms": info.get("terms", {})}
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


H_KEYS = ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1", "note_p", "note_r")
G_KEYS = ("velocity_r", "log_ioi_r", "articulation_r", "onset_dev_ms", "note_f1", "aligned_note_f1", "tempo_log_error",
          "velocity_mae", "ioi_ratio", "pedal_f1")


def flat_metrics(metrics: dict) -> dict:
    """The numbers DVC shows: h / g scores overall and per family (not per collection), timings."""
    out: dict = {"h": {}, "g": {}}
    for model, keep in (("h", H_KEYS), ("g", G_KEYS)):
        for pool, groups in metrics[model].items():
            out[model][pool] = {grp: {k: v.get(k) for k in keep} for grp, v in groups.items() if family(grp) == grp}
    if "pseudo_motion" in metrics["diagnostic"]:
        out["diagnostic_pseudo_note_f1"] = metrics["diagnostic"]["pseudo_motion"].get("note_f1")
    out["train_seconds"] = metrics["train"]["seconds"]
    out["eval_seconds"] = metrics["eval"]["seconds"]
    return jsonable(out)


def metric_tables(metrics: dict) -> dict[str, dict[str, dict]]:
    """The run's numbers as notebook tables: h per pool and subset, g per subset, the diagnostics."""
    cols_h, cols_g = (*H_KEYS[:4], "n"), (*G_KEYS[:4], "n")
    return {"h": {f"h {pool} {grp}": {k: v.get(k) for k in cols_h}
                  for pool, groups in metrics["h"].items() for grp, v in groups.items()},
            "g": {f"g {pool} {grp}": {k: v.get(k) for k in cols_g}
                  for pool, groups in metrics["g"].items() for grp, v in groups.items()},
            "diagnostic": {k: v for k, v in metrics["diagnostic"].items() if isinstance(v, dict)}}


# ---------------------------------------------------------------------------------------------------------
# One run, end to end
# ---------------------------------------------------------------------------------------------------------

def save_run(result, head: dict, preds: dict, truth: Truth, diag: dict, out_dir: str | Path,
             eval_info: dict | None = None, progress: bool = False) -> dict:
    """Write the run folder -- checkpoints, draw, the predictions file, LM^M -- score the file it wrote
    (scores/<system>.json) and summarise those rows in metrics.json. The folder is built under a temporary
    name and swapped in whole, so a half-written run never looks finished. -> metrics."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        save_h(result.get("h"), tmp / "h.pt", {"run": out_dir.name})
        save_g(result.get("g"), tmp / "g.pt", {"run": out_dir.name})
        draw = {"K": result.get("K"), "seed": result.get("seed"), "pairs": result.get("draw")}
        (tmp / "draw.json").write_text(json.dumps(draw, indent=1) + "\n")
        write_predictions(preds, tmp / PREDICTIONS_FILE)
        lmM = (result.get("info") or {}).get("lmM")
        if lmM is not None:
            lmM.save(tmp / "lmM")
        t0 = time.perf_counter()
        rows = score_run_folder(tmp, truth, progress)
        metrics = {**head, **nest({s: summarize(r) for s, r in rows.items()}), "diagnostic": diag}
        info = dict(eval_info or {})
        info["score_seconds"] = time.perf_counter() - t0
        info["seconds"] = info.get("predict_seconds", 0.0) + info["score_seconds"]
        metrics["eval"] = info
        (tmp / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=1) + "\n")
    return metrics


def rescore(run_dir: str | Path, data: EvaluationData, metrics_dir: str | Path | None = None) -> tuple[dict, bool]:
    """A finished run's metrics, re-scored from its saved predictions when the metric code (or the truth) changed
    since it was scored -- a new metric costs a re-score, never a re-training. -> (metrics, whether it re-scored)."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    sources = run_sources(run_dir, tuple(SYSTEMS))
    ids = sorted({i for src in sources.values() for i in src.ids()})
    truth = data.truth(ids)
    truth_fp = truth.fingerprint()
    stale = [s for s, src in sources.items()
             if read_rows(run_dir / SCORES / f"{s}.json", source_fingerprint(src, truth_fp, SYSTEMS[s][1])) is None]
    if not stale:
        return metrics, False
    rows = score_run_folder(run_dir, truth)
    metrics.update(nest({s: summarize(r) for s, r in rows.items()}))
    write_json(jsonable(metrics), run_dir / "metrics.json")
    if metrics_dir is not None:
        write_json(flat_metrics(metrics), run_metrics_path(metrics_dir, metrics["method"], metrics["K"], metrics["seed"]))
    return metrics, True


def run(method: str, K: int, seed: int, map_params: dict, features: dict | None = None, root: str | Path = ".",
        progress: bool = False, runs_dir: str | Path | None = None, metrics_dir: str | Path | None = None,
        synth=None, extra: dict | None = None, data: EvaluationData | None = None) -> dict:
    """Train, predict, save, score one run; returns its metrics (as metrics.json holds them). `synth`: S already
    loaded (a process running several runs loads it once); `extra`: keys added to metrics.json (the grid's
    fingerprint); `data`: the evaluation door, shared by a process's runs (it reads T's scores and motion once)."""
    root = Path(root)
    name = run_name(method, K, seed)
    result = train_run(method, K, seed, map_params, features, root, progress, synth=synth)
    data = data or EvaluationData(root)
    ep = (map_params or {}).get("eval") or {}
    t0 = time.perf_counter()
    decode = DecodeConfig()
    preds, ids = predict(result, data, ep, features, progress, decode)
    eval_info = {"n_T": len(ids), "max_items": ep.get("max_items"), "predict_seconds": time.perf_counter() - t0}
    head = {"run": name, "method": method, "K": int(K), "seed": int(seed), "pairs": result.get("draw"),
            "train": train_summary(result), "decode": asdict(decode), **(extra or {})}
    diag = diagnostics(result, data)
    metrics = save_run(result, head, preds, data.truth(ids), diag, run_path(runs_dir or root / RUNS_DIR, method, K, seed),
                       eval_info, progress)
    write_json(flat_metrics(metrics), run_metrics_path(metrics_dir or root / RUN_METRICS_DIR, method, K, seed))
    return metrics


__all__ = ["train_run", "predict", "predict_h", "diagnostics", "save_run", "run", "rescore", "flat_metrics", "metric_tables",
           "train_summary", "DeviceSynth", "load_frozen_synth", "draw_pairs", "pair_pool", "run_params"]
