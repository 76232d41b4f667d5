"""The install-time numba warm-up (make setup): it goes through the project's own DTW and Griffin-Lim callers, so
numba compiles the signatures the stages use (no assertion on time: it reports seconds)."""
import numpy as np


def test_warm_librosa_calls_the_pipelines_numba_paths():
    from lmm_utils.pipeline.warmup import warm_librosa

    seconds = warm_librosa()
    assert set(seconds) == {"alignment_dtw", "metrics_dtw", "griffin_lim"}
    assert all(np.isfinite(v) and v >= 0 for v in seconds.values())



def test_the_gallerys_griffin_lim_signature_is_compiled():
    """The gallery passes float32 magnitudes: after the warm-up, librosa's overlap-add has a float32 version."""
    import librosa.core.spectrum as spectrum

    from lmm_utils.pipeline.warmup import warm_librosa

    warm_librosa()
    overlap_add = getattr(spectrum, "__overlap_add")
    assert any("float32" in str(sig) for sig in overlap_add.signatures), overlap_add.signatures
