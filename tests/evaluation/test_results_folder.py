"""evaluation.results_folder: a finished sweep's results copied into one folder, only the sweep's runs."""
import json

import pytest
import yaml

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.paths import run_path
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, read_predictions, write_predictions
from lmm_utils.evaluation.results_folder import CollectError, collect_results


def _project(root, sweep):
    (root / "reports/metrics").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"mapping": sweep}))
    for name in ("summary.json", "evaluate.json"):
        (root / "reports/metrics" / name).write_text("{}")
    fig = root / "reports/plots/evaluate/figures"
    fig.mkdir(parents=True)
    (fig / "curves.png").write_bytes(b"png")
    (fig / "curves.svg").write_text("<svg/>")
    (fig / "notes.txt").write_text("not a figure")
    perf = Performance([PerformedNote(60, 0.1, 0.5, 70)])
    for m, k, s in (("supervised", 1, 0), ("supervised", 1, 1), ("lmm", 0, 0), ("old", 1, 0)):
        d = run_path(root / "data/runs", m, k, s)
        d.mkdir(parents=True)
        write_predictions({"h": {"x": perf}}, d / PREDICTIONS_FILE)


def test_collect_copies_the_sweeps_runs_and_figures(tmp_path):
    sweep = {"methods": ["supervised", "lmm"], "Ks": [1], "method_Ks": {"lmm": [0]}, "seeds": [0, 1]}
    _project(tmp_path, sweep)
    out = tmp_path / "reports/default"
    m = collect_results(tmp_path, out, "default")
    assert sorted(m["runs"]) == ["lmm-K0-s0", "supervised-K1-s0", "supervised-K1-s1"]  # "old" is not in the sweep
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [f"{r}.npz.xz" for r in sorted(m["runs"])]
    assert read_predictions(out / "predictions/lmm-K0-s0.npz.xz")["h"]["x"].notes[0].pitch == 60
    assert (out / "figures/curves.png").is_file() and (out / "figures/curves.svg").is_file()
    assert not (out / "figures/notes.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["n_runs"] == 3


def test_collect_refuses_an_unfinished_sweep_and_changes_nothing(tmp_path):
    with pytest.raises(CollectError, match="not a finished sweep"):
        collect_results(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_collect_over_the_budget_stops_before_touching_the_folder(tmp_path, monkeypatch):
    import lmm_utils.evaluation.results_folder as rf

    _project(tmp_path, {"methods": ["supervised"], "Ks": [1], "seeds": [0]})
    out = tmp_path / "reports/paper"
    out.mkdir(parents=True)
    (out / "summary.json").write_text('{"committed": true}')
    monkeypatch.setattr(rf, "MAX_TOTAL_MB", 1e-6)
    with pytest.raises(CollectError, match="over the .* budget.*left as it was"):
        collect_results(tmp_path, out)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert json.loads((out / "summary.json").read_text()) == {"committed": True}


def test_robustness_levels_and_rows():
    """Re-levelling hits the asked RMS; h's rows cover every condition and subset; a level-invariant h gets
    level_spread 0 (a tiny untrained h: its front end already sees the same input at every level)."""
    import numpy as np

    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.data.evaluation import Truth
    from lmm_utils.evaluation import robustness
    from lmm_utils.methods.wrappers import make_h
    from lmm_utils.models.transcriber import TranscriberConfig

    rng = np.random.default_rng(0)
    x = (0.01 * rng.standard_normal(16000)).astype(np.float32)
    y = robustness.at_rms_dbfs(x, -6.0)
    assert 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))) == pytest.approx(-6.0, abs=1e-3)
    assert robustness.at_rms_dbfs(np.zeros(10, np.float32), -6.0).max() == 0.0  # silence stays silence

    class _Data:
        def has_recordings(self, pool, ids):  # every pool, T_noisy included
            return True

        def audio(self, pool, i):
            t = np.arange(16000) / 16000
            return (0.05 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * t)).astype(np.float32), 16000

        def logmel(self, pool, i, feat):
            from lmm_utils.core.features import log_mel

            return log_mel(self.audio(pool, i)[0], feat)

    perf = Performance([PerformedNote(57, 0.0, 0.8, 80)])
    truth = Truth({"a": perf, "b": perf}, {"a": "essenFolksong", "b": "bachChorales"})
    __import__("torch").manual_seed(0)
    h = make_h(TranscriberConfig.tiny(), FeatureConfig())
    rows = robustness.h_rows(h, _Data(), truth, FeatureConfig())
    labels = [c[0] for c in robustness.conditions()]
    assert sorted({r["recordings"] for r in rows}) == sorted(labels)
    assert {r["subset"] for r in rows} == {"all", "folk", "chorales"}
    at_levels = [r["note_f1"] for r in rows if r["subset"] == "all" and r["recordings"].startswith("T at")]
    assert max(at_levels) - min(at_levels) < 0.01


def test_g_bounds_ceiling_is_the_pianist_again_and_floor_the_plain_performer(monkeypatch):
    """The ceiling re-plays each T score with the benchmark pianist (another seed); with the truth's own seed it
    would be the truth (velocity r = 1); the floor is the plain performer, whose one velocity per mark gives r = 0
    on a score with one mark."""
    import factories
    import numpy as np

    from lmm_utils.data.evaluation import Truth
    from lmm_utils.data.excerpts import stable_seed
    from lmm_utils.data.pianist import PianistConfig, perform
    from lmm_utils.evaluation import g_bounds

    rng = np.random.default_rng(0)
    scores = {}
    for k, coll in enumerate(("essenFolksong", "bachChorales")):
        notes = factories.voices(rng, 2, 16.0, [0.5, 1.0], lambda r, p, c: int(np.clip(p + r.integers(-3, 4), c - 8, c + 8)))
        scores[f"x{k}"] = factories.excerpt(notes, id=f"x{k}", collection=coll, bpm=100.0)
    section = {"seed": 3, "pianist": {}}
    pianist = PianistConfig.from_params({})
    truth = Truth({i: perform(s, pianist, np.random.default_rng(stable_seed(3, i))) for i, s in scores.items()},
                  {i: s.collection for i, s in scores.items()})

    class _Data:
        def scores(self, pool):
            return scores

    rows = {(r["g"], r["subset"]): r for r in g_bounds.bounds_table(_Data(), truth, section)}
    assert set(rows) == {(g, s) for g in ("ceiling", "floor") for s in ("all", "folk", "chorales")}
    assert rows[("floor", "all")]["velocity_r"] == 0.0
    assert 0.0 < rows[("ceiling", "all")]["velocity_r"] < 1.0  # the pianist's structure, not its noise
    monkeypatch.setattr(g_bounds, "CEILING_SEED_OFFSET", 0)  # the truth's own draw: the ceiling is the truth
    same = {(r["g"], r["subset"]): r for r in g_bounds.bounds_table(_Data(), truth, section)}
    assert same[("ceiling", "all")]["velocity_r"] == pytest.approx(1.0)
    assert same[("ceiling", "all")]["note_f1"] == pytest.approx(1.0)


def test_collect_refuses_a_run_its_archive_cannot_hold_and_keeps_the_folder(tmp_path):
    import gzip

    _project(tmp_path, {"methods": ["supervised"], "Ks": [1], "seeds": [0]})
    doc = {"format": 1, "systems": {"h": {"x": {"notes": [[60, 0.1234567, 0.5, 70]], "pedal": []}}}}  # finer than 10 us
    (run_path(tmp_path / "data/runs", "supervised", 1, 0) / PREDICTIONS_FILE).write_bytes(
        gzip.compress(json.dumps(doc).encode()))
    out = tmp_path / "reports/paper"
    out.mkdir(parents=True)
    (out / "summary.json").write_text('{"committed": true}')
    with pytest.raises(CollectError, match="supervised-K1-s0.*left as it was"):
        collect_results(tmp_path, out)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def _git(root, *args):
    import subprocess
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


def test_manifest_names_the_commit_whether_the_code_changed_and_the_training_time(tmp_path):
    sweep = {"methods": ["supervised"], "Ks": [1], "seeds": [0, 1]}
    _project(tmp_path, sweep)
    for s, secs in ((0, 1800.0), (1, 900.0)):
        (run_path(tmp_path / "data/runs", "supervised", 1, s) / "metrics.json").write_text(
            json.dumps({"train": {"seconds": secs}}))
    (tmp_path / "lmm_utils").mkdir()
    (tmp_path / "lmm_utils/m.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "lmm_utils", "params.yaml")
    _git(tmp_path, "commit", "-qm", "code")
    prov = collect_results(tmp_path, tmp_path / "reports/paper", "paper")["provenance"]
    assert len(prov["commit"]) == 40 and prov["code_changed"] is False and prov["train_hours"] == 0.75
    (tmp_path / "lmm_utils/m.py").write_text("x = 2\n")  # an uncommitted edit of the code: not that commit's results
    assert collect_results(tmp_path, tmp_path / "reports/paper", "paper")["provenance"]["code_changed"] is True


def test_manifest_outside_git_records_no_commit(tmp_path):
    _project(tmp_path, {"methods": ["supervised"], "Ks": [1], "seeds": [0]})
    prov = collect_results(tmp_path, tmp_path / "out")["provenance"]
    assert prov["commit"] is None and prov["code_changed"] is None and prov["train_hours"] == 0
