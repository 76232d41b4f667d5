"""pipeline.stage --each: one stage command per value, run at once; the first failure stops the rest."""
import sys

import pytest

from lmm_utils.pipeline.stage import StageError, each_commands, run_together


def test_each_builds_one_command_per_value_with_its_own_output():
    cmds = each_commands("notebooks/06_pretrain.ipynb", "pretrain,features", ["x=1"], "modality=V,A",
                         "reports/06_pretrain_{modality}.ipynb")
    assert len(cmds) == 2
    assert cmds[0][-4:] == ["-p", "modality=V", "--out", "reports/06_pretrain_V.ipynb"]
    assert cmds[1][-4:] == ["-p", "modality=A", "--out", "reports/06_pretrain_A.ipynb"]
    assert ["-p", "x=1"] == cmds[0][cmds[0].index("x=1") - 1:cmds[0].index("x=1") + 1]


@pytest.mark.parametrize("each, out, match", [
    ("modality", None, "NAME=VALUE1"),
    ("=V,A", None, "NAME=VALUE1"),
    ("modality=V,A", "reports/06_pretrain.ipynb", "must hold"),
    ("modality=V,V", None, "repeats"),
])
def test_each_refuses_what_would_clash(each, out, match):
    with pytest.raises(StageError, match=match):
        each_commands("nb.ipynb", "", [], each, out)


def test_run_together_waits_for_all_and_a_failure_stops_the_others():
    ok = [sys.executable, "-c", "pass"]
    run_together([ok, ok], poll_s=0.05)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(StageError) as err:
        run_together([sleeper, failing], poll_s=0.05)
    # the sleeper was stopped (not waited for): it is listed as failed too
    assert "time.sleep(60)" in str(err.value) and "SystemExit(3)" in str(err.value)


def test_each_run_gets_its_share_of_the_cores(monkeypatch):
    from lmm_utils.pipeline.threads import THREADS_ENV, thread_share

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert thread_share(2) == 2
    monkeypatch.setenv(THREADS_ENV, "1")
    assert thread_share(2) == 1 and thread_share(0) == 0
    probe = [sys.executable, "-c", f"import os, sys; sys.exit(0 if os.environ['{THREADS_ENV}'] else 1)"]
    run_together([probe, probe], poll_s=0.05)
