"""The install-time numba warm-up (make setup): every path it names is called, and a second call is served
from numba's cache (no assertion on time: it reports seconds, the README's Time section reads them)."""
import numpy as np


def test_warm_librosa_calls_the_pipelines_numba_paths():
    from lmm_utils.pipeline.warmup import warm_librosa

    seconds = warm_librosa()
    assert set(seconds) == {"dtw_band", "dtw", "griffinlim"}
    assert all(np.isfinite(v) and v >= 0 for v in seconds.values())

