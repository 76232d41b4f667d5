"""One method's K x seed grid in one process, with a cache entry per run.

    from lmm_utils.mapping import grid
    done = grid.run_grid("lmm", Ks=[0, 1, 4], seeds=[0, 1, 2], map_params=params["mapping"],
                         features=params["features"])          # -> [GridRun(name, K, seed, reused, metrics)]

Why a grid and not one process per run: a run's fixed cost -- starting Python and a kernel, importing torch (and
its compiler, which the first optimizer pulls in), loading S -- was ~6 s of every run, as much as a short run's
learning. The pipeline runs one stage per method (map@<method>) whose process runs that method's grid.

Each run keeps its own folder (data/runs/<method>/<run>/) and its own cache entry: metrics.json records a
fingerprint of everything the run depends on -- the method, K, seed, the run's params (the mapping section less
the sweep lists, and the features), the source of every lmm_utils module loaded to run it, and the contents of
the data it reads (S, the LMs, the splits, scores, audio and the motion evaluation reads; JSON files without their
timings). A run whose folder holds
a finished run with the same fingerprint is reused, not re-run; so adding a K, a seed or a method to params.yaml
runs only the new runs, although DVC re-runs the whole map@<method> stage (its outputs are `persist`ed). The
scoring code (lmm_utils.evaluation) is not part of the fingerprint: when it changes, a reused run's saved
predictions are re-scored (mapping.run.rescore) instead of the run being trained again.
"""
from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from lmm_utils.core.io import jsonable, untimed
from lmm_utils.core.parallel import usable_cores
from lmm_utils.core.paths import (
    AUDIO_DIR,
    MOTION_DIR,
    RUN_METRICS_DIR,
    RUNS_DIR,
    SCORES_DIR,
    SPLITS,
    run_name,
    run_path,
)
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.mapping import run as runner
from lmm_utils.methods import check_method

# The sweep's lists and how it is scheduled: which runs exist and where they run, not how one run behaves.
SWEEP_KEYS = ("methods", "Ks", "seeds", "method_Ks", "workers")
FINGERPRINT_KEY = "fingerprint"


@dataclass
class GridRun:
    name: str
    K: int
    seed: int
    reused: bool
    seconds: float
    metrics: dict


# Code that scores or shows a run, not what it learns or predicts: a change re-scores the saved predictions
# (mapping.run.rescore), it does not re-train.
NOT_TRAINING_CODE = ("lmm_utils.evaluation", "lmm_utils.pipeline", "lmm_utils.app")


def code_fingerprint() -> str:
    """Of the source of every lmm_utils module loaded in this process (call it after the run's code is imported:
    the methods, S's model code), less the scoring and display code (NOT_TRAINING_CODE)."""
    h = hashlib.sha1()
    for name in sorted(m for m in sys.modules if (m == "lmm_utils" or m.startswith("lmm_utils."))
                       and not m.startswith(NOT_TRAINING_CODE)):
        f = getattr(sys.modules[name], "__file__", None)
        if f and Path(f).is_file():
            h.update(name.encode() + b"\0" + Path(f).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _content(f: Path) -> bytes:
    """A file's bytes; a JSON file's content without its timings (a re-run writes other seconds, same data)."""
    data = f.read_bytes()
    if f.suffix == ".json":
        try:
            return json.dumps(untimed(json.loads(data)), sort_keys=True).encode()
        except ValueError:
            pass
    return data


def _hash_tree(h, path: Path, root: Path) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else ([path] if path.is_file() else [])
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + _content(f) + b"\0")


def data_fingerprint(map_params: dict, root: str | Path = ".") -> str:
    """Of the contents (not the times: DVC restores files with new ones) of what a run reads."""
    root = Path(root)
    h = hashlib.sha1()
    lm = map_params.get("lm") or {}
    for rel in (map_params.get("synth", "data/synth/S.pt"), *sorted(lm.values()), SPLITS, SCORES_DIR, AUDIO_DIR,
                MOTION_DIR):
        _hash_tree(h, root / rel, root)
    return h.hexdigest()[:16]


def run_fingerprint(method: str, K: int, seed: int, map_params: dict, features: dict | None, code_fp: str,
                    data_fp: str) -> str:
    settings = {k: v for k, v in map_params.items() if k not in SWEEP_KEYS}
    doc = {"method": method, "K": int(K), "seed": int(seed), "mapping": settings, "features": features or {},
           "code": code_fp, "data": data_fp}
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_metrics(run_dir: Path, fingerprint: str) -> dict | None:
    """The run's metrics when its folder holds a finished run made from the same inputs, else None."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if metrics.get(FINGERPRINT_KEY) != fingerprint or not any((run_dir / "scores").glob("*.json")):
        return None
    return metrics


def run_grid(method: str, Ks: list[int], seeds: list[int], map_params: dict, features: dict | None = None,
             root: str | Path = ".", runs_dir: str | Path | None = None, metrics_dir: str | Path | None = None,
             progress: bool = False, log=print, workers: int | None = None) -> list[GridRun]:
    """Every (K, seed) run of `method`, reusing finished runs with the same fingerprint. S is loaded once per process.

    workers (default mapping.workers, else 1): runs trained at once, each in its own process with
    method.threads // workers torch threads; 0 = auto (plan_workers: from the cores up, so that the grid's last runs
    leave no core idle; method.threads // cores threads each). Why: a run's ops are small (a ~16k-parameter conv net on 4 crops), so a
    second thread inside one run buys little, while a second run beside it keeps both cores busy."""
    check_method(method)
    root = Path(root)
    runs_dir = Path(runs_dir or root / RUNS_DIR)
    metrics_dir = Path(metrics_dir or root / RUN_METRICS_DIR)
    setting = workers if workers is not None else map_params.get("workers", 1)
    setting = max(0, int(setting if setting is not None else 1))
    device = runner.default_device(map_params.get("device", "auto"))
    # loaded before the fingerprint, so S's model code (imported here) is part of it
    synth = runner.load_frozen_synth(root / map_params.get("synth", "data/synth/S.pt"), str(device))
    code_fp, data_fp = code_fingerprint(), data_fingerprint(map_params, root)
    ev = EvaluationData(root)  # one evaluation door for the grid: T's scores and motion read once
    done: dict[tuple[int, int], GridRun] = {}
    todo: list[tuple[int, int, str]] = []

    def record(K: int, seed: int, reused: bool, seconds: float, metrics: dict) -> None:
        # as the metrics file stores them (NaN -> None), so a fresh run and a reused one read the same
        done[(K, seed)] = run = GridRun(run_name(method, K, seed), int(K), int(seed), reused, seconds, jsonable(metrics))
        if log:
            log(f"{run.name}: {'reused (same fingerprint)' if reused else 'ran'} in {run.seconds:.1f} s")

    for K, seed in dict.fromkeys((int(K), int(seed)) for K in Ks for seed in seeds):  # a repeated K or seed: once
        fp = run_fingerprint(method, K, seed, map_params, features, code_fp, data_fp)
        t0 = time.perf_counter()
        metrics = finished_metrics(run_path(runs_dir, method, K, seed), fp)
        if metrics is None:
            todo.append((int(K), int(seed), fp))
        else:  # the metric code may have changed since: re-score the saved predictions, do not re-train
            metrics, _ = runner.rescore(run_path(runs_dir, method, K, seed), ev, metrics_dir)
            record(K, seed, True, time.perf_counter() - t0, metrics)

    jobs = [(method, K, seed, fp) for K, seed, fp in todo]
    if setting == 0 and device.type != "cpu":
        setting = 2  # auto sizes CPU work; on an accelerator every process holds its own context: two, as before
    workers = plan_workers(setting, len(jobs))
    # A run's threads are a function of the settings and the machine alone (threads // workers, or // the cores when
    # workers is auto), never of how many runs are pending, so a run re-made later does the same arithmetic.
    shares = setting or usable_cores()
    run_params = _per_worker_params(map_params, shares) if shares > 1 else map_params
    if workers == 1 or len(jobs) <= 1:
        threads_before = torch.get_num_threads()
        try:
            for job in jobs:
                t0 = time.perf_counter()
                metrics = _train_and_score(job, run_params, features, root, progress, runs_dir, metrics_dir, synth, ev)
                record(job[1], job[2], False, time.perf_counter() - t0, metrics)
        finally:
            torch.set_num_threads(threads_before)
    else:
        # spawn, not fork: the parent has torch's thread pools running; a forked child would inherit them broken
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_worker_init,
                                 initargs=(str(root), run_params)) as pool:
            futures = {pool.submit(_worker_run, job, run_params, features, str(root), str(runs_dir), str(metrics_dir)):
                       job for job in jobs}
            try:
                for fut in as_completed(futures):
                    _, K, seed, _ = futures[fut]
                    metrics, seconds = fut.result()
                    record(K, seed, False, seconds, metrics)
            except BaseException:  # a failed run stops the grid now, as it does with one worker: drop the queued runs
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return [done[(int(K), int(seed))] for K in Ks for seed in seeds]


def plan_workers(setting: int, n_jobs: int, cores: int | None = None) -> int:
    """Processes for a grid of n_jobs pending runs. setting > 0: that many (at most n_jobs). 0 (auto): for runs of
    about equal length, one thread each, the count from `cores` up that leaves no core idle at the grid's end --
    3 runs on 2 cores all at once (1.5 run lengths of wall) rather than two, then one alone (2) -- the smallest of the
    best (benchmarks/bench_workers.py measures what the extra processes cost)."""
    if setting > 0:
        return max(1, min(setting, n_jobs))
    cores = cores or usable_cores()
    if n_jobs <= 1 or cores <= 1:
        return 1

    def wall(w: int) -> float:  # in run lengths: full rounds of w runs sharing the cores, then the rest
        full, rest = divmod(n_jobs, w)
        return full * max(1.0, w / cores) + (max(1.0, rest / cores) if rest else 0.0)

    return min(range(min(cores, n_jobs), n_jobs + 1), key=lambda w: (wall(w), w))


def _train_and_score(job: tuple, map_params: dict, features: dict | None, root: Path, progress: bool,
                     runs_dir: Path, metrics_dir: Path, synth, ev: EvaluationData) -> dict:
    method, K, seed, fp = job
    return runner.run(method, K, seed, map_params, features, root, progress, runs_dir, metrics_dir,
                      synth=synth, extra={FINGERPRINT_KEY: fp}, data=ev)


def _per_worker_params(map_params: dict, workers: int) -> dict:
    """The mapping section a worker runs with: the cores shared out (method.threads // workers, at least 1).
    The fingerprint is of the section as given, so a run is reused whatever the worker count."""
    p = copy.deepcopy(map_params)
    method = p.setdefault("method", {})
    method["threads"] = max(1, int(method.get("threads", 1) or 1) // workers)
    return p


_WORKER: dict = {}  # per worker process: S and the evaluation door, loaded once by _worker_init


def _worker_init(root: str, map_params: dict) -> None:
    torch.set_num_threads(int(map_params["method"]["threads"]))
    device = runner.default_device(map_params.get("device", "auto"))
    _WORKER["synth"] = runner.load_frozen_synth(Path(root) / map_params.get("synth", "data/synth/S.pt"), str(device))
    _WORKER["ev"] = EvaluationData(Path(root))


def _worker_run(job: tuple, map_params: dict, features: dict | None, root: str, runs_dir: str,
                metrics_dir: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    metrics = _train_and_score(job, map_params, features, Path(root), False, Path(runs_dir), Path(metrics_dir),
                               _WORKER["synth"], _WORKER["ev"])
    return jsonable(metrics), time.perf_counter() - t0


def grid_table(done: list[GridRun]) -> dict[str, dict]:
    """{run: h note F1 on T / T_timbre / T_noisy, g note F1, train / eval seconds, reused} for the stage's notebook."""
    def get(m: dict, *keys):
        for k in keys:
            m = m.get(k, {}) if isinstance(m, dict) else {}
        return m if isinstance(m, (int, float)) else None

    return {r.name: {"K": r.K, "seed": r.seed, "h T": get(r.metrics, "h", "T", "all", "note_f1"),
                     "h T_timbre": get(r.metrics, "h", "T_timbre", "all", "note_f1"),
                     "h T_noisy": get(r.metrics, "h", "T_noisy", "all", "note_f1"),
                     "g T": get(r.metrics, "g", "T", "all", "note_f1"),
                     "train s": get(r.metrics, "train", "seconds"), "eval s": get(r.metrics, "eval", "seconds"),
                     "reused": r.reused} for r in done}


__all__ = ["GridRun", "run_grid", "plan_workers", "grid_table", "code_fingerprint", "data_fingerprint", "run_fingerprint",
           "finished_metrics", "SWEEP_KEYS"]
