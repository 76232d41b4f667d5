"""run_archive: a sweep's finished runs saved into a folder git keeps, and restored where the grid reuses them
(the grid's side: tests/mapping/test_mapping.py, a restored run is reused)."""
import json
import shutil

import pytest

from lmm_utils.core.paths import RUN_METRICS_DIR, RUNS_DIR, run_metrics_path, run_path
from lmm_utils.pipeline import run_archive as ra

MAPPING = {"methods": ["lmm"], "Ks": [0], "seeds": [0], "method": {}, "eval": {}, "synth": "data/synth/S.pt", "lm": {}}


def _fake_run(root, method, K, seed, fp="fp-1", finished=True):
    d = run_path(root / RUNS_DIR, method, K, seed)
    (d / "scores").mkdir(parents=True)
    (d / "lmM").mkdir()
    (d / "lmM" / "lm.pt").write_bytes(b"m")
    (d / "h.pt").write_bytes(b"h")
    (d / "g.pt").write_bytes(b"g")
    (d / "draw.json").write_text("{}")
    (d / "predictions.json.gz").write_bytes(b"p")
    if finished:
        (d / "metrics.json").write_text(json.dumps({"fingerprint": fp, "run": d.name}))
        (d / "scores" / "h.json").write_text('{"rows": []}')
        flat = run_metrics_path(root / RUN_METRICS_DIR, method, K, seed)
        flat.parent.mkdir(parents=True, exist_ok=True)
        flat.write_text(json.dumps({"run": d.name}))
    return d


def test_save_keeps_what_the_stages_read_once_and_never_overwrites_unasked(tmp_path):
    proj, archive = tmp_path / "proj", tmp_path / "archive"
    _fake_run(proj, "lmm", 0, 0)
    _fake_run(proj, "lmm", 0, 1, finished=False)
    (_fake_run(proj, "lmm", 0, 2) / "h.pt").unlink()
    _fake_run(proj, "supervised", 4, 2)
    rep = ra.save(archive, proj, data_fp="d1")
    assert rep.copied == ["lmm-K0-s0", "supervised-K4-s2"]
    assert rep.skipped == {"lmm-K0-s1": "not finished", "lmm-K0-s2": "not finished: no h.pt"}
    kept = run_path(archive, "lmm", 0, 0)
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == sorted(
        ["metrics.json", "draw.json", "predictions.json.gz", "h.pt", "scores/h.json.gz", "lmM/lm.pt",
         ra.FLAT_METRICS, ra.ARCHIVE_INFO])
    assert json.loads((kept / ra.ARCHIVE_INFO).read_text()) == {"data_fingerprint": "d1"}
    assert ra.save(archive, proj).unchanged == ["lmm-K0-s0", "supervised-K4-s2"]
    # a run made again here (another fingerprint) replaces the archived one only when asked
    run = run_path(proj / RUNS_DIR, "lmm", 0, 0)
    (run / "metrics.json").write_text(json.dumps({"fingerprint": "fp-2"}))
    assert "pass --replace" in ra.save(archive, proj).skipped["lmm-K0-s0"]
    assert ra.recorded_fingerprint(kept) == "fp-1"
    rep = ra.save(archive, proj, replace=True, weights=True)
    assert "lmm-K0-s0" in rep.copied and ra.recorded_fingerprint(kept) == "fp-2" and (kept / "g.pt").read_bytes() == b"g"
    # only the sweep's runs, when asked
    assert ra.save(tmp_path / "other", proj, runs={("supervised", 4, 2)}).copied == ["supervised-K4-s2"]


def test_restore_fills_missing_or_unfinished_folders_and_puts_the_flat_metrics_back(tmp_path):
    proj, archive, fresh = tmp_path / "proj", tmp_path / "archive", tmp_path / "fresh"
    for K in (0, 4):
        _fake_run(proj, "lmm", K, 0)
    _fake_run(proj, "basis", 16, 1)
    ra.save(archive, proj)
    _fake_run(fresh, "basis", 16, 1, fp="made-here")  # a finished run folder already there is never replaced
    _fake_run(fresh, "lmm", 4, 0, finished=False)     # an unfinished one is
    rep = ra.restore(archive, fresh)
    assert rep.copied == ["lmm-K0-s0", "lmm-K4-s0"] and "delete" in rep.skipped["basis-K16-s1"]
    assert ra.recorded_fingerprint(run_path(fresh / RUNS_DIR, "basis", 16, 1)) == "made-here"
    back = run_path(fresh / RUNS_DIR, "lmm", 0, 0)
    assert ra.recorded_fingerprint(back) == "fp-1" and not (back / ra.FLAT_METRICS).exists()
    assert (back / "scores" / "h.json").read_text() == '{"rows": []}'  # unzipped, where the grid reads it
    assert (back / "lmM" / "lm.pt").read_bytes() == b"m"
    assert json.loads(run_metrics_path(fresh / RUN_METRICS_DIR, "lmm", 0, 0).read_text()) == {"run": "lmm-K0-s0"}
    run_metrics_path(fresh / RUN_METRICS_DIR, "lmm", 0, 0).unlink()  # a restore cut short: filled in next time
    assert ra.restore(archive, fresh).unchanged == ["lmm-K0-s0", "lmm-K4-s0"]
    assert run_metrics_path(fresh / RUN_METRICS_DIR, "lmm", 0, 0).is_file()
    with pytest.raises(ra.ArchiveError, match="no run archive"):
        ra.restore(tmp_path / "nowhere", fresh)


def test_cli_saves_the_sweep_restores_everything_and_reports_bad_params(tmp_path, capsys):
    proj = tmp_path / "proj"
    _fake_run(proj, "lmm", 0, 0)
    _fake_run(proj, "lmm", 4, 0)
    (proj / "params.yaml").write_text(json.dumps({"mapping": MAPPING}))
    assert ra.main(["save", "--archive", str(tmp_path / "a"), "--root", str(proj)]) == 0
    assert "saved 1 runs" in capsys.readouterr().out
    assert ra.main(["save", "--archive", str(tmp_path / "a"), "--root", str(proj), "--all"]) == 0
    assert "saved 1 runs, 1 already there" in capsys.readouterr().out
    # restore takes every archived run, whatever params.yaml's sweep is (the grid reuses the sweep's)
    assert ra.main(["restore", "--archive", str(tmp_path / "a"), "--root", str(tmp_path / "fresh")]) == 0
    assert "restored 2 runs" in capsys.readouterr().out
    (proj / "params.yaml").write_text("mapping: [oops\n")
    assert ra.main(["save", "--archive", str(tmp_path / "c"), "--root", str(proj)]) == 2
    assert "not valid YAML" in capsys.readouterr().out and not (tmp_path / "c").exists()
    (proj / "params.yaml").write_text(json.dumps({"mapping": {**MAPPING, "methods": ["lmn"]}}))
    assert ra.main(["save", "--archive", str(tmp_path / "c"), "--root", str(proj)]) == 2
    assert "lmn" in capsys.readouterr().out and not (tmp_path / "c").exists()


def test_check_counts_the_archived_runs_saved_from_this_projects_data(tmp_path, capsys):
    proj, archive = tmp_path / "proj", tmp_path / "archive"
    (proj / "params.yaml").parent.mkdir(parents=True)
    (proj / "params.yaml").write_text(json.dumps({"mapping": MAPPING}))
    args = ["--archive", str(archive), "--root", str(proj)]
    assert ra.main(["check", *args]) == 2 and "S.pt" in capsys.readouterr().out
    (proj / "data/synth").mkdir(parents=True)
    (proj / "data/synth/S.pt").write_bytes(b"S")
    _fake_run(proj, "lmm", 0, 0)
    assert ra.main(["save", *args]) == 0  # records the data's fingerprint with the run
    assert ra.main(["check", *args]) == 0 and "1 of 1 archived runs" in capsys.readouterr().out.splitlines()[-1]
    (proj / "data/synth/S.pt").write_bytes(b"S made elsewhere")
    assert ra.main(["check", *args]) == 1 and "0 of 1" in capsys.readouterr().out


def test_a_restored_run_not_re_made_on_other_data_is_not_saved_as_if_this_data_made_it(tmp_path):
    old, new, archive = tmp_path / "old", tmp_path / "new", tmp_path / "archive"
    _fake_run(old, "lmm", 0, 0)
    ra.save(archive, old, data_fp="d-old")
    assert ra.restore(archive, new).copied == ["lmm-K0-s0"]
    rep = ra.save(archive, new, data_fp="d-new")  # the new machine's data: the run is not re-made yet
    assert rep.copied == [] and rep.skipped == {"lmm-K0-s0": "restored from other data, not re-made here yet"}
    assert ra.save(archive, new, data_fp="d-old").unchanged == ["lmm-K0-s0"]  # the same data: nothing to do
    run = run_path(new / RUNS_DIR, "lmm", 0, 0)  # the grid re-makes it: a whole new folder, no restore mark
    shutil.rmtree(run)
    _fake_run(new, "lmm", 0, 0, fp="fp-2")
    assert ra.save(archive, new, data_fp="d-new", replace=True).copied == ["lmm-K0-s0"]
    assert json.loads((run_path(archive, "lmm", 0, 0) / ra.ARCHIVE_INFO).read_text()) == {"data_fingerprint": "d-new"}


def test_status_counts_the_runs_planned_and_archived_and_tabulates_the_archived(tmp_path, capsys):
    proj, archive = tmp_path / "proj", tmp_path / "a"
    for K, seed, f1 in [(0, 0, 0.5), (0, 1, 0.7), (4, 0, 0.9)]:
        d = _fake_run(proj, "lmm", K, seed)
        doc = json.loads((d / "metrics.json").read_text())
        (d / "metrics.json").write_text(json.dumps({**doc, "h": {"T": {"all": {"note_f1": f1}}}}))
    mapping = {**MAPPING, "Ks": [0, 4], "seeds": [0, 1]}
    (proj / "params.yaml").write_text(json.dumps({"mapping": mapping}))
    assert ra.main(["save", "--archive", str(archive), "--root", str(proj)]) == 0
    counts, runs = ra.status(archive, mapping)
    assert counts == {"lmm": (3, 4)} and sorted((r["K"], r["seed"]) for r in runs) == [(0, 0), (0, 1), (4, 0)]
    (tmp_path / "more.yaml").write_text(json.dumps({"mapping": {"methods": ["lmm", "supervised"], "Ks": [0, 4, 16]}}))
    capsys.readouterr()
    assert ra.main(["status", "--archive", str(archive), "--root", str(proj), "--profile",
                    str(tmp_path / "more.yaml")]) == 0
    out = capsys.readouterr().out
    assert "3 of 12 runs archived, 9 to go" in out and "lmm: 3 of 6" in out and "supervised: 0 of 6" in out
    assert "| lmm | 0 | 2 | 0.600 ± 0.141 |" in out and "| lmm | 4 | 1 | 0.900 |" in out
