"""Decoding with `key_down_threshold` (models/transcriber.DecodeConfig) at several values: does dropping onsets whose
key never goes down pay? Decided on P's recordings outside each run's draw (the validation part of P: never T, never the
run's own pairs); T, T_timbre and T_noisy are reported beside it, after the decision, from the same posteriors.

    .venv/bin/python benchmarks/decode_key_down.py --project <a project after dvc repro> \\
        --runs data/runs/supervised/supervised-K16-s0 data/runs/lmm/lmm-K0-s0 --out benchmarks/results/decode_key_down.json

Per run and pool: h's posteriors are computed once and decoded each way (--thresholds; 0 = the decoding before); the mean over excerpts of note F1,
precision and recall (mir_eval through lmm_utils.evaluation.metrics), and the notes each way makes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALIDATION = "P (outside the draw)"
REPORTED = ("T", "T_timbre", "T_noisy")


def key_down_shares(h, root: Path, items: int, thresholds: list[float]) -> dict[float, float]:
    """Of h's onset peaks on the first `items` U_A recordings (through TrainingData: audio only, no motion), the
    fraction whose key's frame probability reaches each threshold within the decoder's min_frames frames: a
    truth-free view of whether h's frame head works (near 1) or not (near 0)."""
    import torch

    from lmm_utils.core.features import log_mel
    from lmm_utils.data.pools import TrainingData
    from lmm_utils.models.transcriber import DecodeConfig

    cfg, data = DecodeConfig(), TrainingData(root)
    hits, total = dict.fromkeys(thresholds, 0), 0
    for i in data.audio_ids("U_A")[:items]:
        audio, _ = data.audio("U_A", i)
        logits = h.logits(log_mel(audio.mean(1) if audio.ndim == 2 else audio, h.feat))
        on, fr = (torch.sigmoid(logits[k]).numpy() for k in ("onset", "frame"))
        peak = on >= cfg.onset_threshold
        peak[:, 1:] &= on[:, 1:] >= on[:, :-1]
        peak[:, :-1] &= on[:, :-1] >= on[:, 1:]
        keys, frames = np.nonzero(peak)
        total += len(keys)
        for t in thresholds:
            hits[t] += sum(bool((fr[k, f:f + cfg.min_frames + 1] >= t).any()) for k, f in zip(keys, frames))
    return {t: hits[t] / total if total else float("nan") for t in thresholds}


def score_rows(run: str, pool: str, key: str, scores: dict) -> list[dict]:
    """{way: [per-excerpt transcription_scores + n_notes]} -> one printed row per way (mean F1, P, R; notes)."""
    rows = []
    for way, s in scores.items():
        row = {"run": run, "pool": pool, key: way, "n": len(s),
               **{k: float(np.mean([r[k] for r in s])) for k in ("note_f1", "note_p", "note_r")},
               "notes": int(sum(r["n_notes"] for r in s))}
        rows.append(row)
        print(f"{run:22s} {pool:22s} {way!s:15s} F1 {row['note_f1']:.3f}  P {row['note_p']:.3f}  "
              f"R {row['note_r']:.3f}  notes {row['notes']}", flush=True)
    return rows


def gain_summary(rows: list[dict], key: str, ways: list) -> dict:
    """Per pool and way: mean note F1 over runs and its gain over ways[0] (the decoding before), mean / min / max."""
    gains: dict = {}
    for pool in dict.fromkeys(r["pool"] for r in rows):
        ref = {r["run"]: r["note_f1"] for r in rows if r["pool"] == pool and r[key] == ways[0]}
        for way in ways:
            these = [r for r in rows if r["pool"] == pool and r[key] == way]
            d = [r["note_f1"] - ref[r["run"]] for r in these]
            mean_f1 = float(np.mean([r["note_f1"] for r in these]))
            gains.setdefault(pool, {})[f"{way:g}" if isinstance(way, float) else way] = {
                "mean_note_f1": mean_f1, "gain_mean": float(np.mean(d)), "gain_min": float(np.min(d)),
                "gain_max": float(np.max(d)), "runs": len(d)}
            print(f"{pool:22s} {way!s:15s} mean note F1 {mean_f1:.4f}  vs {ways[0]}: {np.mean(d):+.4f} "
                  f"(min {np.min(d):+.4f}, max {np.max(d):+.4f}, {len(d)} runs)")
    return gains


def main() -> None:
    import torch

    from lmm_utils.data.evaluation import EvaluationData
    from lmm_utils.evaluation.metrics import transcription_scores
    from lmm_utils.methods.checkpoints import load_h
    from lmm_utils.methods.wrappers import fast_decode
    from lmm_utils.models.transcriber import DecodeConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True)
    ap.add_argument("--runs", nargs="+", required=True, help="run folders (relative to --project or absolute)")
    ap.add_argument("--max-items", type=int, default=128, help="T excerpts reported (the runs' fixed subset)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5],
                    help="key_down_threshold values (0 = off, the decoding before)")
    ap.add_argument("--validation-only", action="store_true", help="decide first: P outside the draw only")
    ap.add_argument("--share-items", type=int, default=0,
                    help="also each run's key-down share on its first N U_A recordings (training data, no truth): "
                         "of h's onset peaks, the fraction whose key's frame probability reaches the threshold")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.project).resolve()
    ev = EvaluationData(root)
    # without harmonic suppression, as these ways were measured (benchmarks/results/decode_key_down*.json)
    ways = {f"key_down {t:g}": DecodeConfig(key_down_threshold=t, harmonic_ratio=0.0) for t in args.thresholds}
    t_ids = ev.eval_ids(args.max_items)
    truth = {"P": ev.motion("P"), "T": ev.motion("T")}
    rows = []
    for run in args.runs:
        run_dir = Path(run) if Path(run).is_absolute() else root / run
        h = load_h(run_dir / "h.pt", lm_root=root)
        drawn = set(json.loads((run_dir / "draw.json").read_text())["pairs"])
        p_ids = [i for i in ev.audio_ids("P") if i not in drawn and i in truth["P"]]
        if args.share_items:
            shares = key_down_shares(h, root, args.share_items, [t for t in args.thresholds if t > 0])
            rows.append({"run": run_dir.name, "pool": "U_A", "key_down_share": shares})
            print(f"{run_dir.name:22s} U_A key-down share of onset peaks: "
                  + ", ".join(f"{t:g}: {v:.3f}" for t, v in shares.items()), flush=True)
        pools = [(VALIDATION, "P", p_ids)] + ([] if args.validation_only else [(pool, pool, t_ids) for pool in REPORTED])
        for label, pool, ids in pools:
            true = truth["P" if pool == "P" else "T"]
            scores = {w: [] for w in ways}
            for i in ids:
                logits = h.logits(ev.logmel(pool, i, h.feat))
                for w, cfg in ways.items():
                    perf = fast_decode(logits, h.feat.fps, cfg)
                    scores[w].append({**transcription_scores(true[i], perf), "n_notes": len(perf.notes)})
            rows += score_rows(run_dir.name, label, "decode", scores)
    gains = gain_summary([r for r in rows if "decode" in r], "decode", list(ways))
    if args.out:
        Path(args.out).write_text(json.dumps({"project": str(root), "decided_on": VALIDATION, "rows": rows,
                                              "gain_note_f1": gains}, indent=1) + "\n")


if __name__ == "__main__":
    main()
