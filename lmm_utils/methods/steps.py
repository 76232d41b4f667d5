"""What one optimizer step of a method draws and runs: random crops of h's inputs (Crops), rows of an encoded
score batch (batch_rows), and the step loop of the methods whose step mixes several terms (optimize).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from lmm_utils.core.motion import Performance, to_roll
from lmm_utils.methods.augment import Augmenter
from lmm_utils.methods.base import MethodConfig
from lmm_utils.models.performer import ScoreBatch, performer_loss, play_deviations
from lmm_utils.training.loop import TrainConfig, lr_at


def _pad_to(x: np.ndarray, n: int, n_mels: int) -> np.ndarray:
    if x.shape[1] >= n:
        return x
    pad = np.repeat(x[:, -1:], n - x.shape[1], axis=1)
    pad[:n_mels] = x[:n_mels].min()  # log-mel rows: the item's silence; LM rows: the last feature
    return np.concatenate([x, pad], axis=1)


class Crops:
    """Random fixed-length crops of h-input items (C, T), with optional target rolls and item weights."""

    def __init__(self, inputs: list[np.ndarray], perfs: list[Performance] | None, crop: int, fps: float,
                 n_mels: int, weights: list[float] | None = None,
                 augmenter: Augmenter | None = None):
        assert inputs, "need at least one item"
        assert augmenter is None or perfs is not None, "only labelled crops are re-recorded (methods.augment)"
        self.crop, self.augmenter = crop, augmenter
        self.power = torch.tensor([augmenter.recording_power(x) for x in inputs]) if augmenter else None
        self.x, self.y = [], []
        for i, x in enumerate(inputs):
            x = _pad_to(np.asarray(x, np.float32), crop, n_mels)
            self.x.append(torch.from_numpy(np.ascontiguousarray(x)))
            if perfs is not None:
                roll = to_roll(perfs[i], fps, x.shape[1])
                self.y.append(torch.from_numpy(np.stack([roll[k] for k in ("onset", "frame", "velocity")])))
        self.w = torch.tensor(weights if weights is not None else [1.0] * len(inputs), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.x)

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """(x,) without targets, else (x, y, w): n crops, items and offsets drawn from g (x re-recorded by
        `augmenter` where given, from its own generator)."""
        xs, ys, ws, items = [], [], [], []
        for _ in range(n):
            i = int(torch.randint(len(self.x), (1,), generator=g))
            s = int(torch.randint(self.x[i].shape[1] - self.crop + 1, (1,), generator=g))
            xs.append(self.x[i][:, s:s + self.crop])
            if self.y:
                ys.append(self.y[i][:, :, s:s + self.crop])
            ws.append(self.w[i])
            items.append(i)
        out = (torch.stack(xs),)
        if self.augmenter is not None:
            out = (self.augmenter(out[0], self.power[items]),)
        if self.y:
            out += (torch.stack(ys), torch.stack(ws))
        return out


def batch_rows(batch: ScoreBatch, idx: torch.Tensor, device: torch.device) -> ScoreBatch:
    """Rows `idx` of an encoded score batch, on `device`."""
    return ScoreBatch.from_tuple(tuple(t[idx] for t in batch.as_tuple())).to(device)


def shared_forward(net: nn.Module, full: ScoreBatch, parts: list[torch.Tensor | None],
                   device: torch.device) -> list[tuple[ScoreBatch, torch.Tensor] | None]:
    """One forward of g's Performer over the rows of several terms (row indices into `full`; None = term off),
    split back: per term its rows and its raw deviations (None where off). g's recurrent pass costs about the same
    for 4 rows as for 10, so one pass per encoded pool instead of one per term. Same padding as each term's own
    batch (the rows of one pool), so the values per row are those of separate forwards; each row draws its own
    dropout, as before."""
    used = [p for p in parts if p is not None]
    if not used:
        return [None] * len(parts)
    raw = net.deviations(batch_rows(full, torch.cat(used), device))
    out, at = [], 0
    for p in parts:
        out.append(None if p is None else (batch_rows(full, p, device), raw[at:at + len(p)]))
        at += 0 if p is None else len(p)
    return out


def target_loss(net: nn.Module, rows: ScoreBatch, raw: torch.Tensor, targets: dict[str, torch.Tensor],
                idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """performer_loss of g's rows (their raw deviations from shared_forward, played as the Performer plays them:
    the same as net(rows)) against per-note targets (models.performer.note_targets' dict, its rows idx)."""
    out = play_deviations(raw, rows, net.cfg, net.start)
    return performer_loss(out, {k: v[idx].to(device) for k, v in targets.items()}, rows.mask)["loss"]


# Not training.loop.train: a mixed step draws its own batches per term, and lmm's phases continue one optimizer and schedule (start, opt); train() would reseed the global RNG, draw from another generator, restart AdamW and decay only matrices -- other numbers.
def optimize(params: list[nn.Parameter], steps: int, loss_fn: Callable[[int, torch.Generator], torch.Tensor],
             cfg: MethodConfig, start: int = 0, total: int | None = None,
             opt: torch.optim.Optimizer | None = None) -> tuple[list[float], torch.optim.Optimizer]:
    """`steps` AdamW steps of loss_fn(step, generator), lr warmup + cosine over `total` steps (training.loop.lr_at).
    `start` continues a schedule (phased methods); returns (losses, optimizer)."""
    total = total or steps
    tc = TrainConfig(steps=total, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup)
    if opt is None:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(cfg.seed * 7919 + start)
    losses = []
    for step in range(start, start + steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        loss = loss_fn(step, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    return losses, opt


__all__ = ["Crops", "batch_rows", "optimize", "shared_forward", "target_loss"]
