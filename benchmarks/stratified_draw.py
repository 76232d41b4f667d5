"""Would a pair draw stratified by family steady h at small K? Measured on P's validation part, never on T.

The sweep's draw (`mapping.draws.draw_pairs`) takes the first K of one seeded permutation of P, so four pairs drawn
over three families (folk, chorales, polyphony) may hold one family only, and supervised h at K = 4 swings with the
seed (the default's `steady` check fails on it). The stratified draw here is still nested and seeded: each family's
excerpts in their own seeded order, dealt round-robin in a seeded family order, so every draw of K >= 3 pairs holds
each family. Supervised h is trained from each draw (the method code as the sweep runs it: only the draw function is
swapped, in this process) and scored on every P excerpt outside the draw (their true motion is read through
EvaluationData, the evaluation door: a diagnostic, never a training signal). Figures only, nothing asserted, nothing
here changes the sweep.

    .venv/bin/python benchmarks/stratified_draw.py --project <a project after dvc repro> --K 4 --seeds 0 1 2 3 4 5 \
        --draws plain stratified --out benchmarks/results/stratified_draw_K4.json
    .venv/bin/python benchmarks/stratified_draw.py --project <...> --K 4 --draws fixed:1 \
        --out benchmarks/results/stratified_draw_K4_fixed1.json     # one draw, six training seeds
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stratified_draw(families: dict[str, str]):
    """draw_pairs's signature; families: excerpt id -> family."""
    from lmm_utils.data.excerpts import stable_seed

    def draw(pool: list[str], K: int, seed: int) -> list[str]:
        pool = sorted(pool)
        if not 0 <= K <= len(pool):
            raise ValueError(f"K={K} out of range for a pool of {len(pool)}")
        rng = np.random.default_rng(stable_seed("pairs-stratified", seed))
        groups: dict[str, list[str]] = {}
        for i in pool:
            groups.setdefault(families[i], []).append(i)
        order = [sorted(groups)[j] for j in rng.permutation(len(groups))]
        queues = {f: [groups[f][j] for j in rng.permutation(len(groups[f]))] for f in order}
        dealt: list[str] = []
        while len(dealt) < K:
            for f in order:
                if queues[f] and len(dealt) < K:
                    dealt.append(queues[f].pop(0))
        return dealt

    return draw


def main() -> None:
    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.core.params import load_params
    from lmm_utils.data.corpus import family
    from lmm_utils.data.evaluation import EvaluationData
    from lmm_utils.data.pools import TrainingData
    from lmm_utils.evaluation.metrics import transcription_scores
    from lmm_utils.mapping import draws
    from lmm_utils.mapping import run as runner

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".")
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--draws", nargs="+", default=["plain", "stratified"],
                    help="plain (the sweep's), stratified, or fixed:S (the sweep's draw of seed S for every run: the "
                         "spread left is the training's own, initialization and crops)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.project).resolve()
    params = load_params(root / "params.yaml")
    feat = FeatureConfig.from_params(params["features"])
    ev = EvaluationData(root)
    truth_p = ev.motion("P")
    fam = {s.id: family(s.collection) for s in TrainingData(root).scores("P")}
    plain = draws.draw_pairs
    rows = []
    for kind in args.draws:
        if kind.startswith("fixed:"):
            fixed = int(kind.split(":")[1])
            runner.draw_pairs = lambda pool, K, seed, fixed=fixed: plain(pool, K, fixed)
        else:
            runner.draw_pairs = {"plain": plain, "stratified": stratified_draw(fam)}[kind]
        for seed in args.seeds:
            t0 = time.perf_counter()
            res = runner.train_run("supervised", args.K, seed, params["mapping"], params["features"], root=root)
            drawn = set(res["draw"])
            val = [i for i in sorted(truth_p) if i not in drawn]
            f1 = {i: transcription_scores(truth_p[i], res["h"].transcribe(ev.logmel("P", i, feat)))["note_f1"]
                  for i in val}
            by_family = {f: float(np.mean([v for i, v in f1.items() if fam.get(i) == f]))
                         for f in sorted({fam[i] for i in val if i in fam})}
            row = {"draw": kind, "K": args.K, "seed": seed, "families_drawn": sorted(fam[i] for i in res["draw"]),
                   "val_P_note_f1": float(np.mean(list(f1.values()))), "by_family": by_family, "n_val": len(val),
                   "train_s": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    runner.draw_pairs = plain
    summary = {}
    for kind in args.draws:
        v = [r["val_P_note_f1"] for r in rows if r["draw"] == kind]
        summary[kind] = {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v)}
    print(json.dumps(summary))
    if args.out:
        Path(args.out).write_text(json.dumps({"what": __doc__.splitlines()[0], "command": " ".join(sys.argv),
                                              "project_params_mapping_method": params["mapping"]["method"],
                                              "summary": summary, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
