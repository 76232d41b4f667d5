"""h beyond the benchmark's recording level: each method's best h on T's recordings re-levelled to a quiet take, an
ordinary recording and a hot master, and on T_timbre (the unheard piano), per family.

    rows = robustness_table(best_run_dirs, ev_data, truth)      # the evaluate stage's robustness table

T's recordings average -38 dBFS RMS (range -54 to -24); ordinary recordings sit near -20 dBFS with peaks near 0.
Each recording is scaled (in float: nothing clips) to LEVELS_DBFS RMS before its log-mel is taken, so a row
differs from another only by level. A level-invariant h gives the same row at every level.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import TEST_POOL, TIMBRE_POOL, EvaluationData, Truth
from lmm_utils.evaluation.metrics import transcription_scores
from lmm_utils.evaluation.scoring import summarize
from lmm_utils.methods.checkpoints import load_h

LEVELS_DBFS = (-45.0, -25.0, -6.0)  # a quiet take, an ordinary recording, a hot master (RMS)
SILENT_RMS = 1e-6  # below this a recording is left as it is (scaling silence would only amplify dither)


def at_rms_dbfs(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """The recording scaled to `dbfs` RMS (float; may exceed full scale, nothing is clipped)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return audio if rms < SILENT_RMS else (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def conditions(levels: tuple[float, ...] = LEVELS_DBFS) -> list[tuple[str, str, float | None]]:
    """(label, pool, level or None = as recorded)."""
    return ([("T as recorded", TEST_POOL, None)] + [(f"T at {lv:+.0f} dBFS", TEST_POOL, lv) for lv in levels]
            + [("T_timbre as recorded", TIMBRE_POOL, None)])


def h_rows(h, data: EvaluationData, truth: Truth, feat: FeatureConfig,
           levels: tuple[float, ...] = LEVELS_DBFS) -> list[dict]:
    """One row per condition and subset (all, each family): note F1, note F1 with offsets, n. Each recording is
    read once; the as-recorded log-mels come from EvaluationData's cache (the runs' predictions computed them)."""
    conds = conditions(levels)
    per_cond: list[list[dict]] = [[] for _ in conds]
    for i in truth.ids:
        t_audio = None
        for rows, (_, pool, level) in zip(per_cond, conds):
            if level is None:
                logmel = data.logmel(pool, i, feat)
            else:
                if t_audio is None:
                    t_audio, _ = data.audio(pool, i)
                logmel = log_mel(at_rms_dbfs(t_audio, level), feat)
            rows.append({"id": i, "collection": truth.collection[i], "family": family(truth.collection[i]),
                         "status": "ok", **transcription_scores(truth.perf[i], h.transcribe(logmel))})
    out = []
    for rows, (label, _, _) in zip(per_cond, conds):
        summary = summarize(rows)
        for subset in ("all", "folk", "chorales"):
            if subset in summary:
                s = summary[subset]
                out.append({"recordings": label, "subset": subset, "note_f1": s["note_f1"],
                            "note_offset_f1": s["note_offset_f1"], "n": int(s["n"])})
    return out


def robustness_table(run_dirs: dict[str, Path], data: EvaluationData, truth: Truth,
                     levels: tuple[float, ...] = LEVELS_DBFS) -> list[dict]:
    """{method: its best run's folder} -> rows (method, run, recordings, subset, note_f1, note_offset_f1, n), plus
    the spread of all-subset note F1 over the levels per method (`level_spread`: 0 = level-invariant)."""
    out = []
    for method, run_dir in sorted(run_dirs.items()):
        h = load_h(Path(run_dir) / "h.pt", lm_root=data.root)
        rows = h_rows(h, data, truth, h.feat, levels)
        at_levels = [r["note_f1"] for r in rows if r["subset"] == "all" and r["recordings"].startswith("T at")]
        spread = float(max(at_levels) - min(at_levels)) if at_levels else float("nan")
        out += [{"method": method, "run": Path(run_dir).name, **r, "level_spread": spread} for r in rows]
    return out


__all__ = ["LEVELS_DBFS", "at_rms_dbfs", "conditions", "h_rows", "robustness_table"]
