"""Judging S: spectral distance to FluidSynth per excerpt, a gradient check, speed.

  evaluate_synth   log-mel L1 and spectral convergence per excerpt (summarize: their means)
  gradient_check   autograd vs central finite differences, per input and for the parameters
  measure_speed    frames/s, real-time factor, forward+backward time
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from lmm_utils.core.motion import N_KEYS
from lmm_utils.models.synth import SynthBase
from lmm_utils.synth.pairs import SynthPairs


def spectral_metrics(pred: torch.Tensor, target: torch.Tensor, log_floor: float) -> dict[str, float]:
    """For one excerpt's (n_mels, T) log-mels: mean |log-mel difference| (nats) over all bins and over
    the frames where the target sounds (> 40 dB above the floor somewhere), and spectral convergence
    || |S| - |Y| ||_F / || |Y| ||_F on mel magnitudes (sqrt of power)."""
    pred, target = pred.double(), target.double()
    diff = (pred - target).abs()
    active = target.amax(0) > math.log(log_floor) + math.log(1e4)
    mag_p = (torch.exp(pred) - log_floor).clamp(min=0).sqrt()
    mag_t = (torch.exp(target) - log_floor).clamp(min=0).sqrt()
    return {
        "logmel_l1": float(diff.mean()),
        "logmel_l1_active": float(diff[:, active].mean()) if bool(active.any()) else float("nan"),
        "spectral_convergence": float(torch.linalg.norm(mag_p - mag_t) / torch.linalg.norm(mag_t).clamp(min=1e-12)),
    }


@torch.no_grad()
def evaluate_synth(model: SynthBase, pairs: SynthPairs, use_piano: bool = False, progress: bool = False) -> list[dict]:
    """Per-excerpt spectral metrics of model(roll) against the pairs' log-mel (each at its real length).
    use_piano: give S the excerpt's piano index (else the average piano)."""
    model.eval()
    rows = []
    for i in tqdm(range(len(pairs)), desc="evaluate", disable=not progress):
        o, v, s, piano, y = pairs.item(i)
        pred = model(o, v, s, piano=piano if use_piano else None)
        rows.append({"id": pairs.ids[i], "piano": int(pairs.piano[i]),
                     **spectral_metrics(pred[0], y[0], model.feat.log_floor)})
    return rows


@torch.no_grad()
def predict_item(model: SynthBase, pairs: SynthPairs, i: int, use_piano: bool = False) -> np.ndarray:
    """S's (n_mels, T) log-mel for excerpt i of pairs."""
    o, v, s, piano, _ = pairs.item(i)
    return model.eval()(o, v, s, piano=piano if use_piano else None)[0].numpy()


def summarize(rows: list[dict], keys: tuple[str, ...] = ("logmel_l1", "logmel_l1_active", "spectral_convergence")) -> dict:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys} | {"n": len(rows)}


def markdown_table(rows: dict[str, dict], digits: int = 3) -> str:
    """{row name: {column: value}} -> a markdown table (columns from the first row)."""
    cols = list(next(iter(rows.values())).keys()) if rows else []
    fmt = lambda x: f"{x:.{digits}g}" if isinstance(x, float) else str(x)  # noqa: E731
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for name, r in rows.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------- gradient check

def gradient_check(model: SynthBase, frames: int = 40, seed: int = 0, eps: float = 1e-6,
                   n_directions: int = 3) -> dict[str, float]:
    """Directional derivatives of a random linear functional of S's log-mel: autograd vs central finite
    differences, in float64, for each input (onset, velocity, sustain) and for all parameters at once.
    Returns the worst relative error per target (~1e-6 or less = the gradients are right)."""
    m = copy.deepcopy(model).double().eval()
    g = torch.Generator().manual_seed(seed)
    shape = (1, N_KEYS, frames)
    # Soft, interior inputs (kinks of clamps and interpolation grids are avoided with probability 1).
    inputs = {
        "onset": 0.05 + 0.9 * torch.rand(shape, generator=g, dtype=torch.float64) * (torch.rand(shape, generator=g) < 0.1),
        "velocity": 0.1 + 0.8 * torch.rand(shape, generator=g, dtype=torch.float64),
        "sustain": 0.05 + 0.9 * torch.rand(shape, generator=g, dtype=torch.float64),
    }
    weight = torch.randn(1, m.feat.n_mels, frames, generator=g, dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (m(inputs["onset"], inputs["velocity"], inputs["sustain"]) * weight).sum()

    params = [p for p in m.parameters() if p.requires_grad]
    for x in inputs.values():
        x.requires_grad_(True)
    grads = torch.autograd.grad(loss(), list(inputs.values()) + params)
    out = {}
    with torch.no_grad():
        targets = [(name, [x], [gr]) for (name, x), gr in zip(inputs.items(), grads)]
        targets.append(("parameters", params, list(grads[len(inputs):])))
        for name, tensors, tgrads in targets:
            worst = 0.0
            for _ in range(n_directions):
                dirs = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in tensors]
                analytic = sum(float((gr * d).sum()) for gr, d in zip(tgrads, dirs))
                for t, d in zip(tensors, dirs):
                    t.add_(eps * d)
                up = float(loss())
                for t, d in zip(tensors, dirs):
                    t.sub_(2 * eps * d)
                down = float(loss())
                for t, d in zip(tensors, dirs):
                    t.add_(eps * d)
                numeric = (up - down) / (2 * eps)
                worst = max(worst, abs(analytic - numeric) / max(abs(numeric), abs(analytic), 1e-12))
            out[name] = worst
    return out


# ---------------------------------------------------------------- speed

def measure_speed(model: nn.Module, batch: int = 16, seconds: float = 10.0, repeats: int = 3,
                  seed: int = 0) -> dict[str, float]:
    """Best-of-repeats wall time on a random roll of `batch` excerpts of `seconds`: forward without
    gradients (frames/s and real-time factor = seconds of audio per second of compute) and
    forward + backward with gradients to the inputs (as in the play-listen-correct loop)."""
    fps = model.feat.fps
    t = int(seconds * fps) + 1
    g = torch.Generator().manual_seed(seed)
    onset = (torch.rand(batch, N_KEYS, t, generator=g) < 0.01).float()
    vel = onset * torch.rand(batch, N_KEYS, t, generator=g)
    sus = (torch.rand(batch, N_KEYS, t, generator=g) < 0.15).float()
    model.eval()
    with torch.no_grad():
        model(onset, vel, sus)  # warm-up (tables, allocator)
        fwd = min(_timed(lambda: model(onset, vel, sus)) for _ in range(repeats))
    inputs = [x.clone().requires_grad_(True) for x in (onset, vel, sus)]

    def step():
        model.zero_grad(set_to_none=True)
        model(*inputs).mean().backward()

    step()
    both = min(_timed(step) for _ in range(repeats))
    frames = batch * t
    return {
        "batch": batch, "seconds_per_excerpt": seconds, "threads": torch.get_num_threads(),
        "forward_s": fwd, "forward_frames_per_s": frames / fwd, "real_time_factor": batch * seconds / fwd,
        "forward_backward_s": both,
    }


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


__all__ = [
    "spectral_metrics", "evaluate_synth", "predict_item", "summarize", "markdown_table", "gradient_check",
    "measure_speed",
]
