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
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [f"{r}.json.gz" for r in sorted(m["runs"])]
    assert read_predictions(out / "predictions/lmm-K0-s0.json.gz")["h"]["x"].notes[0].pitch == 60
    assert (out / "figures/curves.png").is_file() and (out / "figures/curves.svg").is_file()
    assert not (out / "figures/notes.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["n_runs"] == 3


def test_collect_refuses_an_unfinished_sweep_and_changes_nothing(tmp_path):
    with pytest.raises(CollectError, match="not a finished sweep"):
        collect_results(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
