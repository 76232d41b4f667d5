"""Evaluation of the mapping sweep on a fake runs folder: the one family rule, run names, scoring (a run's own
rows, the cache), curves, AUC, the effective-data multiplier, the evaluate stage's tables and metrics JSON, DVC
plot files, LM similarity, figures. No real data or trained model needed."""
import json
import math
from pathlib import Path

import factories
import numpy as np
import pytest

from lmm_utils.core.io import jsonable
from lmm_utils.core.motion import Performance, PerformedNote, write_midi
from lmm_utils.core.paths import parse_run_name, run_name
from lmm_utils.core.score import ScoreNote
from lmm_utils.data.corpus import CHORALES, FAMILIES, FOLK, family
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.evaluation import curves, lm_eval, report
from lmm_utils.evaluation import scoring as ev


def _truth(n: int = 6) -> Truth:
    rng = np.random.default_rng(0)
    perf, coll = {}, {}
    for i in range(n):
        t = 0.25 + np.cumsum(rng.uniform(0.2, 0.4, 10))
        perf[f"x{i}"] = Performance([PerformedNote(int(60 + rng.integers(0, 12)), float(a), float(a + 0.18), 70)
                                     for a in t])
        coll[f"x{i}"] = "essenFolksong" if i % 2 else "bachChorales"
    return Truth(perf, coll)


def _degrade(p: Performance, keep: float, rng) -> Performance:
    return Performance([n for n in p.notes if rng.random() < keep])


def write_fake_runs(runs_dir: Path, truth: Truth, quality: dict, Ks=(0, 1, 4, 16), seeds=(0, 1, 2)) -> None:
    """<method>-K<K>-s<seed>/predictions/{h,h_timbre,g}: truth with notes dropped, keep = quality(method, K)."""
    for method, q in quality.items():
        for K in Ks:
            for s in seeds:
                rng = np.random.default_rng(hash((method, K, s)) % 2**32)
                for system in ev.SYSTEMS:
                    d = runs_dir / run_name(method, K, s) / "predictions" / system
                    d.mkdir(parents=True, exist_ok=True)
                    for i in truth.ids:
                        write_midi(_degrade(truth.perf[i], q(K), rng), d / f"{i}.mid")


def test_discover_runs_parses_names_and_ignores_others(tmp_path):
    for name in ("lmm-K4-s0", "lmm-no_lmM-K16-s2", "supervised-K0-s1", ".lmm-K4-s0.tmp-1", "notes"):
        (tmp_path / name).mkdir()
    runs = ev.discover_runs(tmp_path)
    assert [(r.method, r.K, r.seed) for r in runs] == [("lmm", 4, 0), ("lmm-no_lmM", 16, 2), ("supervised", 0, 1)]
    assert ev.discover_runs(tmp_path / "missing") == []
    kept, stale = ev.in_sweep(runs, {"methods": ["lmm", "supervised"], "Ks": [0, 4], "seeds": [0, 1]})
    assert [r.name for r in kept] == ["lmm-K4-s0", "supervised-K0-s1"] and [r.name for r in stale] == ["lmm-no_lmM-K16-s2"]
    assert ev.in_sweep(runs, None) == (runs, [])


def test_score_folder_identical_missing_and_corrupt(tmp_path):
    truth = _truth(3)
    for i in truth.ids[:2]:
        write_midi(truth.perf[i], tmp_path / f"{i}.mid")
    (tmp_path / f"{truth.ids[1]}.mid").write_bytes(b"MThd garbage")
    rows = {r["id"]: r for r in ev.score_folder(tmp_path, truth, "transcription")}
    assert rows["x0"]["status"] == "ok" and rows["x0"]["note_f1"] == 1.0
    assert rows["x1"]["status"] == "unreadable" and rows["x1"]["note_f1"] == 0.0
    assert rows["x2"]["status"] == "missing" and rows["x2"]["note_f1"] == 0.0
    summary = ev.summarize(list(rows.values()))
    assert {"all", "folk", "chorales", "essenFolksong"} <= set(summary)
    assert summary["all"]["failed"] == pytest.approx(2 / 3) and summary["all"]["n"] == 3


def test_predicted_ids_restrict_the_truth(tmp_path):
    truth = _truth(4)
    d = tmp_path / "lmm-K1-s0" / "predictions" / "h"
    d.mkdir(parents=True)
    for i in ("x1", "x3", "not_in_T"):
        write_midi(Performance([]), d / f"{i}.mid")
    ids = ev.predicted_ids(ev.discover_runs(tmp_path))
    assert truth.restrict(ids).ids == ["x1", "x3"]
    assert truth.restrict([]).ids == truth.ids


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    truth = _truth(6)
    quality = {"supervised": lambda K: 0.3 + 0.6 * math.log2(K + 1) / 4.1,
               "lmm": lambda K: min(1.0, 0.55 + 0.45 * math.log2(K + 1) / 4.1)}
    write_fake_runs(root / "runs", truth, quality)
    runs = ev.discover_runs(root / "runs")
    table = ev.collect(runs, truth, root / "cache", progress=False)
    return root, truth, runs, table


def test_collect_covers_every_run_system_subset(sweep):
    _, _, runs, table = sweep
    assert len(runs) == 2 * 4 * 3
    keys = {(r["run"], r["system"], r["subset"]) for r in table if r["metric"] == "note_f1"}
    systems = len(ev.SYSTEMS)  # h, h_timbre, h_noisy, g
    assert len(keys) == len(runs) * systems * 3 + len(runs) * systems * 2  # all/folk/chorales + two collections


def test_cache_is_reused_and_invalidated(sweep, monkeypatch):
    root, truth, runs, table = sweep
    monkeypatch.setattr(ev, "score_folder", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rescored")))
    again = ev.collect(runs[:2], truth, root / "cache", progress=False)
    assert _nan_free(again) == _nan_free([r for r in table if r["run"] in {runs[0].name, runs[1].name}])
    monkeypatch.undo()
    pred = runs[0].path / "predictions" / "h" / "x0.mid"
    write_midi(Performance([]), pred)  # a changed prediction file must be rescored
    rows = ev.collect(runs[:1], truth, root / "cache", progress=False)
    new = [r["value"] for r in rows if (r["system"], r["subset"], r["metric"]) == ("h", "all", "note_f1")][0]
    old = [r["value"] for r in table if (r["run"], r["system"], r["subset"], r["metric"]) == (runs[0].name, "h", "all", "note_f1")][0]
    assert new < old


def test_curve_points_band_and_auc(sweep):
    _, _, _, table = sweep
    pts = curves.curve_points(table, curves.Curve("h", "note_f1", "all"))
    assert {(p["method"], p["K"]) for p in pts} == {(m, k) for m in ("lmm", "supervised") for k in (0, 1, 4, 16)}
    p = pts[0]
    assert p["n"] == 3 and p["lo"] <= p["mean"] <= p["hi"] and p["band"] == "t0.95"
    areas = curves.auc(pts)
    assert areas["lmm"]["auc"] > areas["supervised"]["auc"] and areas["lmm"]["grid"] == "common"


def test_band_rules():
    assert curves.band([0.2, 0.4])["band"] == "minmax" and curves.band([0.2, 0.4])["lo"] == 0.2
    b = curves.band([0.1, 0.2, 0.3], 0.95, "normal")
    assert b["hi"] - b["mean"] == pytest.approx(1.959964 * 0.1 / math.sqrt(3), rel=1e-5)
    assert curves.band([0.1, 0.2, 0.3])["hi"] > b["hi"]  # Student t is wider than normal at n = 3
    assert curves.band([float("nan")])["n"] == 0


def _pts(method, values, Ks=(0, 1, 4, 16, 64)):
    return [{"method": method, "K": k, "x": math.log2(k + 1), "mean": v, "n": 3} for k, v in zip(Ks, values)]


def test_multiplier_exact_bounds_and_direction():
    sup = _pts("supervised", [0.1, 0.2, 0.4, 0.6, 0.8])
    lmm = _pts("lmm", [0.2, 0.4, 0.6, 0.9, 0.05])
    rows = {r["K"]: r for r in curves.multiplier(sup + lmm)}
    assert rows[1]["equivalent_K"] == pytest.approx(4.0) and rows[1]["multiplier"] == pytest.approx(4.0)
    assert rows[4]["multiplier"] == pytest.approx(4.0)
    assert rows[0]["multiplier"] is None and rows[0]["point_display"] == "1 pairs"
    assert rows[16]["bound"] == "above_max" and rows[16]["point_display"] == "> 4x"
    assert rows[64]["bound"] == "below_min" and rows[64]["point_display"].startswith("<=")
    # hand-made points carry no per-seed values: no interval, and the display says so
    assert rows[4]["multiplier_lo"] is None and rows[4]["display"] == "4x (no interval: no per-seed values)"
    # interpolation is linear in log2(K + 1): halfway between K=4 and K=16 is K = 2^((log2 5 + log2 17)/2) - 1
    half = curves.equivalent_k(sup, 0.5)[0]
    assert half == pytest.approx(2 ** ((math.log2(5) + math.log2(17)) / 2) - 1)
    # worse than the reference at the same K: multiplier < 1; lower-is-better metrics flip the direction
    worse = {r["K"]: r for r in curves.multiplier(sup + _pts("lmm", [0.1, 0.15, 0.3, 0.5, 0.7]))}
    assert worse[4]["multiplier"] < 1
    err_sup = _pts("supervised", [0.5, 0.4, 0.3, 0.2, 0.1])
    err = {r["K"]: r for r in curves.multiplier(err_sup + _pts("lmm", [0.4, 0.3, 0.2, 0.1, 0.05]), higher_is_better=False)}
    assert err[1]["multiplier"] == pytest.approx(4.0)
    assert curves.multiplier(sup) == []  # no target runs


def test_best_runs_and_outputs(sweep, tmp_path):
    root, truth, runs, table = sweep
    best = curves.best_runs(table)
    assert set(best) == {"lmm", "supervised"} and best["lmm"]["K"] == 16
    # one run per method picked without a score: the most pairs, then the lowest seed, whatever its F1
    rep = curves.representative_runs(table)
    top = max(r["K"] for r in table if r["method"] == "supervised")
    assert rep["supervised"]["K"] == top and rep["supervised"]["seed"] == min(
        r["seed"] for r in table if r["method"] == "supervised" and r["K"] == top)
    worse_first = [{**r, "value": 0.0 if r["seed"] == rep["lmm"]["seed"] else r["value"]} for r in table]
    assert curves.representative_runs(worse_first)["lmm"]["run"] == rep["lmm"]["run"]
    pts = {c.key: curves.curve_points(table, c) for c in curves.all_curves()}
    peers = {k: {"basic_pitch": 0.7} for k in pts if k.startswith("h")}
    files = report.write_curve_files(pts, peers, tmp_path / "curves")
    # a file per curve with a finite point (or named in dvc.yaml's plots)
    assert len(files) == sum(1 for k, p in pts.items() if report.curve_file_rows(p) or k in report.PLOTTED)
    rows = json.loads((tmp_path / "curves" / "h-note_f1-all.json").read_text())
    assert {"method", "K", "mean", "lo", "hi"} <= set(rows[0])
    assert {r["method"] for r in rows} == {"lmm", "supervised", "basic_pitch (peer)"}
    section = {"multiplier_curves": ["h-note_f1-all", "g-note_f1-all"]}
    m = report.build_metrics(table, runs, pts, peers, {"basic_pitch": {"available": True}}, section,
                         extra={"lmM": {"note": "none"}, "weird": float("nan")})
    text = json.dumps(m, allow_nan=False)  # no NaN may reach dvc metrics
    assert "NaN" not in text and m["weird"] is None
    assert m["best_runs"]["lmm"]["run"].startswith("lmm-K16")
    assert set(m["multiplier"]["h-note_f1-all"]) == {"K=0", "K=1", "K=4", "K=16"}
    k4 = m["multiplier"]["h-note_f1-all"]["K=4"]  # three seeds each: the interval over seeds reaches evaluate.json
    assert k4["n_seeds"] == 3 and k4["interval_display"].startswith("[") and "bootstrap" in m["multiplier_method"]
    assert m["peers"]["basic_pitch"]["h-note_f1-all"] == 0.7
    assert m["runs"]["methods"]["lmm"] == {"K": [0, 1, 4, 16], "seeds": [0, 1, 2], "n_runs": 12}


def test_dvc_template_renders_curve_files(sweep, tmp_path, root):
    """The sample_efficiency template (.dvc/plots) fills with a curve file's rows (what `dvc plots show` does)."""
    from dvc_render.vega import VegaRenderer

    _, _, _, table = sweep
    rows = report.curve_file_rows(curves.curve_points(table, curves.Curve("g", "aligned_note_f1", "all")), {"bp": 0.5})
    r = VegaRenderer(rows, "g-aligned_note_f1-all", template=str(root / ".dvc/plots/sample_efficiency.json"),
                     x="K", y="mean", title="t")
    spec = r.get_filled_template()
    assert spec["data"]["values"] == rows and "<DVC_METRIC" not in json.dumps(spec)


def test_lm_similarity_measures():
    from lmm_utils.lm import similarity as sim

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert sim.mutual_knn(x, x @ q, k=5) == 1.0  # rotation keeps every neighbour
    assert sim.linear_cka(x, 3 * x @ q) == pytest.approx(1.0)
    rep = sim.alignment_report(x, x @ q + 0.01 * rng.normal(size=x.shape), k=5, gallery_sizes=(32, "all"),
                               repeats=5, shuffles=5)
    assert rep["mutual_knn"]["32"]["paired"] > 0.9 and rep["mutual_knn"]["all"]["gallery"] == 60
    assert rep["mutual_knn"]["all"]["shuffled"] < 0.3  # near chance 5/59
    assert rep["mutual_knn"]["32"]["chance"] == pytest.approx(5 / 31)
    assert rep["cka"]["paired"] > rep["cka"]["shuffled"] + 0.5
    # two clusters that both spaces separate: the plain control is fooled, the within-group control is not
    groups = np.repeat([0, 1], 30)
    xc = rng.normal(size=(60, 8)) + 6 * groups[:, None]
    yc = rng.normal(size=(60, 8)) + 6 * groups[:, None]  # no item-level relation at all
    rep = sim.alignment_report(xc, yc, k=5, gallery_sizes=("all",), shuffles=10, groups=groups)
    assert rep["cka"]["paired"] > rep["cka"]["shuffled"] + 0.3
    assert abs(rep["cka"]["paired"] - rep["cka"]["shuffled_within_group"]) < 0.1
    perm = sim.permutation(60, rng, groups)
    assert (groups[perm] == groups).all()


def test_figures_are_written(sweep, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from lmm_utils.evaluation import plots

    _, truth, _, table = sweep
    cs = [c for c in curves.all_curves() if c.system == "h"]
    pts = {c.key: curves.curve_points(table, c) for c in cs}
    fig = plots.plot_curve_grid(pts, cs, {cs[0].key: {"basic_pitch": 0.6}})
    paths = plots.save_figure(fig, tmp_path / "curves_h")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    again = plots.save_figure(fig, tmp_path / "again")  # no date, fixed SVG ids: a re-run writes the same bytes
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
    mult = {"h-note_f1-all": {f"K={r['K']}": r for r in curves.multiplier(pts["h-note_f1-all"])}}
    plots.save_figure(plots.plot_multiplier(mult), tmp_path / "mult", formats=("png",))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plots.piano_roll(ax, truth.perf["x0"], truth.perf["x1"], "roll")
    assert [len(c.get_paths()) for c in ax.collections] == [len(truth.perf[i].notes) for i in ("x0", "x1")]
    plt.close("all")


def test_peer_stage_without_its_venv_writes_a_note(tmp_path):
    """No .venv-bp: the references stage still succeeds, and evaluation reports the peer as skipped."""
    from lmm_utils.evaluation.peers import stage as peers

    status = peers.run(tmp_path)
    assert status == {"available": False, "note": peers.NOTE_MISSING}
    assert json.loads((tmp_path / peers.OUT / "status.json").read_text())["available"] is False
    rows, notes = ev.score_peers(tmp_path / "data" / "peers", _truth(2), None)
    assert rows == [] and notes["basic_pitch"]["available"] is False
    m = report.build_metrics([], [], {}, {}, notes, {})
    assert m["peers"]["basic_pitch"] == {"available": False, "note": peers.NOTE_MISSING}


def test_oracle_lm_trains_on_true_motion_and_is_labelled(tmp_path):
    from lmm_utils.lm import oracle as oracle_lm

    truth = _truth(8)
    (tmp_path / "data" / "motion").mkdir(parents=True)
    for pool, ids in (("U_A", truth.ids[:6]), ("T", truth.ids[6:])):
        (tmp_path / "data" / "motion" / f"{pool}.jsonl").write_text(
            "".join(json.dumps({"id": i, "performance": truth.perf[i].to_dict()}) + "\n" for i in ids))
    section = oracle_lm.resolve({"tokens": None, "model": None, "train": {"steps": 3, "batch_size": 2, "warmup": 1,
                                 "eval_every": 3, "eval_batches": 1, "precision": "fp32", "device": "cpu"}},
                                {"mapping": {"lmm": {"lmM_tokens": {"time_step": 0.02, "max_shift": 50, "velocity_bins": 16},
                                                 "lmM_model": {"block_size": 32, "n_layer": 1, "n_head": 1, "n_embd": 16}}}})
    bits = oracle_lm.train_oracle(section, tmp_path, Path("data/oracle_lmM"), progress=False)
    assert "ORACLE" in bits["label"] and bits["tokens"]["time_step"] == 0.02
    assert 0 < bits["lm"] < bits["uniform"] + 1 and bits["bits_per_note"] > bits["lm"]
    # evaluation finds an LM^M saved inside a run by its tokenizer's modality
    run = tmp_path / "runs" / "lmm-K1-s0"
    import shutil

    shutil.copytree(tmp_path / "data/oracle_lmM", run / "lmM")
    assert lm_eval.find_lm_m(run) == run / "lmM"
    out = lm_eval.lm_m_bits(ev.discover_runs(tmp_path / "runs"), truth.restrict(truth.ids[6:]), progress=False)
    assert out["runs"]["lmm-K1-s0"]["bits_per_token"] == pytest.approx(bits["lm"], rel=1e-4)
    assert "note" in lm_eval.lm_m_bits([], truth, progress=False)
    rows = lm_eval.lm_m_table(out, bits)
    assert rows[0]["LM^M"] == "lmm" and rows[0]["bits/token"] == pytest.approx(bits["lm"], rel=1e-4)
    assert rows[1]["LM^M"].startswith("ORACLE") and lm_eval.lm_m_metrics(out, bits)["oracle_upper_bound"]["lm"] == bits["lm"]
    assert "note" in lm_eval.read_oracle(tmp_path / "missing.json")


# --- one family rule, one run-name rule -------------------------------------------------------------------

def test_one_family_function_for_the_whole_project():
    assert {family(c) for c in FOLK} == {"folk"} and family(CHORALES) == "chorales" == FAMILIES[1]
    assert family("my_folder") == "my_folder"  # a user folder is its own family
    assert all(family(f) == f for f in FAMILIES)  # a family name is a fixed point (flat metrics keep those keys)


@pytest.mark.parametrize("method, K, seed", [("lmm", 4, 0), ("lmm-no_lmM-no_recon", 64, 12), ("supervised", 0, 1)])
def test_run_names_round_trip(method, K, seed):
    assert parse_run_name(run_name(method, K, seed)) == (method, K, seed)


def test_run_names_reject_other_folders():
    assert parse_run_name("notes") is None and parse_run_name("lmm-K4-s0.tmp-12") is None


# --- a run's own rows ---------------------------------------------------------------------------------------

def _run_folder(root: Path, truth: Truth, name: str = "lmm-K1-s0") -> Path:
    rng = np.random.default_rng(1)
    for system in ev.SYSTEMS:
        d = root / name / "predictions" / system
        d.mkdir(parents=True)
        for i in truth.ids:
            write_midi(_degrade(truth.perf[i], 0.7, rng), d / f"{i}.mid")
    return root / name


def test_a_runs_saved_rows_are_what_evaluation_reads(tmp_path, monkeypatch):
    truth = _truth(4)
    run_dir = _run_folder(tmp_path, truth)
    rows = ev.score_run_folder(run_dir, truth)
    assert set(rows) == set(ev.SYSTEMS) and (run_dir / "scores" / "g.json").is_file()
    assert _nan_free(ev.saved_rows(run_dir)) == _nan_free(rows)
    nested = ev.nest({s: ev.summarize(r) for s, r in rows.items()})
    assert set(nested) == {"h", "g"} and set(nested["h"]) == {"T", "T_timbre", "T_noisy"}
    assert {"all", "folk", "chorales", "essenFolksong", "bachChorales"} <= set(nested["h"]["T"])
    # same truth: evaluation reuses the run's rows and scores nothing
    monkeypatch.setattr(ev, "score_folder", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rescored")))
    run = ev.discover_runs(tmp_path)[0]
    assert _nan_free(ev.score_run(run, truth, cache_dir=None)) == _nan_free({s: ev.summarize(r) for s, r in rows.items()})
    monkeypatch.undo()
    # evaluation scoring more excerpts than the run predicted: recomputed (missing predictions count as failed)
    more = Truth({**truth.perf, "x9": truth.perf["x0"]}, {**truth.collection, "x9": "essenFolksong"})
    again = ev.score_run(run, more, cache_dir=tmp_path / "cache")
    assert again["h"]["all"]["n"] == 5 and again["h"]["all"]["failed"] == pytest.approx(0.2)
    assert (tmp_path / "cache" / "lmm-K1-s0__h.json").is_file()


def test_fingerprint_follows_contents_not_file_times(tmp_path):
    import os

    truth = _truth(2)
    d = _run_folder(tmp_path, truth) / "predictions" / "h"
    fp = ev.folder_fingerprint(d, truth.fingerprint(), "transcription")
    os.utime(d / "x0.mid", (1, 1))  # DVC restores files with new times
    assert ev.folder_fingerprint(d, truth.fingerprint(), "transcription") == fp
    write_midi(Performance([]), d / "x0.mid")
    assert ev.folder_fingerprint(d, truth.fingerprint(), "transcription") != fp
    assert ev.folder_fingerprint(d, truth.restrict(["x1"]).fingerprint(), "transcription") != fp


def test_jsonable():
    out = jsonable({"a": float("nan"), "b": np.float32(0.5), "c": (np.int64(3), None, True), 4: Path("x")})
    assert out == {"a": None, "b": 0.5, "c": [3, None, True], "4": "x"}


# --- the evaluate stage's functions ---------------------------------------------------------------------------

def _project(root: Path, truth: Truth) -> None:
    """data/scores/T.jsonl and data/motion/T.jsonl of a fake project (what EvaluationData reads)."""
    (root / "data/motion").mkdir(parents=True)
    (root / "data/scores").mkdir(parents=True)
    (root / "data/motion/T.jsonl").write_text("".join(json.dumps({"id": i, "performance": truth.perf[i].to_dict()}) + "\n"
                                                      for i in truth.ids))
    notes = [ScoreNote(60, 0.0, 1.0, 0)]
    (root / "data/scores/T.jsonl").write_text("".join(
        json.dumps(factories.excerpt(notes, id=i, collection=truth.collection[i]).to_dict()) + "\n" for i in truth.ids))


def test_report_select_score_and_tables(sweep, tmp_path):
    root, truth, runs, table = sweep
    _project(tmp_path, truth)
    data = EvaluationData(tmp_path)
    assert data.truth().fingerprint() == truth.fingerprint()
    sel = report.select(root / "runs", {"methods": ["lmm"], "Ks": [0, 1], "seeds": [0]}, data)
    assert len(sel.runs) == 24 and sel.stale == []  # another runs folder than data/runs: no sweep filter
    assert sel.truth.ids == truth.ids and "24 runs" in sel.describe(root / "runs") and "folk: 3" in sel.describe()
    assert sel.runs_table()[0] == {"method": "lmm", "K": [0, 1, 4, 16], "seeds": [0, 1, 2], "runs": 12}
    scored = report.score(sel, root / "cache", peers_dir=tmp_path / "no_peers", progress=False)
    changed = runs[0].name  # test_cache_is_reused_and_invalidated rewrote one of its predictions
    assert _nan_free([r for r in scored.rows if r["run"] != changed]) == _nan_free([r for r in table if r["run"] != changed])
    assert scored.peer_rows == [] and scored.failed() == []
    points, peers = report.curves_and_peers(scored)
    assert set(points) == {c.key for c in curves.all_curves()} and all(v == {} for v in peers.values())
    tables = report.headline_tables(scored.rows)
    assert set(tables[curves.Curve.parse("h-note_f1-all").label]) == {"lmm", "supervised"}
    aucs = {r["curve"] for r in report.auc_table(points)}  # a headline curve without a finite point has no area
    assert aucs <= set(report.HEADLINE)
    assert {k for k in report.HEADLINE if k.startswith("h") and not k.endswith("polyphony")} <= aucs
    assert "h-note_f1-polyphony" not in aucs  # the fixture has no polyphony excerpt: no point, no area
    mult = report.multipliers(points, {"multiplier_curves": ["h-note_f1-all"]})
    shown = report.multiplier_display(mult["h-note_f1-all"], "lmm", "supervised")
    assert [r["K"] for r in shown] == [0, 1, 4, 16] and "supervised needs K'" in shown[0]
    best = curves.best_runs(scored.rows)
    comp = report.peer_comparison(scored, best)
    assert [r["system"] for r in comp] == [best["lmm"]["run"], best["supervised"]["run"]]
    assert comp[0]["h:note_f1:all"] == best["lmm"]["h_note_f1"]
    assert report.cache_dir_for("data/runs", "x") == ev.CACHE_DIR and report.cache_dir_for("elsewhere", "x") == Path("x/score_cache")


def test_report_select_keeps_the_sweep_in_the_projects_runs(tmp_path):
    truth = _truth(2)
    _project(tmp_path, truth)
    for name in ("lmm-K1-s0", "lmm-K2-s0"):
        d = tmp_path / "data/runs" / name / "predictions" / "h"
        d.mkdir(parents=True)
        write_midi(truth.perf["x1"], d / "x1.mid")
    sel = report.select(tmp_path / "data/runs", {"methods": ["lmm"], "Ks": [1], "seeds": [0]}, EvaluationData(tmp_path))
    assert [r.name for r in sel.runs] == ["lmm-K1-s0"] and [r.name for r in sel.stale] == ["lmm-K2-s0"]
    assert sel.truth.ids == ["x1"] and sel.truth_all.ids == ["x0", "x1"]


def test_peer_summary_and_gallery(tmp_path):
    from lmm_utils.evaluation import gallery

    truth = _truth(4)
    _project(tmp_path, truth)
    for pool in ("T", "T_timbre"):
        (tmp_path / "peer" / pool).mkdir(parents=True)
        for i in truth.ids:
            write_midi(truth.perf[i], tmp_path / "peer" / pool / f"{i}.mid")
    rows = ev.peer_summary(tmp_path / "peer", truth)
    assert [(r["recordings"], r["subset"]) for r in rows][:3] == [("T", "all"), ("T", "chorales"), ("T", "folk")]
    assert all(r["note_f1"] == 1.0 for r in rows)
    runs = {"supervised": {"run": "supervised-K1-s0", "h_note_f1": 0.6}, "basis": {"run": "basis-K1-s0", "h_note_f1": 0.1},
            "lmm": {"run": "lmm-K1-s0", "h_note_f1": 0.4}}
    # the target method's run; without it the first method by name, not the best scored
    assert gallery.gallery_run(runs)["run"] == "lmm-K1-s0" and gallery.gallery_run(runs, "cycle")["run"] == "basis-K1-s0"
    assert gallery.gallery_run({}) is None
    ids = gallery.pick_gallery(truth, truth.ids, 2)
    assert {family(truth.collection[i]) for i in ids} == {"folk", "chorales"}
    run_dir = _run_folder(tmp_path / "runs", truth)
    items = gallery.gallery_items(EvaluationData(tmp_path), truth, ids, run_dir)
    assert [it["id"] for it in items] == ids and items[0]["engraving"] is None
    assert items[0]["recording"] == tmp_path / "data/audio/T" / f"{ids[0]}.flac" and items[0]["h"].notes
    assert gallery.gallery_items(EvaluationData(tmp_path), truth, ids, None)[0]["g"] is None
    # hear g: plain performer, the run's g, the truth -- and the run chosen by g's velocity r, over every method
    listen = gallery.listening_items(EvaluationData(tmp_path), ids, run_dir)
    assert [it["id"] for it in listen] == ids and len(listen[0]["truth"].notes) == len(truth.perf[ids[0]].notes)
    assert len(listen[0]["plain"].notes) == 1 and listen[0]["g"].notes
    assert gallery.listening_items(EvaluationData(tmp_path), ids, None)[0]["g"] is None
    rows = [{"system": "g", "metric": "velocity_r", "subset": "all", "K": k, "seed": 0, "method": m, "run": f"{m}-K{k}-s0",
             "value": v} for m, k, v in (("supervised", 16, 0.3), ("basis", 16, 0.44), ("lmm", 0, float("nan")))]
    assert gallery.best_g_run(rows)["run"] == "basis-K16-s0" and gallery.best_g_run([]) is None


def test_plot_predictions_reads_the_saved_midi(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmm_utils.evaluation import plots

    truth = _truth(2)
    run_dir = _run_folder(tmp_path, truth)
    fig = plots.plot_predictions(run_dir, truth.ids, truth)
    assert len(fig.axes) == 8
    fig, ax = plt.subplots()
    plots.velocity_roll(ax, truth.perf[truth.ids[0]], "truth")
    (bars,) = ax.collections  # one collection, one bar per note
    assert len(bars.get_paths()) == len(truth.perf[truth.ids[0]].notes)
    plt.close("all")


# --- the evaluate stage's headline (dvc metrics show) ---------------------------------------------------------

def test_headline_k_prefers_16_else_the_largest():
    assert report.headline_k([0, 1, 4, 16, 64]) == 16 == report.HEADLINE_K
    assert report.headline_k([0, 2]) == 2 and report.headline_k([]) is None


def test_headline_multiplier_is_a_number_or_its_bound():
    section = {"target_method": "lmm", "reference_method": "supervised"}
    sup = _pts("supervised", [0.1, 0.2, 0.4, 0.6, 0.8])
    # supervised reaches 0.7 halfway (in log2(K + 1)) from K=16 to K=64: K' = sqrt(17 * 65) - 1 = 32.2, 2.02x
    assert report.headline({"h-note_f1-all": sup + _pts("lmm", [0.2, 0.4, 0.6, 0.7, 0.9])}, section) == {"mult_K16": 2.02}
    # lmm at K=16 above anything supervised reaches: the bound, as text
    assert report.headline({"h-note_f1-all": sup + _pts("lmm", [0.2, 0.4, 0.6, 0.9, 0.9])}, section) == {"mult_K16": "> 4x"}
    # no K=16 in the sweep: the largest K; no target runs: nothing
    tiny = _pts("supervised", [0.1, 0.3], Ks=(0, 2)) + _pts("lmm", [0.2, 0.2], Ks=(0, 2))
    assert set(report.headline({"h-note_f1-all": tiny}, section)) == {"mult_K2"}
    assert report.headline({"h-note_f1-all": sup}, section) == {}


def test_plotted_curve_files_exist_even_without_points(tmp_path):
    points = [{**p, "lo": p["mean"], "hi": p["mean"], "band": "minmax"} for p in _pts("lmm", [0.1, 0.2])]
    files = report.write_curve_files({"h-note_f1-all": points}, {}, tmp_path / "curves")
    assert {f.stem for f in files} == set(report.PLOTTED)
    assert json.loads((tmp_path / "curves" / "g-note_f1-all.json").read_text()) == []


def _nan_free(x):
    """Rows as strict JSON stores them (NaN -> None): NaN != NaN would fail any equality of rows."""
    from lmm_utils.core.io import jsonable

    return json.loads(json.dumps(jsonable(x)))


def test_save_and_show_writes_both_formats_closes_the_figure_and_shows_the_png(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmm_utils.evaluation import plots

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = plots.save_and_show(fig, tmp_path / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.svg"] and all(p.stat().st_size > 0 for p in paths)
    assert not plt.fignum_exists(fig.number)  # closed: the notebook shows the PNG, not a fresh inline render
    assert "Image" in capsys.readouterr().out  # outside a notebook, IPython's display prints the object's repr
