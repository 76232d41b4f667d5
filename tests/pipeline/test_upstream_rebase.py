"""upstream_rebase: an archived upstream follows a notebook edit of injected, untracked parameter defaults, and
nothing else."""
import json
import subprocess

import pytest

from lmm_utils.pipeline import upstream_rebase as ur
from lmm_utils.pipeline.upstream_archive import UpstreamError

STAGE = "pretrain_M"
NB = "notebooks/06_pretrain_M.ipynb"
CMD = "python -m lmm_utils.pipeline.stage notebooks/06_pretrain_M.ipynb --sections pretrain,mapping"


def _notebook(Ks=(1, 4, 16), lm_layers=2, code="train()", extra="", as_list=True) -> bytes:
    params = {"mapping": {"Ks": list(Ks), "lmm": {"lmM_model": {"n_layer": lm_layers}}}, "seed": 0}
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items()) + extra
    lines = source.splitlines(keepends=True) if as_list else source   # nbformat writes lists, as the real ones
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": lines, "outputs": []},
                    {"cell_type": "code", "metadata": {}, "source": code, "outputs": []}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1).encode()


def _entry(archived: bytes, path=NB, cmd=CMD) -> dict:
    return {"cmd": cmd, "deps": [{"path": path, "hash": "md5", "md5": ur.md5(archived), "size": len(archived)},
                                 {"path": "lmm_utils/lm", "md5": "code.dir"}],
            "params": {"params.yaml": {"mapping.lmm.lmM_model": {"n_layer": 2}}},
            "outs": [{"path": "data/lm/M", "md5": "lm.dir"}]}


def _archive(tmp_path, archived: bytes, now: bytes, cmd=CMD, more: dict | None = None):
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / NB).write_bytes(now)
    up = tmp_path / "archive/_upstream"
    up.mkdir(parents=True)
    (up / "lock.json").write_text(json.dumps({STAGE: _entry(archived, cmd=cmd), **(more or {})}))
    committed = {ur.md5(b): b for b in (archived, now)}                 # both versions in "git history"
    history = lambda root, path, want: ("abc1234", committed[want]) if want in committed else None  # noqa: E731
    return tmp_path / "archive", history


def test_an_injected_untracked_default_is_rebased_with_its_evidence(tmp_path):
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


@pytest.mark.parametrize("now, why", [
    (_notebook(lm_layers=4), "tracked params differ"),
    (_notebook(code="train(faster=True)"), "outside its parameters cell"),
    (_notebook(extra="\nimport torch; torch.manual_seed(3)"), "other than `name = literal`"),
    (_notebook(extra="\nseed = int('3')"), "other than a literal"),
])
def test_a_tracked_param_a_code_edit_or_a_statement_is_refused_and_the_archive_kept(tmp_path, now, why):
    archive, history = _archive(tmp_path, _notebook(), now)
    before = (archive / "_upstream/lock.json").read_bytes()
    with pytest.raises(UpstreamError, match=why):
        ur.rebase_upstream(archive, tmp_path, history=history)
    assert (archive / "_upstream/lock.json").read_bytes() == before
    assert not (archive / "_upstream" / ur.REBASED_FILE).exists()


def test_a_default_the_runner_does_not_set_over_is_refused(tmp_path):
    archive, history = _archive(tmp_path, _notebook(), _notebook(Ks=(1, 8, 16)),
                                cmd="python -m lmm_utils.pipeline.stage notebooks/06_pretrain_M.ipynb --sections pretrain")
    with pytest.raises(UpstreamError, match="defaults the stage runs with differ"):
        ur.rebase_upstream(archive, tmp_path, history=history)


def test_an_uncommitted_notebook_or_an_archived_version_missing_from_history_is_refused(tmp_path):
    old, new = _notebook(), _notebook(Ks=(2,))
    archive, _ = _archive(tmp_path, old, new)
    with pytest.raises(UpstreamError, match="not in git"):
        ur.rebase_upstream(archive, tmp_path, history=lambda *a: None)
    only_old = lambda root, path, want: ("abc1234", old) if want == ur.md5(old) else None  # noqa: E731
    with pytest.raises(UpstreamError, match="commit the notebook first"):
        ur.rebase_upstream(archive, tmp_path, history=only_old)


def test_a_later_stage_refused_leaves_the_earlier_one_unrebased(tmp_path):
    old, new = _notebook(), _notebook(Ks=(1, 8, 16))
    other_nb = "notebooks/other.ipynb"
    other_old, other_new = _notebook(code="a()"), _notebook(code="b()")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / other_nb).write_bytes(other_new)
    other = {"cmd": CMD, "deps": [{"path": other_nb, "md5": ur.md5(other_old), "size": 1}], "params": {}, "outs": []}
    archive, history = _archive(tmp_path, old, new, more={"synth": other})
    committed = {ur.md5(b): b for b in (old, new, other_old, other_new)}
    before = (archive / "_upstream/lock.json").read_bytes()
    with pytest.raises(UpstreamError, match="synth"):
        ur.rebase_upstream(archive, tmp_path, history=lambda root, path, want: ("c", committed[want]))
    assert (archive / "_upstream/lock.json").read_bytes() == before


def test_injected_names_and_dotted_differences():
    assert ur.injected_names("python -m lmm_utils.pipeline.stage nb.ipynb --sections a,b -p method=x "
                             "--each modality=V,A --out r.ipynb") == {"a", "b", "method", "modality"}
    assert ur._differing({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 1, "c": 3}, "d": {"x": 1}}) == ["a.c", "d"]
    assert ur._differing({"a": 1}, {"a": 1, "e": 2}) == ["e"]


def test_git_version_finds_a_committed_version_by_md5(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "nb.ipynb").write_bytes(b"one")
    subprocess.run(["git", "add", "nb.ipynb"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=tmp_path, check=True)
    (tmp_path / "nb.ipynb").write_bytes(b"two")
    commit, data = ur.git_version(tmp_path, "nb.ipynb", ur.md5(b"one"))
    assert data == b"one" and len(commit) == 40
    assert ur.git_version(tmp_path, "nb.ipynb", ur.md5(b"two")) is None          # not committed
