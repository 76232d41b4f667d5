"""The README's DVC remote and queue recipes, on a one-stage toy pipeline in a temporary git repo
(never the real pipeline): repro -> push to a local-folder remote -> git clone -> pull -> repro in the
clone reuses the cache; and queued experiments (`dvc exp run --queue` + `dvc queue start -j 2`)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
DVC = [str(BIN / "dvc")] if (BIN / "dvc").exists() else [sys.executable, "-m", "dvc"]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh([*DVC, *args], cwd, check)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return sh(["git", *args], cwd)


def wait_for_queue(repo: Path, seconds: float) -> str:
    """Poll `dvc queue status` until nothing is queued or running (the workers run in the background
    and stop when the queue is empty); returns the last status table."""
    deadline = time.time() + seconds
    while True:
        status = dvc("queue", "status", cwd=repo).stdout
        if ("Queued" not in status and "Running" not in status) or time.time() > deadline:
            return status
        time.sleep(2)


def toy_repo(root: Path, runs_log: Path) -> Path:
    """git + dvc repo with one stage laid out like the project's: reads params n, writes out.txt (cached), a
    headline metrics.json (the only DVC metric) and details.json (the full numbers, a plain output), and appends a
    line to runs_log (outside the repo) each time it actually runs."""
    repo = root / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    dvc("init", "-q", cwd=repo)
    dvc("config", "core.analytics", "false", cwd=repo)
    dvc("config", "core.check_update", "false", cwd=repo)
    (repo / "params.yaml").write_text("n: 3\n")
    code = ("import json, yaml; n = yaml.safe_load(open('params.yaml'))['n']; open('out.txt', 'w').write('x' * n); "
            "json.dump({'n': n, 'n2': n * n}, open('metrics.json', 'w')); "
            "json.dump({'per_item': {str(i): i * n for i in range(3)}}, open('details.json', 'w')); "
            f"open({str(runs_log)!r}, 'a').write(str(n) + '\\n')")
    stage = {"cmd": f'python -c "{code}"', "params": ["n"], "outs": ["out.txt", {"details.json": {"cache": False}}],
             "metrics": [{"metrics.json": {"cache": False}}]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": stage}}, sort_keys=False))
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "toy pipeline", cwd=repo)
    return repo


def experiments(shown: list[dict]) -> dict[str, dict]:
    """{experiment name: its data} from `dvc exp show --json` (baselines and their experiments, any depth)."""
    out: dict[str, dict] = {}

    def walk(state: dict) -> None:
        if state.get("name") and state.get("data"):
            out[state["name"]] = state["data"]
        for exp_range in state.get("experiments") or []:
            for rev in exp_range.get("revs", []):
                walk(rev)

    for baseline in shown:
        walk(baseline)
    return out


def test_push_clone_pull_reuses_cache(tmp_path):
    runs = tmp_path / "runs.log"
    repo = toy_repo(tmp_path, runs)
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "storage", str(remote), cwd=repo)
    dvc("repro", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "results", cwd=repo)
    dvc("push", cwd=repo)
    assert any(p.is_file() for p in remote.rglob("*")), "push wrote nothing to the remote"

    git("clone", "-q", str(repo), "clone", cwd=tmp_path)
    clone = tmp_path / "clone"
    assert not (clone / "out.txt").exists()  # data is not in git
    dvc("pull", cwd=clone)
    assert (clone / "out.txt").read_text() == "xxx"
    out = dvc("repro", cwd=clone).stdout
    assert "didn't change" in out or "skipping" in out.lower(), out
    assert runs.read_text().split() == ["3"]  # the stage ran once, in the original repo only
    assert "up to date" in dvc("status", cwd=clone).stdout.lower()


@pytest.mark.slow
def test_queued_experiments_see_only_tracked_files(tmp_path):
    """Every experiment is queued first and the queue runs once (each `dvc queue start` pays for its workers' start):
    a queued experiment is a snapshot of the workspace taken when it is queued, so later commits don't touch it."""
    runs = tmp_path / "runs.log"
    repo = toy_repo(tmp_path, runs)
    dvc("repro", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "baseline", cwd=repo)
    for n in (4, 5):
        dvc("exp", "run", "--queue", "-S", f"n={n}", "--name", f"n{n}", cwd=repo)

    # The pitfall: a queued experiment runs in a temp copy made from git, so an untracked file is missing.
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    stage = dvc_yaml["stages"]["make"]
    stage["cmd"] = stage["cmd"].replace('python -c "', "python -c \"open('extra.txt').read(); ", 1)
    stage["deps"] = ["extra.txt"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    (repo / "extra.txt").write_text("untracked")  # not git-added
    git("add", "dvc.yaml", cwd=repo)
    git("commit", "-qm", "stage reads extra.txt", cwd=repo)
    dvc("exp", "run", "--queue", "-S", "n=6", "--name", "untracked", cwd=repo)
    git("add", "extra.txt", cwd=repo)  # the fix: staged (not committed) files are copied into the temp run
    dvc("exp", "run", "--queue", "-S", "n=7", "--name", "staged", cwd=repo)

    dvc("queue", "start", "-j", "2", cwd=repo)
    status = wait_for_queue(repo, 300)
    rows = {line.split()[1]: line for line in status.splitlines()[1:] if len(line.split()) > 1}
    for name in ("n4", "n5", "staged"):
        assert "Success" in rows.get(name, ""), status
    assert "Failed" in rows.get("untracked", ""), status
    logs = dvc("queue", "logs", "untracked", cwd=repo, check=False)
    assert "extra.txt" in logs.stdout + logs.stderr, logs.stdout + logs.stderr

    exps = experiments(json.loads(dvc("exp", "show", "--json", "--num", "2", cwd=repo).stdout))
    assert {"n4", "n5", "staged"} <= set(exps), sorted(exps)
    for n in (4, 5):  # each with its headline metrics, and nothing else as metrics (details.json is a plain output)
        assert exps[f"n{n}"]["metrics"] == {"metrics.json": {"data": {"n": n, "n2": n * n}}}, exps[f"n{n}"]["metrics"]
        assert exps[f"n{n}"]["params"]["params.yaml"]["data"] == {"n": n}
    assert sorted(runs.read_text().split()) == ["3", "4", "5", "7"]  # the untracked run stopped before its work
    assert (repo / "out.txt").read_text() == "xxx"  # queued runs happen in temp copies, not the workspace
