"""The Basic Pitch reference line on T and T_timbre -> data/peers/basic_pitch/ (run by notebook 09_references,
stage `references`; also `python -m lmm_utils.evaluation.peers.stage` by hand, from the main venv).

Basic Pitch runs in its own venv (.venv-bp, `make basic-pitch`) through a subprocess, so its pins never
meet the project's. Without .venv-bp the stage still succeeds and writes only status.json with
{"available": false, "note": ...}: the peer line is optional, and evaluation says it was skipped. After
`make basic-pitch`, run `dvc repro -f references` (the venv is not a DVC dependency: it may not exist).
Output layout: data/peers/basic_pitch/{T,T_timbre}/<excerpt id>.mid + status.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from lmm_utils.core.io import atomic_dir
from lmm_utils.core.paths import DATA, project_root
from lmm_utils.data.evaluation import RECORDING_POOLS, EvaluationData

BP_VENV = Path(".venv-bp")
OUT = DATA / "peers" / "basic_pitch"
POOLS = RECORDING_POOLS  # T and T_timbre
NOTE_MISSING = ("Basic Pitch is not installed (.venv-bp missing): the peer line is skipped. "
                "Install it with `make basic-pitch`, then `dvc repro -f references evaluate`.")


def bp_python(root: Path) -> Path | None:
    py = root / BP_VENV / "bin" / "python"
    return py if py.is_file() and (root / BP_VENV / ".installed").is_file() else None


def run(root: Path, out: Path = OUT, pools: tuple[str, ...] = POOLS, limit: int | None = None) -> dict:
    py = bp_python(root)
    data = EvaluationData(root)
    with atomic_dir(root / out) as tmp:
        if py is None:
            status = {"available": False, "note": NOTE_MISSING}
        else:
            status = {"available": True, "pools": {}}
            for pool in pools:
                cmd = [str(py), "-m", "lmm_utils.evaluation.peers.basic_pitch_run", str(data.audio_dir(pool)), str(tmp / pool)]
                if limit:
                    cmd += ["--limit", str(limit)]
                # stderr (progress bar) goes straight to the terminal; the last stdout line is the summary.
                proc = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"basic-pitch failed on {pool} (exit {proc.returncode}): {proc.stdout[-2000:]}")
                status["pools"][pool] = json.loads(proc.stdout.strip().splitlines()[-1])
        (tmp / "status.json").write_text(json.dumps(status, indent=2) + "\n")
    return status


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lmm_utils.evaluation.peers.stage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None, help="first N files per pool (smoke tests)")
    args = p.parse_args(argv)
    status = run(project_root(), limit=args.limit)
    print(status.get("note") or {k: {kk: v[kk] for kk in ("written", "seconds")} for k, v in status["pools"].items()})
    sys.exit(0)


if __name__ == "__main__":
    main()
