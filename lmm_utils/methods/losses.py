"""The loss terms the methods combine: weighted transcription loss (pseudo-labels with a confidence), the
reconstruction loss through S, h's and g's outputs as S's inputs, and g's pull toward the plain performance.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lmm_utils.core.motion import N_KEYS, PIANO_LOW
from lmm_utils.methods.wrappers import GModel
from lmm_utils.models.performer import ScoreBatch, play_deviations, soft_roll


def weighted_transcription_loss(out: dict[str, torch.Tensor], y: torch.Tensor, w: torch.Tensor | None = None,
                                onset_pos_weight: float = 20.0, onset_neighbor_label: float = 0.5) -> torch.Tensor:
    """models/transcriber.transcription_loss with a weight per item (confidence of a pseudo-label)."""
    on_t, fr_t, ve_t = y[:, 0], y[:, 1], y[:, 2]
    if w is None:
        w = torch.ones(y.shape[0], device=y.device)
    wb = w[:, None, None]
    soft_on = torch.maximum(on_t, onset_neighbor_label * F.max_pool1d(on_t, 3, stride=1, padding=1))
    pw = torch.tensor(onset_pos_weight, dtype=out["onset"].dtype, device=y.device)
    l_on = (F.binary_cross_entropy_with_logits(out["onset"], soft_on, pos_weight=pw, reduction="none") * wb).mean()
    l_fr = (F.binary_cross_entropy_with_logits(out["frame"], fr_t, reduction="none") * wb).mean()
    mask = on_t * wb
    l_vel = ((torch.sigmoid(out["velocity"]) - ve_t) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
    return (l_on + l_fr + l_vel) * (w.numel() / w.sum().clamp(min=1e-6))


def h_to_synth(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h's logits -> S's (onset, velocity, sustain) inputs, all soft probabilities."""
    on = torch.sigmoid(out["onset"])
    return on, torch.sigmoid(out["velocity"]) * on, torch.sigmoid(out["frame"])


def density_loss(out: dict[str, torch.Tensor], key_down: float, onset: float) -> torch.Tensor:
    """h's mean key-down and onset probabilities over a batch above target rates: the squared log-ratio of the
    excess, zero at or below them. One-sided because a two-sided pull is met by spreading a low probability over
    every key (no note passes the decoder's threshold: lmm at K = 0 fell to 0 note F1 with it); this only takes away
    extra notes. A moment, not a likelihood: it cannot pull h toward silence (the mode)."""
    fr, on = torch.sigmoid(out["frame"]).mean(), torch.sigmoid(out["onset"]).mean()
    return F.relu(torch.log(fr / key_down)) ** 2 + F.relu(torch.log(on / onset)) ** 2


def recon_loss(pred: torch.Tensor, target: torch.Tensor, dynamic_range: float = 18.42,
               scales: tuple[int, ...] = (1, 4, 16), eq_order: int = 0) -> torch.Tensor:
    """Gain- (and, with eq_order > 0, EQ-) invariant log-mel L1 between S's output and a recording, (B, n_mels, T).

    The recording's gain and EQ are unknown, so the prediction is shifted first by a detached level curve over the
    mel bands: the mean log-level difference (eq_order 0: gain only), or a polynomial of that order fitted to the
    per-band mean differences (1: a spectral tilt, 2: also a bend -- a darker or brighter piano, a low-pass, a
    room's colour). Low order on purpose: a missing note is a narrow bump in the band differences that the curve
    cannot follow, so its gradient stays. Both are floored 80 dB below the recording's peak (silence is silence).
    Compared at several time resolutions (average pooling), so that a note rendered a few frames off still gets a
    gradient toward the right place.
    """
    lo = (target.amax(dim=(-2, -1), keepdim=True) - dynamic_range).detach()
    t = torch.maximum(target, lo)
    shift = level_curve((t - pred).detach(), eq_order)
    p = torch.maximum(pred + shift, lo)
    losses = []
    for s in scales:
        if s > 1 and p.shape[-1] >= s:
            losses.append((F.avg_pool1d(p, s, s) - F.avg_pool1d(t, s, s)).abs().mean())
        elif s == 1:
            losses.append((p - t).abs().mean())
    return sum(losses) / len(losses) / dynamic_range


def level_curve(diff: torch.Tensor, order: int) -> torch.Tensor:
    """(B, n_mels, T) differences -> (B, n_mels, 1): their mean (order 0), or a least-squares polynomial of `order`
    in the band index through the per-band time means."""
    if order <= 0:
        return diff.mean(dim=(-2, -1), keepdim=True)
    per_band = diff.mean(dim=-1)  # (B, n_mels)
    x = torch.linspace(-1.0, 1.0, per_band.shape[-1], dtype=diff.dtype, device=diff.device)
    basis = torch.stack([x**k for k in range(order + 1)], dim=1)  # (n_mels, order + 1)
    coef = torch.linalg.lstsq(basis, per_band.T).solution  # (order + 1, B)
    return (basis @ coef).T[..., None]


def timing_blocked(raw: torch.Tensor) -> torch.Tensor:
    """g's raw deviations (B, N, 4), same values, with no gradient into the tempo / asynchrony channels (0, 1)
    (a note's held length depends on its tempo, which would otherwise leak timing gradients back). Written as
    keep * raw + ((1 - keep) * raw).detach() rather than a hook on raw, so that other terms reading the same raw
    (deviation_pull, a shared forward) keep their full gradient; the values are raw's exactly."""
    keep = torch.tensor([0.0, 0.0, 1.0, 1.0], device=raw.device, dtype=raw.dtype)
    return keep * raw + ((1.0 - keep) * raw).detach()


def render_g(g: GModel, batch: ScoreBatch, synth, n_frames: int, fps: float, onset_sigma: float = 2.0,
             edge: float = 2.0, timing_grad: bool = False, raw: torch.Tensor | None = None) -> torch.Tensor:
    """S(g(v)): g's performance as a soft roll through S -> (B, n_mels, n_frames) log-mel, differentiable
    in g's parameters (wide soft edges so that gradients reach a few frames). `raw`: g's deviations for `batch`
    when the caller has them (one forward shared by several terms); else g runs here.

    timing_grad=False (default): no gradient reaches g's timing (onsets detached, tempo / asynchrony channels
    blocked), so an audio-level loss teaches relative loudness and articulation only. Frame-wise audio losses are poor judges of timing -- with them, g
    learns to play up to 2x slower or faster (the tempo bound), which lowers the loss without sounding right."""
    net = g.net
    raw = net.deviations(batch) if raw is None else raw
    if not timing_grad:
        raw = timing_blocked(raw)
    pred = play_deviations(raw, batch, net.cfg, net.start)
    if not timing_grad:
        on = pred["onset"].detach()
        pred = {**pred, "onset": on, "offset": on + (pred["offset"] - pred["onset"])}
    # The audio losses are gain-invariant (recon_loss shifts the level; LM^A's prior is matched to a
    # typical value), so they cannot set the excerpt's overall loudness: keep its mean velocity out of their
    # gradient (it stays where the dynamics marks and the other terms put it); they shape relative dynamics.
    m = batch.mask.to(pred["velocity"].dtype)
    mean = (pred["velocity"] * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
    pred = {**pred, "velocity": pred["velocity"] - mean + mean.detach()}
    roll = soft_roll(pred, batch, n_frames, fps, onset_sigma=onset_sigma, edge=edge)
    if not getattr(synth, "takes_sounding", False):
        return synth(roll["onset"], roll["velocity"], roll["sustain"])
    # Only the keys of the score's notes can sound, and only they pass a gradient back to g: S skips the rest.
    key = (batch.pitch - PIANO_LOW).clamp(0, N_KEYS - 1)
    ok = batch.mask & (batch.pitch >= PIANO_LOW) & (batch.pitch < PIANO_LOW + N_KEYS)
    sounding = torch.zeros(batch.pitch.shape[0], N_KEYS, device=key.device).scatter_add_(1, key, ok.float()) > 0
    return synth(roll["onset"], roll["velocity"], roll["sustain"], sounding=sounding)


def deviation_pull(g: GModel, batch: ScoreBatch, weight: float, raw: torch.Tensor | None = None) -> torch.Tensor:
    """weight x the mean squared deviation of g's raw head from the plain performance, over real notes (a small
    L2 pull toward plain). The weight multiplies before the division by the note count, as it always has.
    `raw`: g's deviations for `batch` when the caller has them (else g runs here)."""
    raw = g.net.deviations(batch) if raw is None else raw
    return weight * ((raw ** 2).mean(-1) * batch.mask).sum() / batch.mask.sum().clamp(min=1)


__all__ = ["deviation_pull", "h_to_synth", "recon_loss", "render_g", "timing_blocked", "weighted_transcription_loss"]
