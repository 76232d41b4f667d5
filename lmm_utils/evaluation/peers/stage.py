"""The Basic Pitch reference line on T, T_timbre and T_noisy -> data/peers/basic_pitch/ (run by notebook 09_references,
stage `references`; also `python -m lmm_utils.evaluation.peers.stage` by hand, from the main venv).

Basic Pitch runs in its own venv (.venv-bp, `make basic-pitch`) through a subprocess, so its pins never
meet the project's. Without .venv-bp the stage still succeeds and writes only status.json with
{"available": false, "note": ...}: the peer line is optional, and evaluation says it was skipped. After
`make basic-pitch`, run `dvc repro -f references` (the venv is not a DVC dependency: it may not exist).
Output layout: data/peers/basic_pitch/{T,T_timbre,T_noisy}/<excerpt id>.mid + status.json (a pool without
recordings, e.g. T_noisy on data made before it, is skipped and has no folder), and T_at_<level>dBFS/ for T's
recordings re-levelled to each of evaluation.levels.LEVELS_DBFS (the robustness table's levels; written as float
WAV to a temporary folder first, so nothing clips). With `items` (mapping.eval.max_items) each pool holds only the
excerpts the runs are scored on (EvaluationData.eval_ids) and the robustness subset -- the peer line compares on
the same audio as the runs, and the default run does not transcribe excerpts nobody scores. One Basic Pitch
process per core does every folder (its model loaded once), each a share of every folder's files.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lmm_utils.core.io import atomic_dir
from lmm_utils.core.parallel import usable_cores
from lmm_utils.core.paths import DATA, project_root
from lmm_utils.data.evaluation import RECORDING_POOLS, TEST_POOL, EvaluationData
from lmm_utils.evaluation.levels import LEVELS_DBFS, at_rms_dbfs, level_folder
from lmm_utils.evaluation.peers.basic_pitch_run import audio_files, folder_failed  # stdlib only at import

BP_VENV = Path(".venv-bp")
OUT = DATA / "peers" / "basic_pitch"
POOLS = RECORDING_POOLS  # T, T_timbre and T_noisy
NOTE_MISSING = ("Basic Pitch is not installed (.venv-bp missing): the peer line is skipped. "
                "Install it with `make basic-pitch`, then `dvc repro -f references evaluate`.")


def bp_python(root: Path) -> Path | None:
    py = root / BP_VENV / "bin" / "python"
    return py if py.is_file() and (root / BP_VENV / ".installed").is_file() else None


def transcribe(py: Path, root: Path, jobs: list[tuple[Path, Path]], limit: int | None) -> list[dict]:
    """Basic Pitch on each (recordings folder, MIDI folder) of `jobs` -> one JSON summary per job. One process of its
    own venv per usable core, each with one onnxruntime thread and every n-th file of each folder: one process with
    onnxruntime's own threads keeps 2 cores 1.66 busy, two shards 2 (60 T files: 11.7 -> 8.5 s, the same MIDI files;
    README "Time")."""
    folders = ", ".join(str(a) for a, _ in jobs)
    n = max(1, min(usable_cores(), max((len(audio_files(a, limit)) for a, _ in jobs if a.is_dir()), default=1)))
    cmd = [str(py), "-m", "lmm_utils.evaluation.peers.basic_pitch_run", *(str(p) for job in jobs for p in job)]
    if limit:
        cmd += ["--limit", str(limit)]
    env = None
    if n > 1:  # one thread a shard: onnxruntime's own, and numpy's
        cmd += ["--threads", "1"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # stderr (progress bars) goes straight to the terminal; the last stdout line is the summaries.
    procs: list[subprocess.Popen] = []
    try:
        for i in range(n):
            procs.append(subprocess.Popen(cmd + (["--shard", f"{i}/{n}"] if n > 1 else []), cwd=root,
                                          stdout=subprocess.PIPE, text=True, env=env))
        outs = [proc.communicate()[0] for proc in procs]
    finally:
        for proc in procs:  # an error (or an interrupt) leaves no shard running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in zip(procs, outs):
        if proc.returncode != 0:
            raise RuntimeError(f"basic-pitch failed on {folders} (exit {proc.returncode}): {out[-2000:]}")
    merged = [merge_summaries(parts) for parts in zip(*(json.loads(out.strip().splitlines()[-1]) for out in outs))]
    failed = [str(a) for (a, _), m in zip(jobs, merged) if folder_failed(m)]
    if failed:
        raise RuntimeError(f"basic-pitch failed on every file of {', '.join(failed)}: "
                           f"{[m['failed'] for m in merged if folder_failed(m)]!s:.2000}")
    return merged


def merge_summaries(parts: tuple[dict, ...]) -> dict:
    """One folder's summaries from its shards -> one: files and written added, failures joined, seconds the longest
    shard's (they run side by side)."""
    out = dict(parts[0])
    out.update(files=sum(p["files"] for p in parts), written=sum(p["written"] for p in parts),
               failed={k: v for p in parts for k, v in p.get("failed", {}).items()},
               seconds=max(p.get("seconds", 0.0) for p in parts))
    return out


def pool_ids(data: EvaluationData, items: int | None, robustness_items: int | None) -> list[str] | None:
    """The excerpts transcribed in each pool: the runs' subset (eval_ids(items)) and the robustness table's; None
    (all of them) without `items`."""
    if not items:
        return None
    return sorted(set(data.eval_ids(items)) | set(level_ids(data, robustness_items)))


def link_subset(data: EvaluationData, pool: str, ids: list[str], out_dir: Path) -> Path:
    """A folder of links to `pool`'s recordings of `ids` (those it has) -> out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in ids:
        src = data.audio_path(pool, i)
        if src.is_file():
            (out_dir / src.name).symlink_to(src.resolve())
    return out_dir


def level_ids(data: EvaluationData, robustness_items: int | None = None) -> list[str]:
    """T's excerpts re-levelled: the robustness table's stratified subset (EvaluationData.eval_ids), all with None."""
    return data.eval_ids(robustness_items) if robustness_items else data.audio_ids(TEST_POOL)


def write_relevelled(data: EvaluationData, dbfs: float, out_dir: Path, limit: int | None = None,
                     ids: list[str] | None = None) -> None:
    """T's recordings (`ids`, default all) scaled to `dbfs` RMS as float WAV (full scale may be exceeded; float keeps
    it unclipped)."""
    import soundfile as sf  # deferred: only this stage's level runs write audio

    out_dir.mkdir(parents=True, exist_ok=True)
    for i in (ids if ids is not None else data.audio_ids(TEST_POOL))[:limit]:
        audio, sr = data.audio(TEST_POOL, i)
        sf.write(out_dir / f"{i}.wav", at_rms_dbfs(audio.mean(1) if audio.ndim == 2 else audio, dbfs), sr,
                 subtype="FLOAT")


def run(root: Path, out: Path = OUT, pools: tuple[str, ...] = POOLS, limit: int | None = None,
        levels: tuple[float, ...] = LEVELS_DBFS, robustness_items: int | None = None, items: int | None = None) -> dict:
    """Basic Pitch on the recordings of `pools` -- the runs' subset and the robustness table's with `items`
    (mapping.eval.max_items), all of them without -- and on T re-levelled to each of `levels`, for the robustness
    table's subset only (evaluation.robustness_items; None: all of T)."""
    py = bp_python(root)
    data = EvaluationData(root)
    with atomic_dir(root / out) as tmp, tempfile.TemporaryDirectory(prefix="bp-") as work:
        if py is None:
            status = {"available": False, "note": NOTE_MISSING}
        else:
            ids = pool_ids(data, items, robustness_items)
            jobs = [(data.audio_dir(pool) if ids is None else link_subset(data, pool, ids, Path(work) / pool), tmp / pool)
                    for pool in pools if data.audio_files(pool)]
            for dbfs in levels if data.audio_files(TEST_POOL) else ():
                wav_dir = Path(work) / level_folder(dbfs)
                write_relevelled(data, dbfs, wav_dir, limit, level_ids(data, robustness_items))
                jobs.append((wav_dir, tmp / level_folder(dbfs)))
            summaries = transcribe(py, root, jobs, limit) if jobs else []
            status = {"available": True, "items": None if ids is None else len(ids),
                      "pools": {out_dir.name: s for (_, out_dir), s in zip(jobs, summaries)}}
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
