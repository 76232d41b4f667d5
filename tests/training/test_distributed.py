"""training.loop under torchrun: 2 CPU processes (gloo) end with the same weights and losses as 1 process
on the same global batches."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("dist_worker.py")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")  # CPU + gloo even on a GPU machine: the test compares fp32 CPU runs
    return env


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def test_two_processes_match_one(tmp_path):
    _run([sys.executable, str(WORKER), str(tmp_path / "one.pt")], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(WORKER), str(tmp_path / "two.pt")], tmp_path)
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert one["hist"]["world_size"] == 1 and two["hist"]["world_size"] == 2
    assert one["hist"]["tokens"] == two["hist"]["tokens"]  # the same global batches
    assert two["hist"]["train_loss"] == pytest.approx(one["hist"]["train_loss"], abs=1e-5)
    assert two["hist"]["val_loss"] == pytest.approx(one["hist"]["val_loss"], abs=1e-5)
    for name, p in one["state"].items():
        torch.testing.assert_close(two["state"][name], p, atol=1e-5, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


def test_uneven_global_batch_is_refused(monkeypatch):
    from lmm_utils.training.distributed import DistContext

    with pytest.raises(ValueError, match="divisible"):
        DistContext(rank=0, world_size=3).check_batch_size(8)
    ctx = DistContext(rank=1, world_size=2)
    a, b = ctx.shard((torch.arange(8), torch.arange(8) * 10))
    assert a.tolist() == [4, 5, 6, 7] and b.tolist() == [40, 50, 60, 70]


def test_deterministic_cuda_mode_is_opt_in(monkeypatch):
    import torch

    from lmm_utils.training.distributed import configure_cuda_determinism

    monkeypatch.delenv("LMM_DETERMINISTIC", raising=False)
    assert configure_cuda_determinism() is False
    monkeypatch.setenv("LMM_DETERMINISTIC", "1")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        assert configure_cuda_determinism() is True
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cuda.matmul.allow_tf32
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)
