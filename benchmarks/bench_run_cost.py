"""Where one mapping run's time goes: process start and imports, the papermill kernel, loading S and the LMs,
each method's fixed training work and per-step cost, prediction, scoring. Figures only, nothing asserted.

    .venv/bin/python benchmarks/bench_run_cost.py --project /path/to/a/project/with/data   # after its dvc repro
    .venv/bin/python benchmarks/bench_run_cost.py --methods supervised lmm --steps 2 12 --K 2 --out /tmp/cost.json

A method's cost at `steps` s is fixed + s * per_step: the two step counts give both (per_step = the slope). Run it on
an otherwise idle machine; each figure is the best of `--repeats` runs.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm
import torch

from lmm_utils.core.params import load_params
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.mapping import run as runner
from lmm_utils.methods.lm_features import load_lm_features

METHODS = ["supervised", "synth_pairs", "surface", "cycle", "lmm"]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def subprocess_seconds(code: str, repeats: int) -> float:
    return best_of(lambda: subprocess.run([sys.executable, "-c", code], check=True), repeats)


def kernel_seconds(repeats: int) -> float:
    """papermill on a one-cell notebook: kernel start, one execution, shutdown (what every stage pays once)."""
    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        src, out = Path(tmp) / "nb.ipynb", Path(tmp) / "out.ipynb"
        nbformat.write(nb, src)
        return best_of(lambda: pm.execute_notebook(str(src), str(out), kernel_name=os.environ.get("LMM_KERNEL", "lmm"),
                                                   progress_bar=False), repeats)


def method_cost(method: str, K: int, steps: tuple[int, int], mp: dict, features: dict, root: Path, synth) -> dict:
    """Training seconds at two step budgets -> fixed part and per-step part; then predict + score at the larger."""
    out = {}
    for s in steps:
        p = copy.deepcopy(mp)
        p["method"]["steps"] = s
        if "lmm" in p:
            p["lmm"]["lmM_train"] = {**p["lmm"].get("lmM_train", {}), "steps": p["lmm"].get("lmM_train", {}).get("steps", 30)}
        t0 = time.perf_counter()
        result = runner.train_run(method, K, 0, p, features, root, synth=synth)
        out[s] = time.perf_counter() - t0
    lo, hi = steps
    per_step = (out[hi] - out[lo]) / (hi - lo)
    data = EvaluationData(root)
    t0 = time.perf_counter()
    preds, ids = runner.predict(result, data, mp.get("eval") or {}, features)
    t_predict = time.perf_counter() - t0
    t0 = time.perf_counter()
    diag = runner.diagnostics(result, data)
    t_diag = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        runner.save_run(result, {"run": "bench"}, preds, data.truth(ids), diag, Path(tmp) / "run")
        t_save = time.perf_counter() - t0
    return {"train_fixed_s": out[lo] - lo * per_step, "per_step_s": per_step, "predict_s": t_predict,
            "diagnostics_s": t_diag, "save_and_score_s": t_save, "n_T": len(ids), "steps": list(steps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", default=".", help="a project folder whose pipeline has run (data/ present)")
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--steps", nargs=2, type=int, default=(2, 12))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    root = Path(args.project).resolve()
    os.chdir(root)
    torch.set_num_threads(1)
    params = load_params(root / "params.yaml")
    mp, features = params["mapping"], params["features"]
    rows: dict = {"process": {
        "python_start_s": subprocess_seconds("pass", args.repeats),
        "imports_s": subprocess_seconds("import lmm_utils.mapping.run, lmm_utils.methods", args.repeats),
        "papermill_kernel_s": kernel_seconds(args.repeats),
    }}
    t0 = time.perf_counter()
    synth = runner.load_frozen_synth(root / mp["synth"])
    rows["process"]["load_S_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for kind in ("A", "V"):
        load_lm_features(kind, mp["lm"][kind], "cpu", root)
    rows["process"]["load_LMs_s"] = time.perf_counter() - t0
    rows["methods"] = {m: method_cost(m, args.K, tuple(args.steps), mp, features, root, synth) for m in args.methods}
    print(json.dumps(rows, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
