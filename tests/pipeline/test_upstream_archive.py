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


def _fresh_clone(root, **lock):
    """The deterministic stages ran; the trained ones did not (their lock entries are another profile's)."""
    _project(root, lm=b"other", outs_md5="default-profile")
    for d in ("data/lm", "data/synth"):
        ua._remove(root / d)

    def commit(r, stages):  # what `dvc commit -f` records: the inputs as they are now, the outputs restored
        (r / "dvc.lock").write_text(yaml.safe_dump(_lock(**lock)))
    return commit


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
    other = _project(tmp_path / "q", lm=b"retrained", outs_md5="o2")
    with pytest.raises(ua.UpstreamError, match="--replace"):
        ua.save_upstream(archive, other, STAGES, up_to_date=CLEAN)
    assert (kept / "files/data/lm/V/lm.pt").read_bytes() == b"V-weights"
    ua.save_upstream(archive, other, STAGES, replace=True, up_to_date=CLEAN)
    assert (kept / "files/data/lm/V/lm.pt").read_bytes() == b"retrained"


def test_restore_keeps_the_archived_outputs_when_dvc_records_the_same_inputs(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    new = tmp_path / "new"
    commit = _fresh_clone(new)
    msg = ua.restore_upstream(archive, new, commit=commit, up_to_date=STALE)
    assert msg.startswith("restored")
    assert (new / "data/lm/V/lm.pt").read_bytes() == b"V-weights"
    assert (new / "data/synth/S.pt").read_bytes() == b"S"
    assert (new / "reports/05_synth.ipynb").read_text() == '{"cells": ["executed"]}'


def test_restore_removes_them_again_when_code_data_or_params_changed(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    new = tmp_path / "new"
    commit = _fresh_clone(new, params={"pretrain.seed": 1})
    with pytest.raises(ua.UpstreamError, match="params"):
        ua.restore_upstream(archive, new, commit=commit, up_to_date=STALE)
    assert not (new / "data/lm/V").exists() and not (new / "data/synth").exists()


def test_restore_refuses_to_overwrite_outputs_made_here_and_needs_the_stages_before(tmp_path):
    archive = tmp_path / "archive"
    ua.save_upstream(archive, _project(tmp_path / "old"), STAGES, up_to_date=CLEAN)
    here = _project(tmp_path / "here", lm=b"mine")
    with pytest.raises(ua.UpstreamError, match="already here"):
        ua.restore_upstream(archive, here, commit=lambda r, s: None, up_to_date=STALE)
    assert (here / "data/lm/V/lm.pt").read_bytes() == b"mine"
    assert "left as they are" in ua.restore_upstream(archive, here, commit=None, up_to_date=CLEAN)
    bare = tmp_path / "bare"
    _fresh_clone(bare)
    (bare / "data/scores/U_V.jsonl").unlink()
    with pytest.raises(ua.UpstreamError, match="dvc repro perform"):
        ua.restore_upstream(archive, bare, commit=lambda r, s: None, up_to_date=STALE)
    with pytest.raises(ua.UpstreamError, match="no archived upstream"):
        ua.restore_upstream(tmp_path / "none", bare)
