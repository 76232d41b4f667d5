"""A mapping run's fixed cost: one process per run (as the pipeline ran until the map stage became one process per
method) against one process running a method's grid (lmm_utils.mapping.grid). Figures only, nothing asserted.

    .venv/bin/python benchmarks/bench_grid.py --project /path/to/a/project/after/dvc/repro --runs 3 --steps 0

Each run trains `--steps` steps (0: no learning at all, so what remains is the fixed cost: drawing and aligning
the pairs, building the method, predicting T and T_timbre, writing the predictions file and scoring it), on the
project's own params.yaml otherwise (its eval subset, its threads). "process per run" starts a fresh Python for
each run, imports the package and loads S, as `python -m lmm_utils.pipeline.stage` did for a one-run stage, less
papermill's kernel (add ~0.8 s a run for it: README "Where a run's time goes"). Runs go to a temporary folder.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ONE_RUN = """
import json, sys, time
t0 = time.perf_counter()
from lmm_utils.mapping import run as runner
mp, feat, root, out, method, K, seed = json.loads(sys.argv[1])
runner.run(method, K, seed, mp, feat, root=root, runs_dir=out + "/runs", metrics_dir=out + "/metrics")
"""


def main() -> None:
    from lmm_utils.core.params import load_params
    from lmm_utils.core.paths import run_path
    from lmm_utils.mapping import grid

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".", help="a project after dvc repro (its data and params.yaml)")
    ap.add_argument("--method", default="supervised")
    ap.add_argument("--K", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="runs (seeds 0..runs-1) each way")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here too")
    args = ap.parse_args()
    root = Path(args.project).resolve()
    params = load_params(root / "params.yaml")
    mp = copy.deepcopy(params["mapping"])
    mp["method"]["steps"] = args.steps
    mp["workers"] = 1  # one run at a time, with the project's threads: what this compares is the process layout
    seeds = list(range(args.runs))

    def parts(metrics: dict) -> dict:
        return {"train": metrics["train"]["seconds"], "predict": metrics["eval"]["predict_seconds"],
                "score": metrics["eval"]["score_seconds"]}

    def fixed(wall: float, p: dict) -> float:  # everything a run costs besides learning, predicting and scoring
        return wall - p["train"] - p["predict"] - p["score"]

    with tempfile.TemporaryDirectory() as tmp:
        per_process = []
        for s in seeds:
            job = json.dumps([mp, params["features"], str(root), f"{tmp}/per_run", args.method, args.K, s])
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", ONE_RUN, job], cwd=root, check=True, capture_output=True)
            wall = time.perf_counter() - t0
            met = json.loads((run_path(f"{tmp}/per_run/runs", args.method, args.K, s) / "metrics.json").read_text())
            per_process.append({"wall": wall, **parts(met)})
        t0 = time.perf_counter()
        done = grid.run_grid(args.method, [args.K], seeds, mp, params["features"], root=root,
                             runs_dir=f"{tmp}/grid/runs", metrics_dir=f"{tmp}/grid/metrics", log=None)
        grid_wall = time.perf_counter() - t0
        in_grid = [{"wall": r.seconds, **parts(r.metrics)} for r in done]
        t0 = time.perf_counter()
        again = grid.run_grid(args.method, [args.K], seeds, mp, params["features"], root=root,
                              runs_dir=f"{tmp}/grid/runs", metrics_dir=f"{tmp}/grid/metrics", log=None)
        reused = (time.perf_counter() - t0) / len(seeds)

    def mean(rows: list[dict], key: str) -> float:
        return round(float(sum(r[key] for r in rows) / len(rows)), 2)

    out = {"method": args.method, "K": args.K, "steps": args.steps, "runs": len(seeds),
           "n_T": done[-1].metrics["eval"]["n_T"],
           "process_per_run": {k: mean(per_process, k) for k in ("wall", "train", "predict", "score")}
           | {"fixed": round(float(sum(fixed(r["wall"], r) for r in per_process) / len(seeds)), 2)},
           "grid": {k: mean(in_grid, k) for k in ("wall", "train", "predict", "score")}
           | {"fixed": round(float(sum(fixed(r["wall"], r) for r in in_grid) / len(seeds)), 2),
              "process_total_over_runs": round(grid_wall / len(seeds), 2)},
           "grid_reused_per_run": round(reused, 3), "all_reused": all(r.reused for r in again),
           "note": "process_per_run excludes papermill's kernel (~0.8 s a run before); fixed = wall - train - "
                   "predict - score; the grid's S load and imports are paid once (process_total_over_runs)"}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
