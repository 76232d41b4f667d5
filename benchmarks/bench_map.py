"""Wall and CPU time of the mapping sweep's runs, each run exactly as DVC runs it (the stage command of
`map@<method>-<K>-<seed>`: papermill on notebooks/07_map.ipynb), without DVC's lock -- so it can run beside
colleagues' `dvc` commands. Writes the runs' outputs where DVC would (data/runs, reports/map,
reports/metrics/map); `dvc commit map` (or a later `dvc repro`) adopts them.

    .venv/bin/python benchmarks/bench_map.py                              # the sweep of params.yaml
    .venv/bin/python benchmarks/bench_map.py --methods lmm cycle --Ks 0 4 --seeds 0 --out /tmp/bench_map.json
    .venv/bin/python benchmarks/bench_map.py --summary                    # then run the summary notebook too
    python benchmarks/bench_map.py --jobs 8 --summary                     # a GPU machine: 8 runs at a time

Per run: wall seconds, CPU seconds of the stage process and its children (user + sys; on a shared machine
CPU time is the better estimate of wall time on an idle one), and the run's own train / eval seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stage_cmd(method: str, K: int, seed: int) -> list[str]:
    name = f"{method}-K{K}-s{seed}"
    return [sys.executable, "-m", "lmm_utils.pipeline.stage", "notebooks/07_map.ipynb", "--sections", "mapping,features",
            "-p", f"method={method}", "-p", f"K={K}", "-p", f"seed={seed}", "--out", f"reports/map/{name}.ipynb"]


def run_one(m: str, k: int, s: int, env: dict, log_dir: Path) -> dict:
    """One stage command; its CPU time from os.wait4 (this child and what it waited for)."""
    name = f"{m}-K{k}-s{s}"
    log = log_dir / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(stage_cmd(m, k, s), cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    row = {"run": name, "rc": proc.returncode, "wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime}
    f = ROOT / "data/runs" / name / "metrics.json"
    if proc.returncode == 0 and f.is_file():
        met = json.loads(f.read_text())
        row.update(train_s=met["train"]["seconds"], eval_s=met["eval"]["seconds"],
                   h_note_f1=met["h"]["T"]["all"].get("note_f1"), g_note_f1=met["g"]["T"]["all"].get("note_f1"))
    else:
        row["error"] = log.read_text()[-2000:]
    return row


def main() -> None:
    from concurrent.futures import ThreadPoolExecutor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+")
    ap.add_argument("--Ks", nargs="+", type=int)
    ap.add_argument("--seeds", nargs="+", type=int)
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (independent processes; e.g. 8 on a GPU box)")
    ap.add_argument("--out", default="reports/bench_map.json")
    ap.add_argument("--summary", action="store_true", help="run notebooks/08_summary.ipynb at the end")
    ap.add_argument("--skip-done", action="store_true", help="skip runs whose metrics.json exists")
    args = ap.parse_args()
    mp = yaml.safe_load((ROOT / "params.yaml").read_text())["mapping"]
    methods, Ks, seeds = args.methods or mp["methods"], args.Ks or mp["Ks"], args.seeds or mp["seeds"]
    runs = [(m, k, s) for k in Ks for m in methods for s in seeds]
    if args.skip_done:
        runs = [(m, k, s) for m, k, s in runs if not (ROOT / "data/runs" / f"{m}-K{k}-s{s}" / "metrics.json").is_file()]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log_dir = Path(tempfile.mkdtemp(prefix="bench_map_"))
    rows, t_all = [], time.perf_counter()

    def done(row: dict) -> None:
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "error"}),
              flush=True)
        if "error" in row:
            print(row["error"], file=sys.stderr, flush=True)
        out = {"runs": rows, "n": len(rows), "jobs": args.jobs, "wall_s": time.perf_counter() - t_all,
               "cpu_s": sum(r["cpu_s"] for r in rows), "load_avg": os.getloadavg()}
        (ROOT / args.out).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / args.out).write_text(json.dumps(out, indent=1) + "\n")

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for fut in [pool.submit(run_one, m, k, s, env, log_dir) for m, k, s in runs]:
            done(fut.result())
    if args.summary:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lmm_utils.pipeline.stage", "notebooks/08_summary.ipynb", "--sections", "mapping",
                        "--out", "reports/08_summary.ipynb"], cwd=ROOT, env=env, check=True)
        print(f"summary: {time.perf_counter() - t0:.1f} s")
    print(f"{len(rows)} runs: wall {time.perf_counter() - t_all:.0f} s, CPU {sum(r['cpu_s'] for r in rows):.0f} s")


if __name__ == "__main__":
    main()
