"""Per-step cost of the mapping methods whose steps go through S (cycle, lmm), by term, before and after a change,
measured in one run of this script.

    .venv/bin/python benchmarks/bench_step_cost.py --project /path/to/a/project/with/data   # against HEAD
    .venv/bin/python benchmarks/bench_step_cost.py --project /tmp/fresh --baseline b2690b4 --threads 1 --steps 3 12 \
        --out benchmarks/results/step_cost_cycle.json --methods cycle
    .venv/bin/python benchmarks/bench_step_cost.py --baseline none          # this tree only
    .venv/bin/python benchmarks/bench_step_cost.py --show benchmarks/results/step_cost_*.json   # saved tables

The baseline is the package `lmm_utils/` of a commit, unpacked with `git archive` into a temporary folder (the
working tree is not touched); both trees read the data (pools, S, the LMs) of --project (default this folder) and this
tree's params.yaml. For each method and tree, one worker process runs `mapping.run.train_run` (K pairs, seed 0):
a warm-up run at the first of --steps, then a timed and a profiled run at the second. Only the optimizer steps are
timed (the method's `optimize` calls, wrapped; a step = one optimizer step of h and one of g), so the fixed work --
loading, pseudo-motion, LM^M in lmm -- stays out. The profiled run (cProfile, on inside the steps only) splits a step
into its terms: the cumulative time of the functions that compute each term (profiling inflates the total, so the
shares are what to read; the tables scale them to the unprofiled seconds per step). The trees run one after the other per
method, so a load change on the shared machine hits both. Threads: method.threads of params.yaml (as the pipeline
runs it) or --threads for both trees; numpy's BLAS keeps its own default.
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# term -> function names (module file stem, function) whose cumulative time is that term's forward work.
TERMS = {
    "h_step": [("lmm", "h_loss"), ("cycle", "h_loss")],
    "g_step": [("lmm", "g_loss"), ("cycle", "g_loss")],
    "g_recon_step": [("cycle", "g_recon_step")],
    "dtw_warp": [("cycle", "warp_to"), ("cycle", "warp_batch")],
    "render_g (S of g)": [("losses", "render_g")],
    "S forward": [("synth_base", "forward")],
    "recon_loss": [("losses", "recon_loss")],
    "lmA_prior": [("lmm", "prior_loss")],
    "deviation_pull": [("losses", "deviation_pull")],
    "h net forward": [("wrappers", "forward"), ("transcriber", "forward")],
    "g net forward": [("performer", "forward"), ("performer", "deviations")],
    "crops sample": [("steps", "sample")],
    "backward": [("_tensor", "backward")],
    "optimizer step": [("optimizer", "wrapper"), ("adamw", "step")],
    "step total": [("steps", "optimize")],
}


def unpack_baseline(commit: str, dest: Path) -> Path:
    """The package folder of `commit` under dest (git archive: reads the object store, writes nothing in the tree)."""
    blob = subprocess.run(["git", "archive", commit, "lmm_utils"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def term_seconds(prof: cProfile.Profile, steps: int) -> dict[str, float]:
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    out = {}
    for term, names in TERMS.items():
        total = 0.0
        for (file, _, name), (_, _, _, ct, callers) in stats.items():
            if any(Path(file).stem == stem and name == fn for stem, fn in names):
                # skip recursive / nested calls of the same term (counted in the outer call already)
                if not any(Path(c[0]).stem == Path(file).stem and c[2] == name for c in callers):
                    total += ct
        out[term] = total / steps
    return out


def worker(args: argparse.Namespace) -> None:
    """One tree, one method: a warm-up run, a timed run and a profiled run; prints JSON on the last line."""
    sys.path.insert(0, str(Path(args.tree).resolve()))
    import torch

    from lmm_utils.core.params import load_params
    from lmm_utils.mapping import run as runner
    from lmm_utils.methods import cycle, lmm

    assert Path(runner.__file__).resolve().is_relative_to(Path(args.tree).resolve()), runner.__file__
    project = Path(args.project).resolve()
    os.chdir(project)
    params = load_params(ROOT / "params.yaml")
    mp, features = params["mapping"], params["features"]
    synth = runner.load_frozen_synth(project / mp["synth"])
    # Only the optimizer steps are timed (and profiled): the methods' `optimize` calls, h's and g's, wrapped.
    clock = {"s": 0.0, "prof": None}
    for mod in (cycle, lmm):
        def timed(*a, _opt=mod.optimize, **kw):
            t0 = time.perf_counter()
            if clock["prof"] is not None:
                clock["prof"].enable()
            try:
                return _opt(*a, **kw)
            finally:
                if clock["prof"] is not None:
                    clock["prof"].disable()
                clock["s"] += time.perf_counter() - t0
        mod.optimize = timed

    def train(steps: int, prof: cProfile.Profile | None = None) -> float:
        """Seconds in the optimizer steps of one run, per step (h's and g's)."""
        p = copy.deepcopy(mp)
        p["method"]["steps"] = steps
        if args.threads:
            p["method"]["threads"] = args.threads
        if "lmm" in p and not (project / "data/lm/M").is_dir():  # a project from before stage pretrain_M
            p["lmm"]["lmM_source"] = "run"  # LM^M learned in the run: fixed work, outside the steps
        clock["s"], clock["prof"] = 0.0, prof
        runner.train_run(args.method, args.K, 0, p, features, project, synth=synth)
        return clock["s"] / steps

    lo, hi = args.steps
    train(lo)  # warm-up: first-use costs (torch's compiler import, librosa, caches) out of the timed runs
    per_step = train(hi)
    prof = cProfile.Profile()
    row = {"per_step_s": per_step, "profiled_per_step_s": train(hi, prof),
           "terms_per_step_profiled_s": term_seconds(prof, hi), "threads": torch.get_num_threads()}
    print(json.dumps(row))


def run_worker(tree: Path, project: str, method: str, K: int, steps: tuple[int, int], threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--tree", str(tree), "--project", project, "--method", method,
           "--K", str(K), "--steps", *map(str, steps), "--threads", str(threads)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} on {tree}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", default=str(ROOT), help="a project folder whose pipeline has run (its data/ is read)")
    ap.add_argument("--methods", nargs="+", default=["cycle", "lmm"])
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--steps", nargs=2, type=int, default=(5, 20))
    ap.add_argument("--threads", type=int, default=0, help="torch threads of both trees (0: method.threads of params)")
    ap.add_argument("--baseline", default="HEAD", help="a commit to compare against ('none': this tree only)")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--show", nargs="+", metavar="JSON", help="print the tables of saved results, run nothing")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.show:
        return print("\n".join(table(json.loads(Path(f).read_text())) for f in args.show))
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_step_cost_") as tmp:
        trees = {"after": ROOT}
        if args.baseline != "none":
            trees = {"before": unpack_baseline(args.baseline, Path(tmp)), **trees}
        rows: dict = {}
        for method in args.methods:
            rows[method] = {name: run_worker(tree, args.project, method, args.K, tuple(args.steps), args.threads) for name, tree in trees.items()}
            r = rows[method]
            if "before" in r:
                r["speedup"] = r["before"]["per_step_s"] / r["after"]["per_step_s"]
            print(json.dumps({method: {k: (round(v["per_step_s"], 4) if isinstance(v, dict) else round(v, 2))
                                       for k, v in r.items()}}), flush=True)
            out = {"baseline": args.baseline, "threads": args.threads or "params", "K": args.K,
                   "steps": list(args.steps), "methods": rows, "wall_s": time.perf_counter() - t_all,
                   "load_avg": os.getloadavg()}
            if args.out:  # after each method: a later failure keeps what was measured
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(table(out))


def table(out: dict) -> str:
    """A Markdown table: seconds per step, by term (profiled shares scaled to the unprofiled per-step time)."""
    lines = []
    for method, r in out["methods"].items():
        trees = [t for t in ("before", "after") if t in r]
        lines += [f"\n{method} (K={out['K']}, seconds per step; terms: profiled share of the step x per-step time)",
                  "| term | " + " | ".join(trees) + " |", "|---|" + "---|" * len(trees)]
        lines.append("| **step (h + g)** | " + " | ".join(f"**{r[t]['per_step_s']:.3f}**" for t in trees) + " |")
        for term in TERMS:
            cells = []
            for t in trees:
                scale = r[t]["per_step_s"] / max(r[t]["terms_per_step_profiled_s"]["step total"], 1e-9)
                cells.append(f"{r[t]['terms_per_step_profiled_s'][term] * scale:.3f}")
            lines.append(f"| {term} | " + " | ".join(cells) + " |")
        if "speedup" in r:
            lines.append(f"| speed-up | {r['speedup']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
