"""Data parallelism for the one training loop (training/loop.py), with one code path for 1 or N processes.

    python script.py                                  # one process: nothing here does anything
    torchrun --nproc_per_node 4 script.py             # N processes: DistributedDataParallel

Under torchrun (WORLD_SIZE > 1 in the environment) `setup` joins the process group from the env vars
torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): nccl on CUDA, gloo on CPU.
Every rank draws the *same* global batch from the same seeded generator and keeps only its own
contiguous slice of rows (`shard`), so N processes see exactly the batches one process would see,
and DDP's gradient average over equal slices equals the single-process gradient of the global batch
whenever the loss is a mean over rows (or over equally many elements per row). Rank 0 logs and saves.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

Batch = tuple[torch.Tensor, ...]


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single process): the one that logs and writes files."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_rank() == 0


def default_device(requested: str = "auto") -> torch.device:
    """auto -> CUDA if present, else CPU. Under torchrun each process takes the GPU of its LOCAL_RANK."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None and env_world_size() > 1:
        device = torch.device("cuda", env_local_rank())
    if device.type == "cuda":
        configure_cuda_determinism()
    return device


def configure_cuda_determinism() -> bool:
    """With LMM_DETERMINISTIC=1: deterministic CUDA kernels, no TF32, no cuDNN autotuning (slower).

    Without it, GPU runs are reproducible only up to floating-point noise: cuDNN/cuBLAS pick kernels per
    run, some backward kernels add with atomics in no fixed order, and TF32/bf16 round differently from
    the CPU. Even with it, GPU results equal other GPU runs on the same hardware and software, not CPU runs.
    Untested here (no GPU in CI); torch raises if an op has no deterministic CUDA kernel.
    """
    if os.environ.get("LMM_DETERMINISTIC", "0") != "1":
        return False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for repeatable reductions
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return True


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ValueError(f"batch_size {batch_size} (the global batch) must be divisible by the number of "
                             f"processes ({self.world_size}); each process trains on batch_size / world_size rows")

    def shard(self, batch: Batch) -> Batch:
        """This rank's contiguous slice of rows of every tensor of a global batch (dim 0)."""
        if not self.distributed:
            return batch
        n = batch[0].shape[0]
        if n % self.world_size:
            raise ValueError(f"a batch of {n} rows cannot be split evenly over {self.world_size} processes")
        per = n // self.world_size
        return tuple(t[self.rank * per:(self.rank + 1) * per] for t in batch)

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around the model when there are several processes, else the model."""
        if not self.distributed:
            return model

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, output_device=ids[0] if ids else None)

    def mean(self, value: float) -> float:
        """The mean of a float over all ranks (every rank must call it)."""
        if not self.distributed:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(device_ids=[self.device.index]) if self.device.type == "cuda" else dist.barrier()

    def _comm_device(self) -> torch.device:
        # nccl reduces CUDA tensors only; gloo reduces CPU tensors.
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def setup(device: str | torch.device = "auto") -> DistContext:
    """Join the torchrun process group if WORLD_SIZE > 1 (idempotent), and pick this process's device."""
    dev = default_device(device) if isinstance(device, str) else torch.device(device)
    world = env_world_size()
    if world <= 1:
        return DistContext(0, 1, dev)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world} but {missing} are not set: launch with torchrun "
                           "(torchrun --nproc_per_node N script.py), which sets them")
    if dev.type == "cuda":
        if dev.index is None or dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"process {env_rank()} wants {dev} but only {torch.cuda.device_count()} GPUs are visible")
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, **kwargs)
        atexit.register(cleanup)  # torch warns at exit when a process group is left open
    return DistContext(dist.get_rank(), dist.get_world_size(), dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistContext", "setup", "cleanup", "is_main_process", "default_device", "env_world_size",
           "env_rank", "env_local_rank"]
