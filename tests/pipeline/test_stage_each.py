"""pipeline.stage --each: one stage command per value, run at once; the first failure stops the rest. And the
kernel's environment (no $CI)."""
import os
import sys

import pytest

from lmm_utils.pipeline.stage import StageError, each_commands, kernel_env_without_ci, run_together


def test_each_builds_one_command_per_value_with_its_own_output():
    cmds = each_commands("notebooks/06_pretrain.ipynb", "pretrain,features", ["x=1"], "modality=V,A",
                         "reports/06_pretrain_{modality}.ipynb")
    assert len(cmds) == 2
    assert cmds[0][-4:] == ["-p", "modality=V", "--out", "reports/06_pretrain_V.ipynb"]
    assert cmds[1][-4:] == ["-p", "modality=A", "--out", "reports/06_pretrain_A.ipynb"]
    assert ["-p", "x=1"] == cmds[0][cmds[0].index("x=1") - 1:cmds[0].index("x=1") + 1]


@pytest.mark.parametrize("each, out, match", [
    ("modality", "r_{modality}.ipynb", "NAME=VALUE1"),
    ("=V,A", "r_{modality}.ipynb", "NAME=VALUE1"),
    ("modality=V,A", "reports/06_pretrain.ipynb", "holds"),
    ("modality=V,A", None, "holds"),
    ("modality=V,V", "r_{modality}.ipynb", "repeats"),
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
    assert thread_share(2) == 1 and thread_share(0) == 1   # torch's default (every core) is capped too
    probe = [sys.executable, "-c", f"import os, sys; sys.exit(0 if os.environ['{THREADS_ENV}'] else 1)"]
    run_together([probe, probe], poll_s=0.05)


def test_a_terminated_run_together_stops_its_runs(tmp_path):
    """SIGTERM to the process running the runs (DVC stopping the stage) leaves no run behind."""
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    script = (f"import os, sys, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c",
                               "import sys; from lmm_utils.pipeline.stage import run_together; "
                               f"run_together([[sys.executable, '-c', {script!r}]], poll_s=0.05)"])
    for _ in range(200):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)
    child = int(pid_file.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the run outlived the stage")
    assert parent.returncode != 0


def test_the_kernel_starts_without_ci_and_the_runner_keeps_it(monkeypatch):
    """A kernel started inside kernel_env_without_ci inherits no $CI (pyfluidsynth's import-time print stays out of
    the executed notebooks); the runner's own environment gets it back, also after an error."""
    monkeypatch.setenv("CI", "true")
    with kernel_env_without_ci():
        assert "CI" not in os.environ
    assert os.environ["CI"] == "true"
    with pytest.raises(RuntimeError), kernel_env_without_ci():
        raise RuntimeError("a failed notebook")
    assert os.environ["CI"] == "true"
    monkeypatch.delenv("CI")
    with kernel_env_without_ci():
        pass
    assert "CI" not in os.environ


_IMPORT_PAPERMILL = """
import importlib.util, sys
from lmm_utils.pipeline import stage
installed = importlib.util.find_spec("rfc3987_syntax") is not None
{skip}
import nbformat, papermill
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nbformat.validate(nb)  # nbformat still validates without the IRI checker
print(installed, "rfc3987_syntax" in sys.modules,
      sys.modules.get("rfc3987_syntax") is not None)
"""


@pytest.mark.parametrize("skip", [True, False])
def test_a_stage_process_imports_papermill_without_the_iri_grammar(skip):
    """skip_iri_grammar: papermill (nbformat -> jsonschema) loads without rfc3987_syntax's lark grammars, and nbformat
    validates notebooks as before; without the call the module is imported (so the check can fail)."""
    import subprocess

    code = _IMPORT_PAPERMILL.format(skip="stage.skip_iri_grammar()" if skip else "")
    installed, listed, loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                               check=True).stdout.split()
    if installed != "True":
        pytest.skip("rfc3987_syntax is not installed here: nothing to skip")
    assert loaded == str(not skip)
    assert listed == "True"  # jsonschema asked for it either way
