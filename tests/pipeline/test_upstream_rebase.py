"""upstream_rebase: an archived upstream follows a notebook edit of untracked parameter defaults, and nothing else."""
import json

import pytest

from lmm_utils.pipeline import upstream_rebase as ur
from lmm_utils.pipeline.upstream_archive import UpstreamError

STAGE = "pretrain_M"
NB = "notebooks/06_pretrain_M.ipynb"


def _notebook(Ks=(1, 4, 16), lm_layers=2, code="train()") -> bytes:
    params = {"mapping": {"Ks": list(Ks), "lmm": {"lmM_model": {"n_layer": lm_layers}}}, "seed": 0}
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": source, "outputs": []},
                    {"cell_type": "code", "metadata": {}, "source": code, "outputs": []}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1).encode()


def _archive(tmp_path, archived: bytes, now: bytes):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / NB).write_bytes(now)
    up = tmp_path / "archive/_upstream"
    up.mkdir(parents=True)
    lock = {STAGE: {"cmd": "run", "deps": [{"path": NB, "hash": "md5", "md5": ur.md5(archived), "size": len(archived)},
                                           {"path": "lmm_utils/lm", "md5": "code.dir"}],
                    "params": {"params.yaml": {"mapping.lmm.lmM_model": {"n_layer": 2}}},
                    "outs": [{"path": "data/lm/M", "md5": "lm.dir"}]}}
    (up / "lock.json").write_text(json.dumps(lock))
    history = lambda root, path, want: ("abc1234", archived) if want == ur.md5(archived) else None  # noqa: E731
    return tmp_path / "archive", history


def test_an_untracked_default_is_rebased_with_its_evidence(tmp_path):
    old, new = _notebook(), _notebook(Ks=(1, 8, 16))
    archive, history = _archive(tmp_path, old, new)
    msg = ur.rebase_upstream(archive, tmp_path, history=history)
    assert "pretrain_M" in msg and "mapping.Ks" in msg
    dep = json.loads((archive / "_upstream/lock.json").read_text())[STAGE]["deps"][0]
    assert dep["md5"] == ur.md5(new) and dep["size"] == len(new)
    record, = json.loads((archive / "_upstream" / ur.REBASED_FILE).read_text())
    assert record == {"stage": STAGE, "path": NB, "from_md5": ur.md5(old), "to_md5": ur.md5(new),
                      "from_commit": "abc1234", "differing_defaults": ["mapping.Ks"]}
    assert "nothing to rebase" in ur.rebase_upstream(archive, tmp_path, history=history)   # idempotent


@pytest.mark.parametrize("now, why", [(_notebook(lm_layers=4), "tracked params differ"),
                                      (_notebook(code="train(faster=True)"), "outside its parameters cell")])
def test_a_tracked_param_or_a_code_edit_is_refused_and_the_archive_kept(tmp_path, now, why):
    archive, history = _archive(tmp_path, _notebook(), now)
    before = (archive / "_upstream/lock.json").read_bytes()
    with pytest.raises(UpstreamError, match=why):
        ur.rebase_upstream(archive, tmp_path, history=history)
    assert (archive / "_upstream/lock.json").read_bytes() == before
    assert not (archive / "_upstream" / ur.REBASED_FILE).exists()


def test_a_version_missing_from_history_is_refused(tmp_path):
    archive, _ = _archive(tmp_path, _notebook(), _notebook(Ks=(2,)))
    with pytest.raises(UpstreamError, match="not in git"):
        ur.rebase_upstream(archive, tmp_path, history=lambda *a: None)


def test_differing_keys_are_dotted_and_whole_where_one_side_is_not_a_dict():
    assert ur._differing({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 1, "c": 3}, "d": {"x": 1}}) == ["a.c", "d"]
    assert ur._differing({"a": 1}, {"a": 1, "e": 2}) == ["e"]
