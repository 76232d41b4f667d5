"""T_noisy in the scoring path: a predictions file with h_noisy is scored on T_noisy; one written before T_noisy
existed (no h_noisy) reads as it always did, with T_noisy absent -- never zeros, never a crash."""
from pathlib import Path

import numpy as np

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.data.evaluation import Truth
from lmm_utils.evaluation import scoring
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, write_predictions
from lmm_utils.mapping import summary


def _truth() -> Truth:
    rng = np.random.default_rng(0)
    perf = {f"x{i}": Performance([PerformedNote(int(60 + rng.integers(12)), 0.3 * k, 0.3 * k + 0.2, 70)
                                  for k in range(1, 8)]) for i in range(4)}
    return Truth(perf, {i: "essenFolksong" if n % 2 else "bachChorales" for n, i in enumerate(sorted(perf))})


def _run(tmp_path: Path, truth: Truth, systems: tuple[str, ...], name: str = "lmm-K1-s0") -> Path:
    run_dir = tmp_path / "runs" / "lmm" / name
    run_dir.mkdir(parents=True)
    half = {i: Performance(p.notes[::2]) for i, p in truth.perf.items()}
    write_predictions({s: dict(truth.perf) if s != "h_noisy" else half for s in systems}, run_dir / PREDICTIONS_FILE)
    (run_dir / "metrics.json").write_text("{}")
    return run_dir


def test_h_noisy_is_scored_on_t_noisy(tmp_path):
    truth = _truth()
    rows = scoring.score_run_folder(_run(tmp_path, truth, ("h", "h_timbre", "h_noisy", "g")), truth)
    nested = scoring.nest({s: scoring.summarize(r) for s, r in rows.items()})
    assert set(nested["h"]) == {"T", "T_timbre", "T_noisy"}
    assert nested["h"]["T"]["all"]["note_f1"] == 1.0 > nested["h"]["T_noisy"]["all"]["note_f1"] > 0.4


def test_a_run_from_before_t_noisy_reports_it_absent(tmp_path):
    truth = _truth()
    run_dir = _run(tmp_path, truth, ("h", "h_timbre", "g"))
    rows = scoring.score_run_folder(run_dir, truth)
    assert set(rows) == {"h", "h_timbre", "g"} and not (run_dir / scoring.SCORES / "h_noisy.json").exists()
    run = scoring.discover_runs(tmp_path / "runs")[0]
    table = scoring.long_rows(run.name, run.method, run.K, run.seed, scoring.score_run(run, truth, cache_dir=None))
    assert {r["system"] for r in table} == {"h", "h_timbre", "g"}
    metrics = summary.read_run(run_dir)
    assert "T_noisy" not in metrics["h"] and metrics["h"]["T_timbre"]["all"]["note_f1"] == 1.0


def test_peers_without_t_noisy_have_no_t_noisy_rows(tmp_path):
    from lmm_utils.core.motion import write_midi

    truth = _truth()
    for pool in ("T", "T_timbre"):
        (tmp_path / "basic_pitch" / pool).mkdir(parents=True)
        for i in truth.ids:
            write_midi(truth.perf[i], tmp_path / "basic_pitch" / pool / f"{i}.mid")
    rows, _ = scoring.score_peers(tmp_path, truth, cache_dir=None)
    assert {r["system"] for r in rows} == {"h", "h_timbre"}
    assert {r["recordings"] for r in scoring.peer_summary(tmp_path / "basic_pitch", truth)} == {"T", "T_timbre"}
