"""Wall and CPU time of the mapping sweep, each method's stage exactly as DVC runs it (the command of
`map@<method>`: papermill on notebooks/07_map.ipynb, which runs the method's K x seed grid in one process), without
DVC's lock -- so it can run beside colleagues' `dvc` commands, and several methods at a time (--jobs). Writes the
outputs where DVC would (data/runs/<method>, reports/map, reports/metrics/map); `dvc commit map` (or a later
`dvc repro`) adopts them. Finished runs with an unchanged fingerprint are reused, as in the pipeline.

    .venv/bin/python benchmarks/bench_map.py                              # the sweep of params.yaml
    .venv/bin/python benchmarks/bench_map.py --methods lmm cycle --out /tmp/bench_map.json
    .venv/bin/python benchmarks/bench_map.py --jobs 2 --summary           # two methods at a time, then the summary

Per method: wall seconds and CPU seconds of the stage process and its children (user + sys; on a shared machine
CPU time is the better estimate of wall time on an idle one); per run: its own train / eval seconds and whether
it was reused.
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
sys.path.insert(0, str(ROOT))


def stage_cmd(method: str) -> list[str]:
    return [sys.executable, "-m", "lmm_utils.pipeline.stage", "notebooks/07_map.ipynb", "--sections", "mapping,features",
            "-p", f"method={method}", "--out", f"reports/map/{method}.ipynb"]


def run_one(method: str, Ks: list[int], seeds: list[int], env: dict, log_dir: Path) -> dict:
    """One method's stage command; its CPU time from os.wait4 (this child and what it waited for)."""
    from lmm_utils.core.paths import RUNS_DIR, run_name, run_path

    log = log_dir / f"{method}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(stage_cmd(method), cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    row = {"method": method, "rc": proc.returncode, "wall_s": time.perf_counter() - t0,
           "cpu_s": ru.ru_utime + ru.ru_stime, "runs": []}
    if proc.returncode != 0:
        row["error"] = log.read_text()[-2000:]
    for k in Ks:
        for s in seeds:
            f = run_path(ROOT / RUNS_DIR, method, k, s) / "metrics.json"
            if f.is_file():
                met = json.loads(f.read_text())
                row["runs"].append({"run": run_name(method, k, s), "train_s": met["train"]["seconds"],
                                    "eval_s": met["eval"]["seconds"], "h_note_f1": met["h"]["T"]["all"].get("note_f1"),
                                    "g_note_f1": met["g"]["T"]["all"].get("note_f1")})
    return row


def main() -> None:
    from concurrent.futures import ThreadPoolExecutor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+")
    ap.add_argument("--jobs", type=int, default=1, help="methods at a time (independent processes; e.g. 8 on a GPU box)")
    ap.add_argument("--out", default="reports/bench_map.json")
    ap.add_argument("--summary", action="store_true", help="run notebooks/08_summary.ipynb at the end")
    args = ap.parse_args()
    mp = yaml.safe_load((ROOT / "params.yaml").read_text())["mapping"]
    methods, Ks, seeds = args.methods or mp["methods"], mp["Ks"], mp["seeds"]
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
        for fut in [pool.submit(run_one, m, Ks, seeds, env, log_dir) for m in methods]:
            done(fut.result())
    if args.summary:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lmm_utils.pipeline.stage", "notebooks/08_summary.ipynb", "--sections", "mapping",
                        "--out", "reports/08_summary.ipynb"], cwd=ROOT, env=env, check=True)
        print(f"summary: {time.perf_counter() - t0:.1f} s")
    print(f"{len(rows)} methods: wall {time.perf_counter() - t_all:.0f} s, CPU {sum(r['cpu_s'] for r in rows):.0f} s")


if __name__ == "__main__":
    main()
