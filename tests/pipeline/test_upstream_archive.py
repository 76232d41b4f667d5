"""upstream_archive: the trained stages' outputs kept beside the run archive and put back only when DVC records
the same inputs (dvc itself is faked: the real route runs in the paper project, README "Paper sweep")."""
import json

import pytest
import yaml

from lmm_utils.pipeline import upstream_archive as ua

DVC_YAML = {"stages": {
    "pretrain": {"cmd": "train lm", "outs": ["data/lm/V", {"reports/metrics/pretrain_V.json": {"cache": False}}],
                 "metrics": [{"reports/headline/lm_V.json": {"cache": False}}]},
    "synth": {"cmd": "fit S", "outs": ["data/synth", "reports/05_synth.ipynb"]},
}}


def _lock(deps_md5="d1", params=None, outs_md5="o1"):
    def entry(cmd, outs):
        return {"cmd": cmd, "deps": [{"path": "data/scores/U_V.jsonl", "md5": deps_md5},
                                     {"path": "lmm_utils/lm", "md5": "code"}],
                "params": {"params.yaml": params or {"pretrain.seed": 0}},
                "outs": [{"path": o, "md5": outs_md5} for o in outs]}
    return {"schema": "2.0", "stages": {"pretrain": entry("train lm", ["data/lm/V"]),
                                        "synth": entry("fit S", ["data/synth"])}}


def _project(root, lm=b"V-weights", **lock):
    (root / "data/lm/V").mkdir(parents=True)
    (root / "data/lm/V/lm.pt").write_bytes(lm)
    (root / "data/synth").mkdir(parents=True)
    (root / "data/synth/S.pt").write_bytes(b"S")
    (root / "data/scores").mkdir(parents=True)
    (root / "data/scores/U_V.jsonl").write_text("{}\n")
    (root / "reports/metrics").mkdir(parents=True)
    (root / "reports/metrics/pretrain_V.json").write_text('{"bits": 1.0}')
    (root / "reports/05_synth.ipynb").write_text('{"cells": ["executed"]}')
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (root / "dvc.lock").write_text(yaml.safe_dump(_lock(**lock)))
    return root


class FakeDvc:
    """What `dvc status` and `dvc commit` see in a fresh clone: the inputs as they are now (`params`), the files
    as they are on disk; status is clean when dvc.lock records those inputs and the outputs are there."""

    def __init__(self, params=None):
        self.inputs = _lock(params=params)["stages"]
        self.commits = []

    def up_to_date(self, root, stages):
        lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
        stale = [s for s in stages if ua._inputs(lock[s]) != ua._inputs(self.inputs[s])
                 or not all((root / o).exists() for o in ua._outputs(lock[s]))]
        return not stale, json.dumps({s: ["changed"] for s in stale})

    def commit(self, root, stages):
        self.commits.append(stages)


def _fresh_clone(root, params=None):
    """The deterministic stages ran; the trained ones did not (dvc.lock has another profile's entries for them,
    git another profile's reports)."""
    _project(root, lm=b"other", outs_md5="default-profile", params={"pretrain.seed": "default"})
    for d in ("data/lm", "data/synth"):
        ua._remove(root / d)
    (root / "reports/05_synth.ipynb").write_text("git's copy")
    return FakeDvc(params)


STAGES = ("pretrain", "synth")
CLEAN = lambda root, stages: (True, "{}")  # noqa: E731
STALE = lambda root, stages: (False, '{"pretrain": ["changed outs"]}')  # noqa: E731


def test_stage_outputs_reads_outs_and_metrics_of_either_form(tmp_path):
    _project(tmp_path)
    assert ua.stage_outputs(tmp_path, "pretrain") == ["data/lm/V", "reports/metrics/pretrain_V.json",
                                                      "reports/headline/lm_V.json"]
    with pytest.raises(ua.UpstreamError, match="no stage 'nope'"):
        ua.stage_outputs(tmp_path, "nope")


def test_save_copies_up_to_date_outputs_once_and_never_overwrites_unasked(tmp_path):
    proj, archive = _project(tmp_path / "p"), tmp_path / "archive"
    with pytest.raises(ua.UpstreamError, match="not what dvc.lock records"):
        ua.save_upstream(archive, proj, STAGES, up_to_date=STALE)
    assert not archive.exists()
    assert "saved" in ua.save_upstream(archive, proj, STAGES, up_to_date=CLEAN)
    kept = archive / ua.UPSTREAM_DIR
    assert (kept / "files/data/lm/V/lm.pt").read_bytes() == b"V-weights"
    assert (kept / "files/reports/metrics/pretrain_V.json").is_file()
    # a notebook under another name: nbstripout (a git filter on *.ipynb) would strip the executed report
    assert (kept / "files/reports/05_synth.ipynb.kept").is_file() and not (kept / "files/reports/05_synth.ipynb").exists()
    assert set(json.loads((kept / "lock.json").read_text())) == set(STAGES)
    assert "already archived" in ua.save_upstream(archive, proj, STAGES, up_to_date=CLEAN)
    # the same outputs recorded under other inputs (a dvc commit after a harmless edit): the archive takes the record
    (proj / "dvc.lock").write_text(yaml.safe_dump(_lock(deps_md5="d2")))
    assert "saved" in ua.save_upstream(archive, proj, STAGES, up_to_date=CLEAN)
    assert json.loads((kept / "lock.json").read_text())["pretrain"]["deps"][0]["md5"] == "d2"
    other = _project(tmp_path / "q", lm=b"retrained", outs_md5="o2")
    with pytest.raises(ua.UpstreamError, match="--replace-upstream"):
        ua.save_upstream(archive, other, STAGES, up_to_date=CLEAN)
    assert (kept / "files/data/lm/V/lm.pt").read_bytes() == b"V-weights"
    ua.save_upstream(archive, other, STAGES, replace=True, up_to_date=CLEAN)
    assert (kept / "files/data/lm/V/lm.pt").read_bytes() == b"retrained"


def test_restore_keeps_the_archived_outputs_when_dvc_finds_them_up_to_date_and_then_commits(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    new = tmp_path / "new"
    dvc = _fresh_clone(new)
    msg = ua.restore_upstream(archive, new, commit=dvc.commit, up_to_date=dvc.up_to_date, fits=dvc.up_to_date)
    assert msg.startswith("restored") and dvc.commits == [STAGES]
    assert (new / "data/lm/V/lm.pt").read_bytes() == b"V-weights"
    assert (new / "data/synth/S.pt").read_bytes() == b"S"
    assert (new / "reports/05_synth.ipynb").read_text() == '{"cells": ["executed"]}'
    assert yaml.safe_load((new / "dvc.lock").read_text())["stages"]["pretrain"]["outs"][0]["md5"] == "o1"
    assert not (new / ".upstream-restore.aside").exists()


def test_restore_puts_everything_back_and_commits_nothing_when_the_inputs_changed(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    new = tmp_path / "new"
    dvc = _fresh_clone(new, params={"pretrain.seed": 1})
    lock_before = (new / "dvc.lock").read_bytes()
    with pytest.raises(ua.UpstreamError, match="code, data or params changed"):
        ua.restore_upstream(archive, new, commit=dvc.commit, up_to_date=dvc.up_to_date, fits=dvc.up_to_date)
    assert dvc.commits == []  # nothing enters DVC's run cache, so `dvc repro` cannot check the outputs out again
    assert not (new / "data/lm/V").exists() and not (new / "data/synth").exists()
    assert (new / "reports/05_synth.ipynb").read_text() == "git's copy"
    assert (new / "dvc.lock").read_bytes() == lock_before


def test_restore_rolls_back_when_the_commit_fails(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    new = tmp_path / "new"
    dvc = _fresh_clone(new)
    lock_before = (new / "dvc.lock").read_bytes()

    def failing_commit(root, stages):
        raise ua.UpstreamError("dvc commit failed: output 'reports/x.json' does not exist")
    with pytest.raises(ua.UpstreamError, match="commit failed"):
        ua.restore_upstream(archive, new, commit=failing_commit, up_to_date=dvc.up_to_date, fits=dvc.up_to_date)
    assert not (new / "data/lm/V").exists() and (new / "dvc.lock").read_bytes() == lock_before
    assert (new / "reports/05_synth.ipynb").read_text() == "git's copy"


def test_restore_refuses_to_overwrite_outputs_made_here_and_needs_the_stages_before(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    here = _project(tmp_path / "here", lm=b"mine")
    with pytest.raises(ua.UpstreamError, match="already here"):
        ua.restore_upstream(archive, here, commit=lambda r, s: None, up_to_date=STALE, fits=STALE)
    assert (here / "data/lm/V/lm.pt").read_bytes() == b"mine"
    assert "left as they are" in ua.restore_upstream(archive, here, up_to_date=CLEAN)
    bare = tmp_path / "bare"
    _fresh_clone(bare)
    (bare / "data/scores/U_V.jsonl").unlink()
    with pytest.raises(ua.UpstreamError, match="dvc repro perform"):
        ua.restore_upstream(archive, bare, commit=lambda r, s: None, up_to_date=STALE, fits=STALE)
    with pytest.raises(ua.UpstreamError, match="no archived upstream"):
        ua.restore_upstream(tmp_path / "none", bare)


def test_restored_outputs_not_yet_in_dvcs_cache_fit_but_any_other_change_does_not():
    uncached = [{"changed outs": {"data/lm/V": "not in cache", "reports/06_pretrain_V.ipynb": "not in cache"}}]
    assert all(ua._only_uncached(c) for c in uncached)
    assert not ua._only_uncached({"changed outs": {"data/lm/V": "modified"}})
    assert not ua._only_uncached({"changed deps": {"params.yaml": {"pretrain.seed": "modified"}}})
    assert not ua._only_uncached("changed checksum")
