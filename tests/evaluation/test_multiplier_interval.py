"""The effective-data multiplier's interval over seeds (a percentile bootstrap): a known shift is recovered and
covered, noise-free seeds give a zero-width interval, one seed gives none, the same seed gives the same interval,
and the rows reach evaluate.json and the multiplier figure; paired resampling (one seed draw for both methods)
sees a per-seed shift that independent resampling blurs."""
import json
import math

import numpy as np
import pytest

from lmm_utils.evaluation import curves, report

CURVE = curves.Curve("h", "note_f1", "all")
REF_KS = (0, 1, 2, 4, 8, 16, 32, 64)


def _ref(K: float) -> float:
    """The reference's quality: linear in x = log2(K + 1), so interpolating its curve is exact."""
    return 0.1 + 0.1 * math.log2(K + 1)


def table(offsets_target: list[float], offsets_ref: list[float], factor: float = 4.0,
          target_ks: tuple[int, ...] = (1, 4, 16)) -> list[dict]:
    """Long-table rows (what scoring.collect gives): the target at K is the reference at factor * K, each seed
    shifted by its offset at every K (offsets summing to 0 leave the mean curves exact)."""
    rows = []
    for method, ks, offsets, f in (("supervised", REF_KS, offsets_ref, 1.0), ("lmm", target_ks, offsets_target, factor)):
        for K in ks:
            for seed, off in enumerate(offsets):
                rows.append({"run": f"{method}-K{K}-s{seed}", "method": method, "K": K, "seed": seed, "system": "h",
                             "subset": "all", "metric": "note_f1", "value": _ref(f * K) + off})
    return rows


def rows_by_k(rows: list[dict], **kw) -> dict[int, dict]:
    return {r["K"]: r for r in curves.multiplier(curves.curve_points(rows, CURVE), **kw)}


def test_a_known_shift_is_recovered_and_inside_its_interval():
    rows = rows_by_k(table([-0.02, 0.0, 0.02], [-0.01, 0.0, 0.01], target_ks=(1, 2, 4)))
    for K in (1, 2, 4):  # K' = 4, 8, 16: inside the reference's range even for the resamples' extremes
        r = rows[K]
        assert r["multiplier"] == pytest.approx(4.0) and r["bound"] == "exact"
        assert r["multiplier_lo"] < 4.0 < r["multiplier_hi"]
        assert r["n_seeds"] == 3 and r["n_resamples"] == curves.BOOTSTRAP_RESAMPLES and r["confidence"] == 0.95
        assert r["display"] == f"4x {r['interval_display']}" and r["interval_display"].startswith("[")


def test_noise_free_seeds_give_a_zero_width_interval():
    rows = rows_by_k(table([0.0, 0.0, 0.0], [0.0, 0.0]))
    for K in (1, 4, 16):
        assert rows[K]["multiplier_lo"] == pytest.approx(4.0, abs=1e-9)
        assert rows[K]["multiplier_hi"] == pytest.approx(4.0, abs=1e-9)
        assert rows[K]["n_above_max"] == rows[K]["n_below_min"] == 0
    assert rows[4]["display"] == "4x [4, 4]"


def test_fewer_than_two_seeds_gives_no_interval():
    rows = rows_by_k(table([0.0], [-0.01, 0.01]))
    assert rows[4]["multiplier"] == pytest.approx(4.0)
    assert rows[4]["multiplier_lo"] is None and rows[4]["multiplier_hi"] is None
    assert rows[4]["display"] == "4x (no interval: fewer than 2 seeds)" and rows[4]["n_seeds"] == 1


def test_the_interval_is_deterministic_given_the_seed_and_the_level_matters():
    noise = np.random.default_rng(0).normal(0.0, 0.02, size=(2, 6))
    t = table(list(noise[0] - noise[0].mean()), list(noise[1] - noise[1].mean()), target_ks=(1, 2, 4))
    a, b = rows_by_k(t, seed=7), rows_by_k(t, seed=7)
    assert a == b
    c = rows_by_k(t, seed=8)
    assert any(a[K]["multiplier_lo"] != c[K]["multiplier_lo"] for K in a)  # the seed is what fixes it
    narrow = rows_by_k(t, seed=7, confidence=0.5)
    assert narrow[4]["multiplier_hi"] - narrow[4]["multiplier_lo"] < a[4]["multiplier_hi"] - a[4]["multiplier_lo"]


def test_resamples_outside_the_reference_range_are_counted_and_bound_the_interval():
    # the target at K = 16 is the reference at K = 64, its largest: half the resamples fall beyond it
    rows = rows_by_k(table([-0.05, 0.0, 0.05], [-0.05, 0.0, 0.05]))
    r = rows[16]
    assert r["n_above_max"] > 0 and r["multiplier_hi"] is None and r["interval_bound"]["hi"] == "above_max"
    assert r["interval_display"].endswith("> 4]")
    # the target at K = 1 well above the reference's smallest K: resamples reached at K = 0 read "<= ..."
    low = rows_by_k(table([-0.2, 0.0, 0.2], [0.0, 0.0, 0.0], factor=1.0))[1]
    assert low["n_below_min"] > 0 and low["interval_display"].startswith("[<= 0")


def test_lower_is_better_curves_flip_the_direction():
    rows = [{**r, "metric": "velocity_mae", "value": 1.0 - r["value"]} for r in table([-0.01, 0.01], [-0.01, 0.01])]
    curve = curves.Curve("h", "velocity_mae", "all")
    out = {r["K"]: r for r in curves.multiplier(curves.curve_points(rows, curve), higher_is_better=False)}
    assert out[4]["multiplier"] == pytest.approx(4.0) and out[4]["multiplier_lo"] <= 4.0 <= out[4]["multiplier_hi"]


def test_evaluate_json_and_the_figure_carry_the_interval(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmm_utils.evaluation import plots

    t = table([-0.02, 0.0, 0.02], [-0.01, 0.0, 0.01])
    points = {CURVE.key: curves.curve_points(t, CURVE)}
    section = {"multiplier_curves": [CURVE.key], "confidence": 0.9}
    m = report.build_metrics(t, [], points, {}, {}, section)
    row = json.loads(json.dumps(m, allow_nan=False))["multiplier"][CURVE.key]["K=4"]
    assert row["confidence"] == 0.9 and row["multiplier_lo"] < 4 < row["multiplier_hi"] and row["n_seeds"] == 3
    assert report.headline(points, section) == {"mult_K16": 4.0}  # the dashboard keeps the point estimate
    fig = plots.plot_multiplier(m["multiplier"])
    bars = [c for c in fig.axes[0].collections if type(c).__name__ == "LineCollection"]
    assert bars and np.asarray(bars[0].get_segments()).shape[0] == 3  # one error bar per K > 0
    plots.save_figure(fig, tmp_path / "mult", formats=("png",))
    plt.close("all")


def _seed_pts(method, per_seed, Ks=(1, 2, 4, 8, 16)):
    """Points with per-seed values (as curve_points makes them): per_seed = {seed: [value at each K]}."""
    return [{"method": method, "K": k, "x": math.log2(k + 1), "n": len(per_seed),
             "mean": float(np.mean([v[j] for v in per_seed.values()])),
             "seed_values": {s: v[j] for s, v in per_seed.items()}} for j, k in enumerate(Ks)]


def test_paired_multiplier_resamples_seeds_together():
    """Each seed's draw moves both methods alike (offsets -0.1, 0, +0.1); the target at K is exactly the reference
    at 2K on every seed. Paired resampling sees the 2x on every resample; independent resampling mixes one
    method's good draws with the other's bad ones and widens the interval."""
    base = [0.30, 0.45, 0.60, 0.70, 0.80]
    offsets = {0: -0.1, 1: 0.0, 2: 0.1}
    sup = _seed_pts("supervised", {s: [b + d for b in base] for s, d in offsets.items()})
    lmm = _seed_pts("lmm", {s: [b + d for b in base[1:]] for s, d in offsets.items()}, Ks=(1, 2, 4, 8))
    paired = {r["K"]: r for r in curves.multiplier(sup + lmm, paired=True)}
    apart = {r["K"]: r for r in curves.multiplier(sup + lmm)}
    for K in (1, 2, 4):
        assert paired[K]["multiplier"] == pytest.approx(2.0)
        assert paired[K]["multiplier_lo"] == pytest.approx(2.0) and paired[K]["multiplier_hi"] == pytest.approx(2.0)
        assert paired[K]["resampling"] == "paired by seed" and "resampling" not in apart[K]
        wide = apart[K]["multiplier_hi"] is None or apart[K]["multiplier_hi"] - apart[K]["multiplier_lo"] > 1.0
        assert wide, apart[K]["interval_display"]
    # different seed sets cannot be paired: independent resampling, and the rows say why
    other = _seed_pts("lmm", {s: [b + d for b in base] for s, d in {0: -0.1, 1: 0.0, 5: 0.1}.items()})
    rows = curves.multiplier(sup + other, paired=True)
    assert all(r["resampling"].startswith("independent (the two methods ran different seeds)") for r in rows)



def test_the_stage_resamples_as_params_say():
    """evaluation.multiplier_resampling: paired by default (the rows and evaluate.json's method text say so),
    independent on request (the rows of curves.multiplier's default, as the stage wrote them before)."""
    base = [0.30, 0.45, 0.60, 0.70, 0.80]
    offsets = {0: -0.1, 1: 0.0, 2: 0.1}
    points = {CURVE.key: _seed_pts("supervised", {s: [b + d for b in base] for s, d in offsets.items()})
              + _seed_pts("lmm", {s: [b + d for b in base[1:]] for s, d in offsets.items()}, Ks=(1, 2, 4, 8))}
    section = {"multiplier_curves": [CURVE.key]}
    paired = report.multipliers(points, section)[CURVE.key]
    apart = report.multipliers(points, {**section, "multiplier_resampling": "independent"})[CURVE.key]
    assert all(r["resampling"] == "paired by seed" for r in paired)
    assert apart == curves.multiplier(points[CURVE.key]) and all("resampling" not in r for r in apart)
    assert "one resample of the seeds" in report.multiplier_description(0.95, report.resampling(section))
    assert "independently" in report.multiplier_description(0.95, "independent")
    with pytest.raises(ValueError, match="multiplier_resampling must be 'paired' or 'independent', got 'pairs'"):
        report.multipliers(points, {**section, "multiplier_resampling": "pairs"})


def test_a_mistyped_resampling_is_refused_by_name():
    from pathlib import Path

    import yaml

    from lmm_utils.core.params import ParamsError
    from lmm_utils.pipeline.checks import check_section

    section = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())["evaluation"]
    assert section["multiplier_resampling"] == "paired" and check_section("evaluation", dict(section))
    with pytest.raises(ParamsError, match=r"evaluation\.multiplier_resampling must be one of \['paired', 'independent'\]"):
        check_section("evaluation", {**section, "multiplier_resampling": "pairs"})
    typo = {("multiplier_resampleing" if k == "multiplier_resampling" else k): v for k, v in section.items()}
    with pytest.raises(ParamsError, match="multiplier_resampling"):  # a typo'd key: named, with the closest known key
        check_section("evaluation", typo)
    assert check_section("evaluation", {**section, "multiplier_resampling": "independent"})
