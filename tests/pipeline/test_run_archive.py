"""run_archive: a sweep's finished runs saved into a folder git keeps, and restored where the grid reuses them."""
import json

import pytest

from lmm_utils.core.paths import RUN_METRICS_DIR, RUNS_DIR, run_metrics_path, run_path
from lmm_utils.pipeline import run_archive as ra


def _fake_run(root, method, K, seed, fp="fp-1", finished=True):
    d = run_path(root / RUNS_DIR, method, K, seed)
    (d / "scores").mkdir(parents=True)
    (d / "lmM").mkdir()
    (d / "lmM" / "model.pt").write_bytes(b"x" * 100)
    (d / "h.pt").write_bytes(b"h")
    (d / "g.pt").write_bytes(b"g")
    (d / "draw.json").write_text("{}")
    (d / "predictions.json.gz").write_bytes(b"p")
    if finished:
        (d / "metrics.json").write_text(json.dumps({"fingerprint": fp, "run": d.name}))
        (d / "scores" / "h.json").write_text("{}")
        flat = run_metrics_path(root / RUN_METRICS_DIR, method, K, seed)
        flat.parent.mkdir(parents=True, exist_ok=True)
        flat.write_text(json.dumps({"run": d.name}))
    return d


def test_save_keeps_finished_runs_without_lmM_and_only_once(tmp_path):
    proj, archive = tmp_path / "proj", tmp_path / "archive"
    _fake_run(proj, "lmm", 0, 0)
    _fake_run(proj, "lmm", 0, 1, finished=False)
    _fake_run(proj, "supervised", 4, 2)
    rep = ra.save(archive, proj)
    assert rep.copied == ["lmm-K0-s0", "supervised-K4-s2"] and rep.skipped == {"lmm-K0-s1": "not finished"}
    kept = run_path(archive, "lmm", 0, 0)
    assert sorted(p.name for p in kept.rglob("*")) == sorted(
        ["metrics.json", "draw.json", "predictions.json.gz", "h.pt", "scores", "h.json.gz", ra.FLAT_METRICS])
    assert ra.save(archive, proj).unchanged == ["lmm-K0-s0", "supervised-K4-s2"]
    # a run made again (another fingerprint) replaces its archived copy; weights=True keeps the checkpoints too
    run = run_path(proj / RUNS_DIR, "lmm", 0, 0)
    (run / "metrics.json").write_text(json.dumps({"fingerprint": "fp-2"}))
    rep = ra.save(archive, proj, weights=True)
    assert rep.copied == ["lmm-K0-s0"] and ra.fingerprint(kept) == "fp-2" and (kept / "g.pt").read_bytes() == b"g"
    # only the sweep's runs, when asked
    assert ra.save(tmp_path / "other", proj, runs={("supervised", 4, 2)}).copied == ["supervised-K4-s2"]


def test_restore_fills_only_missing_folders_and_puts_the_flat_metrics_back(tmp_path):
    proj, archive, fresh = tmp_path / "proj", tmp_path / "archive", tmp_path / "fresh"
    _fake_run(proj, "lmm", 0, 0)
    _fake_run(proj, "basis", 16, 1)
    ra.save(archive, proj)
    _fake_run(fresh, "basis", 16, 1, fp="made-here")  # a run folder already there is never replaced
    rep = ra.restore(archive, fresh)
    assert rep.copied == ["lmm-K0-s0"] and "basis-K16-s1" in rep.skipped
    assert ra.fingerprint(run_path(fresh / RUNS_DIR, "basis", 16, 1)) == "made-here"
    back = run_path(fresh / RUNS_DIR, "lmm", 0, 0)
    assert ra.fingerprint(back) == "fp-1" and not (back / ra.FLAT_METRICS).exists()
    assert (back / "scores" / "h.json").read_text() == "{}"  # unzipped, where the grid reads it
    assert json.loads(run_metrics_path(fresh / RUN_METRICS_DIR, "lmm", 0, 0).read_text()) == {"run": "lmm-K0-s0"}
    assert ra.restore(archive, fresh).unchanged == ["lmm-K0-s0"]
    with pytest.raises(ra.ArchiveError, match="no run archive"):
        ra.restore(tmp_path / "nowhere", fresh)


def test_cli_takes_the_sweep_from_params_and_reports_a_bad_file(tmp_path, capsys):
    proj = tmp_path / "proj"
    _fake_run(proj, "lmm", 0, 0)
    _fake_run(proj, "lmm", 4, 0)
    (proj / "params.yaml").write_text("mapping: {methods: [lmm], Ks: [0], seeds: [0]}\n")
    assert ra.main(["save", "--archive", str(tmp_path / "a"), "--root", str(proj)]) == 0
    assert "saved 1 runs" in capsys.readouterr().out
    assert ra.main(["save", "--archive", str(tmp_path / "b"), "--root", str(proj), "--all"]) == 0
    assert "saved 2 runs" in capsys.readouterr().out
    (proj / "params.yaml").write_text("mapping: [oops\n")
    assert ra.main(["save", "--archive", str(tmp_path / "c"), "--root", str(proj)]) == 2
    assert "not valid YAML" in capsys.readouterr().out and not (tmp_path / "c").exists()



def test_check_tells_whether_the_data_match_the_archives(tmp_path, capsys):
    proj, archive = tmp_path / "proj", tmp_path / "archive"
    mapping = {"methods": ["lmm"], "Ks": [0], "seeds": [0], "synth": "data/synth/S.pt", "lm": {}}
    (proj / "params.yaml").parent.mkdir(parents=True)
    (proj / "params.yaml").write_text(json.dumps({"mapping": mapping}))
    args = ["--archive", str(archive), "--root", str(proj)]
    assert ra.main(["check", *args]) == 2 and "S.pt is missing" in capsys.readouterr().out
    (proj / "data/synth").mkdir(parents=True)
    (proj / "data/synth/S.pt").write_bytes(b"S")
    _fake_run(proj, "lmm", 0, 0)
    assert ra.main(["save", *args]) == 0  # records the data's fingerprint beside the runs
    assert ra.main(["check", *args]) == 0 and "the same" in capsys.readouterr().out.splitlines()[-1]
    (proj / "data/synth/S.pt").write_bytes(b"S made elsewhere")
    assert ra.main(["check", *args]) == 1 and "trained again" in capsys.readouterr().out
