"""scripts/resume_sweep.sh's guard on an archive made by other training code (the sweep itself is too long to test:
the script is run in a scratch git repository that has no params.yaml, so it stops right after the guard)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "resume_sweep.sh"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@invalid"]


def _commit(repo: Path, rel: str, text: str) -> str:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", rel], cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> tuple[Path, str, str]:
    """A project whose archive was made at `old`; HEAD (`new`) changed a training module since."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "scripts").mkdir()
    shutil.copy2(SCRIPT, tmp_path / "scripts" / SCRIPT.name)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "paper.yaml").write_text("mapping: {}\n")
    old = _commit(tmp_path, "lmm_utils/models/transcriber.py", "THRESHOLD = 0.5\n")
    new = _commit(tmp_path, "lmm_utils/models/transcriber.py", "THRESHOLD = 0.4\n")
    (tmp_path / "runs_archive" / "paper").mkdir(parents=True)
    (tmp_path / "runs_archive" / "paper" / "code_commit").write_text(old + "\n")
    return tmp_path, old, new


def _resume(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/resume_sweep.sh", "paper", *args], cwd=repo, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})


def test_other_training_code_is_refused_with_the_way_out(repo):
    root, old, _ = repo
    proc = _resume(root)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert old[:7] in proc.stdout and "--redecode" in proc.stdout
    assert (root / "runs_archive/paper/code_commit").read_text().strip() == old  # nothing moved
    assert not (root / "runs_archive/paper/redecode_from").exists()


def test_redecode_moves_the_archive_to_this_code_and_remembers_where_it_came_from(repo):
    root, old, new = repo
    proc = _resume(root, "--redecode")
    # it then goes on to apply the profile, which this scratch repository cannot do
    assert "transcriber.py" in proc.stdout, proc.stdout + proc.stderr
    assert (root / "runs_archive/paper/code_commit").read_text().strip() == new
    assert (root / "runs_archive/paper/redecode_from").read_text().strip() == old


def test_a_mistyped_option_is_refused(repo):
    root, old, _ = repo
    proc = _resume(root, "--redcode")
    assert proc.returncode == 2 and "usage" in proc.stdout
    assert (root / "runs_archive/paper/code_commit").read_text().strip() == old
