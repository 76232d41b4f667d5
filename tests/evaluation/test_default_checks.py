"""The default run's 'meaningful' checks, from a summary.json: each can fail, and an undecidable one fails."""
import json

import pytest

from lmm_utils.evaluation.default_checks import (
    DEFAULT_END,
    DEFAULT_START,
    level,
    meaningful_checks,
    monotone,
    render_checks,
    steady,
    write_checks_section,
)


def _cell(mean: float, sd: float | None, n: int = 3) -> dict:
    return {"n_seeds": n, "h": {"note F1": mean}, "h_std": {"note F1": sd}}


def _summary(sup: dict[int, tuple[float, float]], **other: dict[int, tuple[float, float]]) -> dict:
    out = {f"supervised-K{K}": _cell(*v) for K, v in sup.items()}
    for method, curve in other.items():
        out.update({f"{method.replace('_', '-')}-K{K}": _cell(*v) for K, v in curve.items()})
    return out


GOOD = {1: (0.60, 0.29), 4: (0.93, 0.03), 16: (0.94, 0.02)}


def test_a_good_default_passes_every_check():
    checks = meaningful_checks(_summary(GOOD, lmm={0: (0.76, 0.13)}))
    assert [c.passed for c in checks] == [True, True, True]
    assert "0.600 → 0.930 → 0.940" in checks[0].detail


def test_monotone_forgives_a_drop_inside_the_band_and_not_beyond():
    inside = {1: (0.60, 0.29), 4: (0.93, 0.03), 16: (0.92, 0.02)}   # band at 16 reaches 0.93
    beyond = {1: (0.60, 0.29), 4: (0.93, 0.003), 16: (0.85, 0.003)}
    assert monotone(_summary(inside)).passed
    bad = monotone(_summary(beyond))
    assert not bad.passed and "K 4 → 16" in bad.detail
    assert not monotone(_summary({16: (0.9, 0.01)})).passed          # one K: nothing to compare


def test_level_needs_K16_at_0_80():
    assert not level(_summary({1: (0.5, 0.1), 16: (0.79, 0.01)})).passed
    missing = level(_summary({1: (0.5, 0.1), 4: (0.9, 0.01)}))
    assert not missing.passed and "no K = 16" in missing.detail


def test_steady_fails_on_a_wide_method_and_on_a_single_seed():
    wide = steady(_summary(GOOD, lmm={4: (0.9, 0.05)}))
    assert not wide.passed and "lmm K 4: 0.050" in wide.detail
    assert "supervised K 16: 0.020" in wide.detail and "largest 0.050" in wide.detail   # each cell with its own sd
    one = steady(_summary(GOOD, basis={16: (0.9, None, 1)}))
    assert not one.passed and "one seed" in one.detail
    assert steady(_summary(GOOD, lmm={0: (0.7, 0.2)})).passed       # K < 4 is not held to it


def test_the_readme_section_is_written_between_the_markers_only(tmp_path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res/summary.json").write_text(json.dumps(_summary(GOOD)))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{DEFAULT_START}\nold\n{DEFAULT_END}\nafter\n")
    section = write_checks_section(tmp_path / "res", readme)
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "| monotone | pass |" in section and section in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="needs exactly one"):
        write_checks_section(tmp_path / "res", readme)
    assert readme.read_text() == "no markers\n"
    with pytest.raises(FileNotFoundError, match="collect the default run"):
        render_checks(tmp_path / "nowhere")


def test_the_committed_readme_holds_the_checks_of_the_committed_default_run(monkeypatch):
    """The README's checks are the ones reports/default/summary.json gives (regenerate with
    scripts/write_results.py --default reports/default after collecting a new default run)."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    text = Path("README.md").read_text()
    between = text[text.index(DEFAULT_START) + len(DEFAULT_START):text.index(DEFAULT_END)].strip()
    assert between == render_checks("reports/default").strip()
