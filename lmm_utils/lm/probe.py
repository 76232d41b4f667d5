"""How much pitch a frozen representation of audio holds: a linear probe from per-frame features to the 88-key
frame roll (issue 14, "an LM^A that hears pitch").

The probe is one linear layer (features standardised on the training frames) trained with binary cross-entropy;
its decision threshold is the one that maximises frame F1 on its own training frames. Train it on P's recordings
with P's *pseudo-motion* (methods.base.pseudo_motion: what a method may learn from), score it on T's true motion
through the evaluation door -- never on true motion for training. Frame F1 here counts (key, frame) cells over all
excerpts pooled, the key-down roll of core.motion.to_roll at the feature frame rate.

What is probed (each a function logmel -> (dim, T) frames):
    logmel_frames                  the log-mel itself (the reference: what h sees)
    code_frames(tokenizer)         one-hot of the token covering each frame (what the tokens keep)
    lm_frames(AudioLMFeatures)     LM^A's last hidden state at that token (what methods read)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lmm_utils.core.motion import N_KEYS

FrameFeatures = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ProbeConfig:
    steps: int = 400  # full-data Adam steps on minibatches of frames (a linear layer converges fast)
    batch_frames: int = 8192
    lr: float = 0.01
    weight_decay: float = 1e-4  # on the weights only: one-hot code features would otherwise memorise
    max_frames: int = 200_000  # training frames kept (a random subset beyond this)
    seed: int = 0
    thresholds: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)


@dataclass
class LinearProbe:
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    layer: torch.nn.Linear  # D -> 88
    threshold: float = 0.5

    @torch.no_grad()
    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        """(D, T) features -> (88, T) key-down probabilities."""
        x = (torch.as_tensor(np.asarray(frames), dtype=torch.float32).T - self.mean) / self.std
        return torch.sigmoid(self.layer(x)).T.numpy()

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return self.probabilities(frames) >= self.threshold


def _stack(features: Sequence[np.ndarray], rolls: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(features) != len(rolls) or not features:
        raise ValueError(f"need as many (non-zero) feature arrays as rolls, got {len(features)} and {len(rolls)}")
    xs, ys = [], []
    for f, r in zip(features, rolls):
        f, r = np.asarray(f, np.float32), np.asarray(r, np.float32)
        if r.shape[0] != N_KEYS or f.shape[1] != r.shape[1]:
            raise ValueError(f"features (D, T) and roll ({N_KEYS}, T) must share T, got {f.shape} and {r.shape}")
        xs.append(f.T)
        ys.append(r.T)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def cell_scores(ref: np.ndarray, est: np.ndarray) -> dict[str, float]:
    """Precision / recall / F1 over (key, frame) cells of two boolean rolls."""
    ref, est = np.asarray(ref, bool), np.asarray(est, bool)
    tp, n_ref, n_est = int((ref & est).sum()), int(ref.sum()), int(est.sum())
    p = tp / n_est if n_est else 0.0
    r = tp / n_ref if n_ref else 0.0
    return {"frame_p": p, "frame_r": r, "frame_f1": 2 * p * r / (p + r) if p + r else 0.0}


def fit_probe(features: Sequence[np.ndarray], rolls: Sequence[np.ndarray], cfg: ProbeConfig = ProbeConfig()) -> LinearProbe:
    """Train the linear probe on these (D, T) features and (88, T) target rolls; pick its threshold there."""
    x, y = _stack(features, rolls)
    g = torch.Generator().manual_seed(cfg.seed)
    if len(x) > cfg.max_frames:
        keep = torch.randperm(len(x), generator=g)[: cfg.max_frames]
        x, y = x[keep], y[keep]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    z = (x - mean) / std
    torch.manual_seed(cfg.seed)
    layer = torch.nn.Linear(z.shape[1], N_KEYS)
    opt = torch.optim.Adam([{"params": [layer.weight], "weight_decay": cfg.weight_decay},
                            {"params": [layer.bias], "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    for _ in range(cfg.steps):
        idx = torch.randint(len(z), (min(cfg.batch_frames, len(z)),), generator=g)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(z[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    probe = LinearProbe(mean, std, layer.eval())
    with torch.no_grad():
        prob = torch.sigmoid(layer(z)).numpy()
    ref = y.numpy() > 0.5
    probe.threshold = max(cfg.thresholds, key=lambda t: cell_scores(ref, prob >= t)["frame_f1"])
    return probe


def evaluate_probe(probe: LinearProbe, features: Sequence[np.ndarray], rolls: Sequence[np.ndarray]) -> dict[str, float]:
    """Pooled cell P/R/F1 of the probe's rolls against these (88, T) rolls."""
    x, y = _stack(features, rolls)
    est = probe.predict(x.T.numpy()).T
    return {**cell_scores(y.numpy() > 0.5, est), "threshold": probe.threshold, "n_frames": len(x)}


# -- what is probed ---------------------------------------------------------------------------------------
def logmel_frames(logmel: np.ndarray) -> np.ndarray:
    return np.asarray(logmel, np.float32)


def code_frames(tokenizer) -> FrameFeatures:
    """One-hot of each frame's token (an AudioTokenizer's codes), repeated over the token's frames."""
    def frames(logmel: np.ndarray) -> np.ndarray:
        codes = tokenizer.codes(np.asarray(logmel, np.float32)).numpy()
        rows = np.repeat(codes, tokenizer.frames_per_token)[: logmel.shape[1]]
        out = np.zeros((tokenizer.codebook_size, len(rows)), np.float32)
        out[rows, np.arange(len(rows))] = 1.0
        return out
    return frames


def lm_frames(lm_features) -> FrameFeatures:
    """LM^A's hidden state per frame (methods.lm_features.AudioLMFeatures: exactly what methods read)."""
    return lambda logmel: lm_features(np.asarray(logmel, np.float32))


def probe_f1(extract: FrameFeatures, train_mels: Sequence[np.ndarray], train_rolls: Sequence[np.ndarray],
             test_mels: Sequence[np.ndarray], test_rolls: Sequence[np.ndarray],
             cfg: ProbeConfig = ProbeConfig()) -> dict[str, float]:
    """Fit the probe on extract(train_mels) -> train_rolls, score it on the test pair."""
    probe = fit_probe([extract(m) for m in train_mels], train_rolls, cfg)
    return evaluate_probe(probe, [extract(m) for m in test_mels], test_rolls)


__all__ = ["ProbeConfig", "LinearProbe", "fit_probe", "evaluate_probe", "cell_scores", "logmel_frames",
           "code_frames", "lm_frames", "probe_f1"]
