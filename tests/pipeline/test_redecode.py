"""pipeline.redecode: a decode-free method's finished run, re-decoded, is the run this code's grid would make and
reuses -- and no method whose training decodes h's output can be re-decoded."""
import json
import shutil
import subprocess
import sys
from dataclasses import asdict

import pytest
import tiny_project
from factories import TINY_MAP

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import jsonable
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, read_predictions
from lmm_utils.mapping import grid
from lmm_utils.mapping import run as mapping
from lmm_utils.methods import METHODS
from lmm_utils.methods.checkpoints import load_h
from lmm_utils.methods.wrappers import HModel
from lmm_utils.models.transcriber import DecodeConfig
from lmm_utils.pipeline.redecode import (
    CHECKOUT,
    MAP_NOTEBOOK,
    REDECODED_KEY,
    RedecodeError,
    code_fingerprint_at,
    decodes_in_training,
    notebook_imports,
    redecode_run,
    redecode_runs,
    same_code_fingerprint,
    same_code_fingerprint_cli,
    stage_code_fingerprint,
)

DECODE_FREE = [m for m in METHODS if not decodes_in_training(m)]
SWEEP = {**TINY_MAP, "methods": ["supervised", "lmm"], "Ks": [2], "seeds": [0]}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tiny_project.make_tiny_project(tmp_path_factory.mktemp("tiny_project"))


def _refuse_decoding(monkeypatch, method: str) -> None:
    """Every name h's decoding goes by in lmm_utils (models.transcriber.decode, methods.wrappers.fast_decode, and the
    modules that imported them), and HModel.transcribe, raise."""
    def refuse(*_, **__):
        raise AssertionError(f"{method} decoded h's output in training")

    for name, mod in list(sys.modules.items()):
        if name.startswith("lmm_utils."):
            for attr in ("decode", "fast_decode", "suppress_harmonics"):
                if callable(getattr(mod, attr, None)):
                    monkeypatch.setattr(mod, attr, refuse)
    monkeypatch.setattr(HModel, "transcribe", refuse)


@pytest.mark.parametrize("method", DECODE_FREE)
def test_decode_free_methods_never_decode_in_training(tiny_root, method, monkeypatch):
    _refuse_decoding(monkeypatch, method)
    mapping.train_run(method, 2, 0, TINY_MAP, {}, root=tiny_root)


def test_the_decoding_check_catches_lmm(tiny_root, monkeypatch):
    assert decodes_in_training("lmm") and decodes_in_training("lmm-no_recon")
    _refuse_decoding(monkeypatch, "lmm")
    with pytest.raises(AssertionError, match="decoded h's output"):
        mapping.train_run("lmm", 2, 0, TINY_MAP, {}, root=tiny_root)


def _made_at(tiny_root, tmp_path, method: str, decode: DecodeConfig, monkeypatch) -> tuple:
    """A run made by mapping.run with `decode` as the default decoding (an older code's decoding)."""
    monkeypatch.setattr(mapping, "DecodeConfig", lambda: decode)
    m = mapping.run(method, 2, 0, TINY_MAP, {}, root=tiny_root, runs_dir=tmp_path / "runs",
                    metrics_dir=tmp_path / "metrics", extra={grid.FINGERPRINT_KEY: "old"})
    monkeypatch.undo()
    return m, tmp_path / "runs" / method / f"{method}-K2-s0"


def test_redecode_at_the_runs_own_decoding_reproduces_its_predictions(tiny_root, tmp_path, monkeypatch):
    decode = DecodeConfig(onset_threshold=0.3)
    before, d = _made_at(tiny_root, tmp_path, "supervised", decode, monkeypatch)
    preds, stored = (d / PREDICTIONS_FILE).read_bytes(), json.loads((d / "metrics.json").read_text())
    after = redecode_run(d, EvaluationData(tiny_root), FeatureConfig(), "new", "abc1234", decode=decode,
                         lm_root=tiny_root)
    assert (d / PREDICTIONS_FILE).read_bytes() == preds
    after = json.loads((d / "metrics.json").read_text())
    assert after["h"] == stored["h"] and after["g"] == stored["g"] and before["K"] == after["K"]


def test_redecode_predicts_h_again_keeps_g_and_records_where_the_run_came_from(tiny_root, tmp_path, monkeypatch):
    old_decode, new_decode = DecodeConfig(onset_threshold=0.9, harmonic_ratio=0.0), DecodeConfig(onset_threshold=0.2)
    before, d = _made_at(tiny_root, tmp_path, "supervised", old_decode, monkeypatch)
    old = read_predictions(d / PREDICTIONS_FILE)
    after = redecode_run(d, EvaluationData(tiny_root), FeatureConfig(), "new", "abc1234", decode=new_decode,
                         lm_root=tiny_root, metrics_dir=tmp_path / "metrics")
    new = read_predictions(d / PREDICTIONS_FILE)
    assert set(new) == set(old) and new["g"] == old["g"] and jsonable(after["g"]) == jsonable(before["g"])
    h = load_h(d / "h.pt", lm_root=tiny_root)
    data = EvaluationData(tiny_root)
    for i in data.eval_ids(None):
        assert new["h"][i].to_dict() == h.transcribe(data.logmel("T", i, FeatureConfig()), new_decode).to_dict()
        assert (new["h_timbre"][i].to_dict()
                == h.transcribe(data.logmel("T_timbre", i, FeatureConfig()), new_decode).to_dict())
    assert new["h"] != old["h"]  # the lower threshold hears notes the old one did not
    assert after[grid.FINGERPRINT_KEY] == "new" and after["decode"]["onset_threshold"] == 0.2
    assert after[REDECODED_KEY]["trained_by"] == "abc1234" and after[REDECODED_KEY]["trained_fingerprint"] == "old"
    assert after[REDECODED_KEY]["trained_decode"]["onset_threshold"] == 0.9
    assert after["train"] == before["train"] and after["pairs"] == before["pairs"]
    assert {"h.pt", "g.pt", "draw.json", "metrics.json", PREDICTIONS_FILE} <= {p.name for p in d.iterdir()}
    flat = json.loads((tmp_path / "metrics/supervised/supervised-K2-s0.json").read_text())
    assert flat["h"]["T"]["all"]["note_f1"] == after["h"]["T"]["all"]["note_f1"]


def test_a_run_whose_training_decodes_is_refused(tiny_root, tmp_path, monkeypatch):
    _, d = _made_at(tiny_root, tmp_path, "lmm", DecodeConfig(), monkeypatch)
    metrics = (d / "metrics.json").read_text()
    with pytest.raises(RedecodeError, match="train it again"):
        redecode_run(d, EvaluationData(tiny_root), FeatureConfig(), "new", "abc1234", lm_root=tiny_root)
    assert (d / "metrics.json").read_text() == metrics  # left as it was


def test_a_run_of_other_excerpts_is_refused(tiny_root, tmp_path, monkeypatch):
    _, d = _made_at(tiny_root, tmp_path, "supervised", DecodeConfig(), monkeypatch)
    with pytest.raises(RedecodeError, match="excerpts"):
        redecode_run(d, EvaluationData(tiny_root), FeatureConfig(), "new", "abc1234", max_items=1, lm_root=tiny_root)


def _trained(root, sweep, method: str, code: str = "trained code") -> str:
    """The fingerprint a run of `method` made by code of fingerprint `code` records on these params and data."""
    return grid.run_fingerprint(method, 2, 0, sweep, {}, code, grid.data_fingerprint(sweep, root))


def test_the_grid_reuses_a_redecoded_run_and_re_makes_lmm(tiny_root, monkeypatch):
    old_decode = DecodeConfig(onset_threshold=0.9)
    monkeypatch.setattr(mapping, "DecodeConfig", lambda: old_decode)
    for method in SWEEP["methods"]:  # runs "an older code" made: another fingerprint, another decoding
        mapping.run(method, 2, 0, TINY_MAP, {}, root=tiny_root,
                    extra={grid.FINGERPRINT_KEY: _trained(tiny_root, SWEEP, method)})
    monkeypatch.undo()
    here = grid.code_fingerprint()  # the grid below runs in this process, with its modules
    wrong = redecode_runs(tiny_root, SWEEP, {}, "abc1234", "other code", code_fp=here, log=None)
    assert not wrong.redecoded and "not made by abc1234" in wrong.skipped["supervised-K2-s0"]
    report = redecode_runs(tiny_root, SWEEP, {}, "abc1234", "trained code", code_fp=here, log=None)
    assert report.redecoded == ["supervised-K2-s0"] and "lmm-K2-s0" in report.skipped
    again = redecode_runs(tiny_root, SWEEP, {}, "abc1234", "trained code", code_fp=here, log=None)
    assert again.current == ["supervised-K2-s0"] and not again.redecoded
    done = {m: grid.run_grid(m, [2], [0], SWEEP, {}, root=tiny_root, log=None)[0] for m in SWEEP["methods"]}
    assert done["supervised"].reused and not done["lmm"].reused
    assert done["supervised"].metrics["decode"] == json.loads(json.dumps(asdict(DecodeConfig())))
    assert done["supervised"].metrics[REDECODED_KEY]["trained_fingerprint"] == _trained(tiny_root, SWEEP, "supervised")


def test_the_fingerprint_recorded_is_the_one_the_map_stages_kernel_computes(tiny_root, tmp_path):
    """A process that imports what notebooks/07_map.ipynb imports, then runs the grid as its last cell does, reuses a
    run re-decoded with stage_code_fingerprint -- whatever this test process has loaded."""
    root = tmp_path / "project"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("runs"))
    sweep = {**SWEEP, "methods": ["supervised"]}
    mapping.run("supervised", 2, 0, TINY_MAP, {}, root=root,
                extra={grid.FINGERPRINT_KEY: _trained(root, sweep, "supervised")})
    assert redecode_runs(root, sweep, {}, "abc1234", "trained code", log=None).redecoded == ["supervised-K2-s0"]
    kernel = "\n".join([*notebook_imports(CHECKOUT / MAP_NOTEBOOK), "import json, sys",
                        "done = grid.run_grid('supervised', [2], [0], json.loads(sys.argv[1]), {}, root=sys.argv[2], log=None)",
                        "print(done[0].reused)"])
    out = subprocess.run([sys.executable, "-c", kernel, json.dumps(sweep), str(root)], cwd=CHECKOUT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "True"


def test_the_code_fingerprint_is_of_the_source_tree_it_is_given(tiny_root, tmp_path):
    """The fingerprint of a copy of this checkout's source is this checkout's; edit a training module in the copy and
    it changes (so code_fingerprint_at, which fingerprints a commit's tree the same way, is of that commit's code)."""
    copy = tmp_path / "tree"
    for part in ("lmm_utils", "notebooks"):
        shutil.copytree(CHECKOUT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    here = stage_code_fingerprint(SWEEP, tiny_root)
    assert stage_code_fingerprint(SWEEP, tiny_root, code_dir=copy) == here
    with open(copy / "lmm_utils/methods/supervised.py", "a") as f:
        f.write("# an edit\n")
    assert stage_code_fingerprint(SWEEP, tiny_root, code_dir=copy) != here


def test_a_commits_code_fingerprint_is_that_trees(tiny_root):
    """code_fingerprint_at(HEAD) is the working tree's when the working tree's source is HEAD's (as in CI)."""
    clean = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "lmm_utils", "notebooks"], cwd=CHECKOUT)
    if clean.returncode != 0:
        pytest.skip("not a git checkout, or its source differs from HEAD (uncommitted edits)")
    assert code_fingerprint_at("HEAD", SWEEP, tiny_root) == stage_code_fingerprint(SWEEP, tiny_root)
    with pytest.raises(RedecodeError, match="git archive"):
        code_fingerprint_at("no-such-commit", SWEEP, tiny_root)


def test_resume_sweeps_fingerprint_check_says_equal_unequal_or_cannot(tiny_root, capsys):
    """The check scripts/resume_sweep.sh runs when training modules differ from an archive's commit: HEAD's tree is this
    checkout's (equal, exit 0); an unknown commit cannot be compared (exit 2, so the script refuses)."""
    clean = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "lmm_utils", "notebooks"], cwd=CHECKOUT)
    if clean.returncode != 0:
        pytest.skip("not a git checkout, or its source differs from HEAD (uncommitted edits)")
    equal, then, now = same_code_fingerprint("HEAD", tiny_root)
    assert equal and then == now
    assert same_code_fingerprint_cli("HEAD", str(tiny_root), str(CHECKOUT)) == 0
    assert same_code_fingerprint_cli("no-such-commit", str(tiny_root), str(CHECKOUT)) == 2
    assert "cannot compare" in capsys.readouterr().out


def test_resume_sweeps_fingerprint_check_refuses_other_training_code(tiny_root, monkeypatch, capsys):
    """Exit 1 (the script refuses) when the commit's tree fingerprints otherwise, as c4302ae's does against the paper
    archive's a113493 (stood in for here: CI's checkout may hold no history)."""
    from lmm_utils.pipeline import redecode

    monkeypatch.setattr(redecode, "code_fingerprint_at", lambda *a, **k: "0" * 16)
    assert same_code_fingerprint_cli("HEAD", str(tiny_root), str(CHECKOUT)) == 1
    assert "0000000000000000 at HEAD" in capsys.readouterr().out
