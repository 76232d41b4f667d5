"""cycle: no language models; the synthesizer S closes the loop on unpaired audio.

  h: the K pairs' pseudo-motion (as `supervised`) + reconstruction of *unpaired* U_A recordings through S:
     S(h(a)) ~ a (losses.recon_loss: gain-invariant log-mel L1 at several time resolutions), h's onset /
     velocity / frame probabilities fed to S as a soft roll. Each step: a batch of pair crops and a batch
     of U_A crops.
  g: S(g(v)) ~ the paired recording, for the K pairs (g's performance as a soft roll through S,
     losses.render_g), plus a small pull toward the plain performance (deviation_weight). With g_warp (default)
     the recording is first re-timed onto the rendering by DTW, so the loss teaches loudness and articulation
     (what alignment's pseudo-motion lacks) and cannot be lowered by stretching the tempo -- without it, a
     frame-wise loss is lowest when g plays twice as slowly (more sound under the recording's reverb). At K = 0,
     g is the plain performer.

Switches (ablations `cycle-no_<term>`): pairs (the pseudo-motion term of h), recon (the U_A term of h).
Same step budget (method.steps) for h and for g as every other method.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods.alignment import AlignConfig, Synth, warping_path
from lmm_utils.methods.augment import augment_config, crop_augmenter
from lmm_utils.methods.base import (
    MethodResult,
    align_config,
    by_pair,
    check_terms,
    load_pairs,
    method_config,
    params_config,
    pseudo_motion,
)
from lmm_utils.methods.losses import deviation_pull, h_to_synth, recon_loss, render_g, weighted_transcription_loss
from lmm_utils.methods.steps import Crops, batch_rows, optimize
from lmm_utils.methods.wrappers import GModel, make_g, make_h, module_device
from lmm_utils.models.performer import PerformerConfig, ScoreBatch
from lmm_utils.models.transcriber import TranscriberConfig
from lmm_utils.training.distributed import default_device


@dataclass(frozen=True)
class CycleConfig:
    pairs: bool = True
    recon: bool = True
    pairs_weight: float = 1.0
    recon_weight: float = 1.0
    unpaired_batch: int = 4  # U_A crops per step
    max_unpaired: int | None = 64  # U_A recordings read (None: all)
    g_frames: int = 200  # frames of each pair compared by g's reconstruction (from the start)
    onset_sigma: float = 2.0  # soft-roll widths for g's gradients through S (frames)
    edge: float = 2.0
    deviation_weight: float = 0.01  # L2 pull of g's deviations toward the plain performance
    scales: tuple[int, ...] = (1, 4, 16)
    recon_eq: int = 0  # the recording's EQ the reconstruction forgives: 0 gain only, 1 + tilt, 2 + bend (recon_loss)
    timing_grad: bool = False  # let the audio loss move g's onsets (see losses.render_g)
    g_warp: bool = True  # compare S(g(v)) with the recording re-timed onto it by DTW (see warp_to)


def unpaired_logmels(data: TrainingData, feat: FeatureConfig, limit: int | None, seed: int) -> list[tuple[str, np.ndarray]]:
    """A seeded sample of U_A recordings (audio only: TrainingData refuses U_A's scores and motion)."""
    ids = sorted(data.audio_ids("U_A"))
    if limit is not None and limit < len(ids):
        rng = np.random.default_rng(seed + 104729)
        ids = sorted(rng.choice(ids, size=limit, replace=False).tolist())
    out = []
    for i in ids:
        audio, sr = data.audio("U_A", i)
        out.append((i, log_mel(audio.mean(1) if audio.ndim == 2 else audio, feat)))
    return out


def pair_recordings(pairs, n_frames: int) -> torch.Tensor:
    """(K, n_mels, n_frames) recordings cut / padded (with each one's silence) to n_frames."""
    out = []
    for _, x in pairs:
        x = x[:, :n_frames]
        if x.shape[1] < n_frames:
            x = np.concatenate([x, np.full((x.shape[0], n_frames - x.shape[1]), x.min(), np.float32)], axis=1)
        out.append(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
    return torch.stack(out)


def warp_to(pred: torch.Tensor, rec: torch.Tensor, cfg: AlignConfig = AlignConfig()) -> torch.Tensor:
    """The recording (n_mels, T) re-timed onto the rendering's frames (n_mels, T) by DTW (alignment.warping_path):
    frame i of the result is the recording frame first matched to rendering frame i. Not differentiable (an
    index), so a loss against it teaches loudness and articulation, while timing is absorbed by the warp.

    The DTW cost is three (T x n_mels) @ (n_mels x T) products in numpy: BLAS runs them on one thread here. Its own
    thread pool (2 threads beside torch's on 2 cores) made them ~10x slower, and ~1/3 of a g step was this warp."""
    from threadpoolctl import threadpool_limits  # deferred, as librosa (which brings it) in warping_path

    with threadpool_limits(1, user_api="blas"):
        path = warping_path(pred.detach().float().cpu().numpy(), rec.float().cpu().numpy(), cfg)
    first = np.full(pred.shape[-1], rec.shape[-1] - 1)
    for i, j in path[::-1]:
        first[i] = j
    return rec[:, torch.from_numpy(first).to(rec.device)]


def g_recon_step(g: GModel, full: ScoreBatch, rec: torch.Tensor, synth: Synth, idx: torch.Tensor, cc: CycleConfig,
                 fps: float, raw: torch.Tensor | None = None) -> torch.Tensor:
    """S(g(v)) ~ the recordings (rows idx of the encoded pairs `full` and of `rec`), + the pull toward plain.
    `raw`: g's deviations for those rows when the caller ran g already; else one forward of g here, which the
    rendering and the pull share."""
    dev = module_device(g.net)
    b = batch_rows(full, idx, dev)
    raw = g.net.deviations(b) if raw is None else raw
    pred = render_g(g, b, synth, rec.shape[-1], fps, cc.onset_sigma, cc.edge, cc.timing_grad, raw=raw)
    target = rec[idx].to(dev)
    if cc.g_warp:
        target = torch.stack([warp_to(p, t) for p, t in zip(pred, target)])
    loss = recon_loss(pred, target, scales=cc.scales, eq_order=cc.recon_eq)
    if cc.deviation_weight > 0:
        loss = loss + deviation_pull(g, b, cc.deviation_weight, raw=raw)
    return loss


def run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> MethodResult:
    """K pairs + unpaired U_A audio -> h (pairs + reconstruction through S) and g (S(g(v)) ~ the pairs' recordings)."""
    params = params or {}
    check_terms("cycle", off, ("pairs", "recon"))
    cfg = method_config(params)
    cc = params_config(CycleConfig, params, "cycle")
    use_pairs, use_recon = cc.pairs and "pairs" not in off, cc.recon and "recon" not in off
    torch.manual_seed(cfg.seed)
    h = make_h(TranscriberConfig.from_params(params.get("transcriber")), feat)
    g = make_g(PerformerConfig.from_params(params.get("performer")))
    pairs = load_pairs(data, feat)
    pseudo = pseudo_motion(pairs, synth, align_config(params), feat)
    dev = default_device(cfg.device)
    h.net.to(dev).train()
    g.net.to(dev).train()
    augment = augment_config(params)  # the pairs' crops only: reconstruction targets the recording as it is
    info: dict = {"terms": {"pairs": use_pairs and bool(pairs), "recon": use_recon}, "augment_p": augment.p}

    pair_crops = (Crops([x for _, x in pairs], pseudo, cfg.crop_frames, feat.fps, feat.n_mels,
                        augmenter=crop_augmenter(augment, feat, cfg.seed)) if pairs and use_pairs else None)
    ua = unpaired_logmels(data, feat, cc.max_unpaired, cfg.seed) if use_recon else []
    ua_crops = Crops([x for _, x in ua], None, cfg.crop_frames, feat.fps, feat.n_mels) if ua else None
    info["n_unpaired"] = len(ua)

    def h_loss(step, gen):
        loss = 0.0
        if pair_crops is not None:
            x, y, w = (t.to(dev) for t in pair_crops.sample(cfg.batch_size, gen))
            loss = loss + cc.pairs_weight * weighted_transcription_loss(h.net(x), y, w)
        if ua_crops is not None:
            (x,) = (t.to(dev) for t in ua_crops.sample(cc.unpaired_batch, gen))
            loss = loss + cc.recon_weight * recon_loss(synth(*h_to_synth(h.net(x))), x, scales=cc.scales,
                                                          eq_order=cc.recon_eq)
        return loss

    if pair_crops is not None or ua_crops is not None:
        info["loss_h"], _ = optimize(list(h.net.parameters()), cfg.steps, h_loss, cfg)

    if pairs:
        n = min(cc.g_frames, max(x.shape[1] for _, x in pairs))
        rec = pair_recordings(pairs, n)
        full = g.encode([s for s, _ in pairs])

        def g_loss(step, gen):
            idx = torch.randint(len(pairs), (cfg.batch_size,), generator=gen)
            return g_recon_step(g, full, rec, synth, idx, cc, feat.fps)

        info["loss_g"], _ = optimize(list(g.net.parameters()), cfg.steps, g_loss, cfg)
    h.net.eval()
    g.net.eval()
    return MethodResult(h, g, by_pair(pairs, pseudo), info)
