"""Stage evaluation: scoring predictions against T's true motion (scoring), sample-efficiency curves (curves),
the evaluate stage's tables and metrics (report), the LMs' checks (lm_eval), figures (plots), the gallery.

EvaluationData -- the one reader of T, T_timbre and ground-truth motion -- lives in lmm_utils.data.evaluation
(the data card and the LM reports read T too) and is re-exported here.
"""
from __future__ import annotations

__all__ = ["EvaluationData", "Truth"]


def __getattr__(name: str):
    # Deferred on purpose: peers/basic_pitch_run.py runs in .venv-bp, which lacks the project's dependencies,
    # and importing it imports this package; so nothing is imported here until EvaluationData is asked for.
    if name in __all__:
        from lmm_utils.data import evaluation  # deferred: see above

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
