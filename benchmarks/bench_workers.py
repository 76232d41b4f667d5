"""Runs at once or threads per run: a method's grid with mapping.workers = 1 (one process, method.threads torch
threads) against workers = N (N processes, threads // N each), same runs, same machine, one after the other.
Figures only, nothing asserted.

    .venv/bin/python benchmarks/bench_workers.py --project <a project after dvc repro> --method supervised --K 4 \
        --seeds 0 1 2 3 --steps 150 --workers 1 2 --out benchmarks/results/workers.json
    .venv/bin/python benchmarks/bench_workers.py --project <project> --method lmm --K 0 --seeds 0 1 2 --steps 300 \
        --workers 2 3     # 3 runs on 2 cores: two then one, or all three at once

Each way trains the same runs into its own temporary folder (nothing is reused between the ways). The order of
the ways rotates with --repeats so that a warming machine favours none. Speed-ups are against the first count.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from lmm_utils.core.params import load_params
    from lmm_utils.mapping import grid

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".", help="a project after dvc repro (its data and params.yaml)")
    ap.add_argument("--method", default="supervised")
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    ap.add_argument("--threads", type=int, default=2, help="method.threads: a run's threads when workers = 1")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(args.project).resolve()
    params = load_params(root / "params.yaml")
    mp = copy.deepcopy(params["mapping"])
    mp["method"].update(steps=args.steps, threads=args.threads)
    counts = list(dict.fromkeys(args.workers))
    walls: dict[int, list[float]] = {w: [] for w in counts}
    runs: dict[int, list[dict]] = {}
    for rep in range(args.repeats):
        order = counts[rep % len(counts):] + counts[:rep % len(counts)]
        for w in order:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                done = grid.run_grid(args.method, [args.K], args.seeds, {**mp, "workers": w}, params["features"],
                                     root=root, runs_dir=f"{tmp}/runs", metrics_dir=f"{tmp}/metrics", log=None)
                walls[w].append(time.perf_counter() - t0)
                runs[w] = [{"run": r.name, "seconds": round(r.seconds, 1),
                            "h_T_note_f1": r.metrics["h"]["T"]["all"]["note_f1"]} for r in done]
    mean = {w: sum(v) / len(v) for w, v in walls.items()}
    out = {"method": args.method, "K": args.K, "seeds": args.seeds, "steps": args.steps, "threads": args.threads,
           "workers": args.workers, "repeats": args.repeats,
           "grid_wall_s": {f"workers={w}": round(m, 1) for w, m in mean.items()},
           "per_run_s": {f"workers={w}": round(m / len(args.seeds), 1) for w, m in mean.items()},
           "speedup": {f"workers={w}": round(mean[counts[0]] / mean[w], 2) for w in counts[1:]},
           "runs": {f"workers={w}": r for w, r in runs.items()},
           "note": "grid wall includes loading S, the evaluation door and (workers > 1) starting the worker processes"}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
