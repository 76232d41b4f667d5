"""The one training loop (every model in the project trains here).

A fixed number of AdamW steps with linear warmup and cosine decay, gradient clipping, bf16 autocast
where the hardware has it, periodic evaluation on a fixed set of validation batches, dvclive logging
of the curves, and a checkpoint callback at each evaluation. What a batch is and what the loss is are
the caller's: `get_batch(split, generator) -> tuple of tensors`, `loss_fn(model, batch) -> scalar`
(default: `model(*batch)[1]`, the (logits, loss) convention of models/transformer.py).

The same code runs under torchrun (lmm_utils/training/distributed.py): `batch_size` is then the *global* batch,
every process draws it from the same seeded generator and trains on its own slice of rows through
DistributedDataParallel; rank 0 logs, shows progress and runs `on_eval` (checkpoints).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from lmm_utils.core.params import dataclass_from
from lmm_utils.models.transformer import autocast, resolve_precision
from lmm_utils.training import distributed

Batch = tuple[torch.Tensor, ...]


@dataclass
class TrainConfig:
    steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto = cuda if available, else cpu
    precision: str = "auto"  # auto = bf16 autocast where native, else fp32
    # torch CPU threads; 0 = keep the process's: the stage sets them from its params (pretrain.train.threads,
    # mapping.method.threads // workers, ...), shared out when runs go side by side (a second thread that has to wait
    # for a busy core slows training 10x: 926 vs 14,877 tokens/s). The default was 1, which silently overrode the
    # stage: LM^M trained on one thread where params.yaml says 2 (2 threads: 1.42x its tokens/s when it runs alone)
    threads: int = 0

    @classmethod
    def from_params(cls, section: dict, **overrides) -> TrainConfig:
        # threads is the stage's (torch.set_num_threads before training), not the loop's: it is read there, not here
        section = {k: v for k, v in (section or {}).items() if k != "threads"}
        return replace(dataclass_from(cls, section, "train"), **overrides)

    def resolved_device(self) -> torch.device:
        """auto = CUDA if present, else CPU; under torchrun, the GPU of this process's LOCAL_RANK."""
        return distributed.default_device(self.device)


def set_threads(n: int) -> None:
    """torch CPU threads for this process (0: leave the default)."""
    if n:
        torch.set_num_threads(int(n))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) * (cfg.lr - cfg.min_lr)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """Weight decay on matrices (linears, embeddings), none on gains and biases (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def _default_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    return model(*batch)[1]


@torch.no_grad()
def evaluate(model: nn.Module, get_batch: Callable, cfg: TrainConfig, loss_fn: Callable = _default_loss) -> float:
    """Mean loss over cfg.eval_batches validation batches, always the same ones (seeded generator).
    Under torchrun each process scores its slice of each batch and the mean is taken over processes."""
    ctx = distributed.setup(cfg.resolved_device())
    device = ctx.device
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(cfg.seed + 1)
    losses = []
    for _ in range(cfg.eval_batches):
        batch = tuple(t.to(device) for t in ctx.shard(get_batch("val", g)))
        with autocast(device, cfg.precision):
            losses.append(float(loss_fn(model, batch)))
    model.train(was_training)
    return ctx.mean(sum(losses) / max(1, len(losses)))


def train(
    model: nn.Module,
    get_batch: Callable[[str, torch.Generator], Batch],
    cfg: TrainConfig,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] = _default_loss,
    live_dir: str | Path | None = None,
    on_eval: Callable[[int, dict], None] | None = None,
    has_val: bool = True,
    progress: bool = True,
) -> dict:
    """Train in place for cfg.steps steps. Returns the history (losses, lr, throughput: `tokens` counts
    the elements of each batch's first tensor, evaluation and checkpoint time included).

    on_eval(step, history) runs after each evaluation and at the end (save a checkpoint there).
    live_dir: dvclive folder for the curves (None: no dvclive). dvclive is told not to touch
    dvc.yaml or create experiments: the pipeline declares its plots itself.
    Under torchrun (WORLD_SIZE > 1) only rank 0 logs, shows progress and calls on_eval.
    """
    ctx = distributed.setup(cfg.resolved_device())
    ctx.check_batch_size(cfg.batch_size)
    device = ctx.device
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed + ctx.rank)  # dropout: its own stream per process (rank 0 = the 1-process run)
    g = torch.Generator().manual_seed(cfg.seed)  # batches: the same global batches on every process
    model.to(device).train()
    net = ctx.wrap(model)  # DDP (gradients averaged over processes) or the model itself
    opt = make_optimizer(model, cfg)
    live = None
    if live_dir is not None and ctx.is_main:
        from dvclive import Live  # deferred: dvclive imports DVC and git (~1 s); only a logged run needs it

        live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    hist: dict = {"step": [], "train_loss": [], "lr": [], "val_step": [], "val_loss": []}
    n_tokens, t0, running = 0, time.perf_counter(), []

    def do_eval(step: int) -> None:
        if has_val:
            v = evaluate(model, get_batch, cfg, loss_fn)
            hist["val_step"].append(step)
            hist["val_loss"].append(v)
            if live is not None:
                live.step = step
                live.log_metric("val/loss", v)
        if on_eval is not None and ctx.is_main:
            on_eval(step, hist)

    bar = tqdm(range(cfg.steps), desc="train", disable=not (progress and ctx.is_main), mininterval=2.0)
    for step in bar:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        full = get_batch("train", g)
        batch = tuple(t.to(device) for t in ctx.shard(full))
        with autocast(device, cfg.precision):
            loss = loss_fn(net, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        n_tokens += full[0].numel()  # the global batch: throughput of all processes together
        running.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            mean = ctx.mean(sum(running) / len(running))  # every rank calls it: a collective
            running = []
            hist["step"].append(step + 1)
            hist["train_loss"].append(mean)
            hist["lr"].append(lr)
            bar.set_postfix(loss=f"{mean:.3f}")
            if live is not None:
                live.step = step + 1  # dvclive's x axis = optimizer steps done
                live.log_metric("train/loss", mean)
                live.log_metric("lr", lr)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            do_eval(step + 1)
    seconds = time.perf_counter() - t0
    hist.update(seconds=seconds, tokens=n_tokens, tokens_per_s=n_tokens / max(seconds, 1e-9),
                device=str(device), precision=resolve_precision(device, cfg.precision), config=asdict(cfg),
                world_size=ctx.world_size)
    if live is not None:
        live.end()
    return hist


__all__ = ["TrainConfig", "set_threads", "train", "evaluate", "lr_at", "make_optimizer"]
