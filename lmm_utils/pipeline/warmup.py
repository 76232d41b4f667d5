"""Compile once, at install time, the numba code the stages would otherwise compile on their first call.

librosa caches its numba functions next to its source (`cache=True`), so the cost is paid once per virtual
environment -- but in a fresh one it lands inside the stages, once per process that gets there first: the DTW of
the mapping runs' pair alignment (every grid worker at once) and of evaluation's g scores, the Griffin-Lim of the
evaluate stage's gallery. Measured on this project's 2-core machine: librosa's DTW alone takes 10-28 s to compile
on its first call, 2 s afterwards (README "Time"). `make setup` runs this once after installing .venv:

    python -m lmm_utils.pipeline.warmup

The calls below use the argument types the pipeline uses (numba compiles, and caches, one version per signature):
float64 cost matrices with and without a band (methods.alignment, evaluation.metrics), float magnitudes for
Griffin-Lim (evaluation.gallery). Nothing here changes a result: a cached function is the same machine code.
"""
from __future__ import annotations

import time
import warnings

import numpy as np


def warm_librosa() -> dict[str, float]:
    """Call each numba-compiled librosa path the pipeline reaches -> seconds per call (the compile, on a fresh venv)."""
    import librosa  # deferred: numba's import and LLVM start cost ~2 s; only install time needs it here

    seconds: dict[str, float] = {}
    cost = np.random.default_rng(0).random((24, 30))
    calls = {
        "dtw_band": lambda: librosa.sequence.dtw(C=cost, global_constraints=True, band_rad=0.25),
        "dtw": lambda: librosa.sequence.dtw(C=cost),
        "griffinlim": lambda: librosa.griffinlim(np.ones((257, 8)), n_iter=2, hop_length=128, n_fft=512),
    }
    for name, call in calls.items():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        seconds[name] = time.perf_counter() - t
    return seconds


def main() -> None:
    seconds = warm_librosa()
    print("numba warm-up (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
