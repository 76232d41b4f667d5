"""A quick g-only comparison at one K (issue 15): does a learned g beat the plain performer on per-note velocity r?
Prints figures, asserts nothing.

    .venv/bin/python benchmarks/g_quick.py --K 16 --seeds 0 1 2 --n-eval 64
    .venv/bin/python benchmarks/g_quick.py --root /path/to/a/checkout --modes dynamics invert

For each seed: the run's K pairs (mapping.draws, as a run draws them), their pseudo-motion under each alignment
velocity mode (AlignConfig.velocity_mode), then g's trained on it exactly as the methods train theirs -- supervised's
Performer (params mapping.method's step budget) and the ridge g's of methods.basis (basic, lmV, both features) --
without training h (g does not need it). Scored on T's fixed evaluation subset (EvaluationData.eval_ids) with
evaluation.metrics.performance_scores, beside the floor (plain performer) and ceiling (a second pianist rendition,
evaluation.g_bounds). Mean over seeds, with the sd over seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.params import load_params
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.data.pools import TrainingData
from lmm_utils.evaluation.g_bounds import bound_performances
from lmm_utils.evaluation.metrics import performance_scores
from lmm_utils.mapping.draws import draw_pairs, pair_pool
from lmm_utils.mapping.run import load_frozen_synth
from lmm_utils.methods.base import align_config, load_pairs, method_config, pseudo_motion
from lmm_utils.methods.basis import fit_basis, make_basis_g
from lmm_utils.methods.lm_features import lm_paths, load_lm_features
from lmm_utils.methods.supervised import train_performer
from lmm_utils.methods.wrappers import GModel
from lmm_utils.models.performer import PerformerConfig

KEYS = ("velocity_r", "log_ioi_r", "articulation_r", "onset_dev_ms", "velocity_mae")


def score_all(perfs: dict, truth: dict) -> dict[str, float]:
    rows = [performance_scores(truth[i], perfs[i]) for i in truth]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="project root holding data/ (pools, S, LM^V)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-eval", type=int, default=64, help="T excerpts (EvaluationData.eval_ids)")
    ap.add_argument("--modes", nargs="+", default=["dynamics", "invert"], help="AlignConfig.velocity_mode values")
    ap.add_argument("--supervised-modes", nargs="*", default=["invert"],
                    help="modes under which supervised's Performer is trained too (its 300 steps dominate the cost)")
    ap.add_argument("--features", nargs="+", default=["basic", "lmV", "both"],
                    help="basis feature sets (methods.basis.FEATURE_SETS; notes = without the position basis)")
    ap.add_argument("--json", help="also write {row: [per-seed scores]} here (to pool seeds run apart)")
    args = ap.parse_args()

    params = load_params(args.params)
    mp = params["mapping"]
    root = Path(args.root)
    feat = FeatureConfig.from_params(params.get("features") or {})
    ev = EvaluationData(root)
    ids = ev.eval_ids(args.n_eval)
    truth = {i: ev.motion("T")[i] for i in ids}
    t_scores = [ev.scores("T")[i] for i in ids]
    bounds = bound_performances(ev, ev.truth(ids), params["perform"])
    table = {name: [score_all(perfs, truth)] for name, perfs in bounds.items()}
    synth = load_frozen_synth(root / mp.get("synth", "data/synth/S.pt"))
    lmV = load_lm_features("V", lm_paths(mp)["V"], root=root)
    pcfg = PerformerConfig.from_params(mp.get("performer"))
    cfg = method_config({**mp, "method": {**mp["method"], "threads": 2}})
    seconds: dict[str, float] = {}
    for seed in args.seeds:
        data = TrainingData(root).restrict_pairs(draw_pairs(pair_pool(root), args.K, seed))
        pairs = load_pairs(data, feat)
        scores = [s for s, _ in pairs]
        for mode in args.modes:
            acfg = dataclasses.replace(align_config(mp), velocity_mode=mode)
            pseudo = pseudo_motion(pairs, synth, acfg, feat)
            gs: dict[str, GModel] = {}
            if mode in args.supervised_modes:
                t0 = time.perf_counter()
                gs["supervised g"] = GModel(train_performer(scores, pseudo, dataclasses.replace(cfg, seed=seed), pcfg)[0])
                seconds["supervised g"] = seconds.get("supervised g", 0.0) + time.perf_counter() - t0
            for features in args.features:
                t0 = time.perf_counter()
                g = make_basis_g(pcfg, features, lmV if features in ("lmV", "both") else None)
                fit_basis(g, scores, pseudo)
                gs[f"basis {features}"] = g
                seconds[f"basis {features}"] = seconds.get(f"basis {features}", 0.0) + time.perf_counter() - t0
            for name, g in gs.items():
                table.setdefault(f"{name} | {mode}", []).append(score_all(dict(zip(ids, g.perform(t_scores))), truth))
        print(f"seed {seed} done", flush=True)
    print(f"\nK={args.K}, seeds {args.seeds}, T excerpts {len(ids)} (root {root})")
    print("| g | pairs' velocities | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---:|" * len(KEYS))
    for name, rows in table.items():
        g, _, mode = name.partition(" | ")
        cells = []
        for k in KEYS:
            vals = np.array([r[k] for r in rows])
            cells.append(f"{vals.mean():.3f}" + (f" ± {vals.std(ddof=1):.3f}" if len(vals) > 1 else ""))
        print(f"| {g} | {mode or '–'} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    print("fit seconds (all seeds and modes, one run, ratios only): "
          + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
