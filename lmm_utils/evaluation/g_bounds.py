"""Where a g can land on T: its ceiling and its floor, scored like every g (evaluation.metrics.performance_scores).

    rows = bounds_table(ev_data, truth, params["perform"])      # the evaluate stage's g table

ceiling  a second rendition of each T score by the benchmark's own pianist (data.pianist, the ground-truth
         generator) with another seed, scored against the first: how far two performances by the generator itself
         agree. It bounds what a g that plays *like* the pianist can reach; a g that plays the pianist's expected
         performance can pass it on timing, where the random drift dominates (the metronome does, on the default
         run: onset deviation 32 ms against the second rendition's 45).
floor    the plain performer (models.performer.plain_performance): metronome timing, the dynamics marks' velocity,
         legato durations -- what a g that learned nothing plays.

Evaluation only: the pianist is read here to bound the metrics, never by a method.
"""
from __future__ import annotations

import numpy as np

from lmm_utils.data.corpus import FAMILIES, family
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.data.excerpts import stable_seed
from lmm_utils.data.pianist import PianistConfig, perform
from lmm_utils.evaluation.metrics import performance_scores
from lmm_utils.evaluation.scoring import summarize
from lmm_utils.models.performer import plain_performance

CEILING_SEED_OFFSET = 1  # T's truth was played with perform.seed; the ceiling's second rendition with seed + 1
COLUMNS = ("velocity_r", "log_ioi_r", "articulation_r", "onset_dev_ms", "note_f1", "tempo_log_error", "velocity_mae",
           "pedal_f1")


def bound_performances(data: EvaluationData, truth: Truth, perform_section: dict) -> dict[str, dict]:
    """{"ceiling": {id: Performance}, "floor": {id: Performance}} for the excerpts of `truth`."""
    scores = data.scores("T")
    pianist = PianistConfig.from_params(perform_section["pianist"])
    seed = int(perform_section["seed"]) + CEILING_SEED_OFFSET
    out: dict[str, dict] = {"ceiling": {}, "floor": {}}
    for i in truth.ids:
        out["ceiling"][i] = perform(scores[i], pianist, np.random.default_rng(stable_seed(seed, i)))
        out["floor"][i] = plain_performance(scores[i])
    return out


def bounds_table(data: EvaluationData, truth: Truth, perform_section: dict) -> list[dict]:
    """One row per bound and subset (all, each family): the g metrics of COLUMNS and n."""
    rows = []
    for name, perfs in bound_performances(data, truth, perform_section).items():
        per_excerpt = [{"id": i, "collection": truth.collection[i], "family": family(truth.collection[i]),
                        "status": "ok", **performance_scores(truth.perf[i], perfs[i])} for i in truth.ids]
        summary = summarize(per_excerpt)
        for subset in ("all", *FAMILIES):
            if subset in summary:
                rows.append({"g": name, "subset": subset, **{k: summary[subset].get(k) for k in COLUMNS},
                             "n": int(summary[subset]["n"])})
    return rows


__all__ = ["CEILING_SEED_OFFSET", "COLUMNS", "bound_performances", "bounds_table"]
