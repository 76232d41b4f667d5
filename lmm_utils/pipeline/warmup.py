"""Compile once, at install time, the numba code the stages would otherwise compile on their first call.

librosa caches its numba functions next to its source (`cache=True`), so the cost is paid once per virtual
environment -- but in a fresh one it lands inside the stages, once per process that gets there first: the DTW of
the mapping runs' pair alignment (every grid worker at once) and of evaluation's g scores, the Griffin-Lim of the
evaluate stage's gallery. Measured on this project's 2-core machine: librosa's DTW alone takes 10-28 s to compile
on its first call, 2 s afterwards (README "Time"). `make setup` runs this once after installing .venv:

    python -m lmm_utils.pipeline.warmup

numba compiles (and caches) one version per argument signature, so the warm-up goes through the project's own
functions with inputs of the types the stages pass: the pair alignment's DTW (methods.alignment), the onset DTW of
g's scores (evaluation.metrics) and the gallery's Griffin-Lim (evaluation.gallery, float32). Nothing here changes a
result: a cached function is the same machine code.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.evaluation.gallery import griffin_lim
from lmm_utils.evaluation.metrics import dtw_align_onsets
from lmm_utils.methods.alignment import AlignConfig, warping_path


def warm_librosa() -> dict[str, float]:
    """Call each numba-compiled librosa path the pipeline reaches -> seconds per call (the compile, on a fresh venv)."""
    feat = FeatureConfig()
    logmel = np.random.default_rng(0).normal(-4.0, 1.0, (feat.n_mels, 24)).astype(np.float32)
    perf = Performance([PerformedNote(60 + i % 5, 0.25 * i, 0.25 * i + 0.2, 64) for i in range(8)])
    calls = {
        "alignment_dtw": lambda: warping_path(logmel, logmel[:, ::-1].copy(), AlignConfig()),
        "metrics_dtw": lambda: dtw_align_onsets(perf, perf),
        "griffin_lim": lambda: griffin_lim(logmel, feat, n_iter=2),
    }
    seconds: dict[str, float] = {}
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
