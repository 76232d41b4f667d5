"""lmm: Language Model Mapping -- frozen LM^A / LM^V as feature extractors and as priors, reconstruction
through S, the K pairs, and an LM^M learned on the way and used as a prior on motion.

Three phases inside the shared step budget (method.steps optimizer steps for h, and again for g):

  A  warm-up (warm_fraction of the steps)
       h: [pairs] pseudo-motion of the K pairs  + [recon] S(h(a)) ~ a on unpaired U_A crops
       g: [pairs] pseudo-motion of the K pairs  + [recon] S(g(v)) ~ the paired recording
          + [lmA_prior] LM^A as a prior on S(g(v)) for unpaired U_V scores (soft tokens through the frozen LM:
            "g's playing must sound like the audio LM^A knows"): its per-token NLL is pulled to the typical NLL
            of real U_A audio (prior_mode typical; maximizing likelihood instead falls into the likelihood trap:
            slower, quieter, sparser audio is more predictable); a small pull toward plain (deviation_weight)
       h reads LM^A features (common.LMTranscriber) [lmA]; g reads LM^V features (common.LMPerformer) [lmV].
  B  LM^M: h transcribes the unpaired U_A recordings and g performs the unpaired U_V scores; those motions
     (+ the pairs' pseudo-motion), tokenized with tokens/motion.py, train LM^M with the project's LM code
     (lm.train_lm). [lmM]
  C  the rest of the steps: A's terms + [selftrain] self-training, with LM^M as the prior that picks the
     labels (a REINFORCE-free proxy):
       h: its own U_A transcriptions, ranked by LM^M (mean log-prob per token); the top keep_fraction become
          pseudo-labels;
       g: for each U_V score, `candidates` variants of g's own performance (tempo / articulation / loudness),
          the one LM^M finds most probable becomes g's target.
     Without lmM (ablation lmm-no_lmM) the same amount of self-training happens with *random* ranking and
     choice, so the ablation measures the prior, not the extra data.

Each term has a switch in params (map.lmm) and the ablation `lmm-no_<term>` turns it off:
pairs, recon, lmA (LM^A features and prior), lmV, lmA_prior, lmM, selftrain.
LM^V is used as a feature extractor only (no LM^V prior: h's motion is not a score; see the report).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lmm_utils.methods.alignment import AlignConfig, Synth
from lmm_utils.core.features import FeatureConfig
from lmm_utils.models.performer import PerformerConfig, ScoreBatch, note_targets, performer_loss
from lmm_utils.models.transcriber import TranscriberConfig
from lmm_utils.core.motion import PerformedNote, Performance
from lmm_utils.data.pools import TrainingData
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.methods import supervised
from lmm_utils.methods.common import (Crops, GModel, HModel, config_from, h_to_synth, load_lm_features, make_g, make_h,
                     module_device, optimize, recon_loss, render_g, resolve_device, weighted_transcription_loss)
from lmm_utils.methods.cycle import CycleConfig, g_recon_step, pair_recordings, unpaired_logmels
from lmm_utils.methods.surface import lm_paths

TERMS = ("pairs", "recon", "lmA", "lmV", "lmA_prior", "lmM", "selftrain")


@dataclass(frozen=True)
class LMMConfig:
    pairs: bool = True
    recon: bool = True
    lmA: bool = True
    lmV: bool = True
    lmA_prior: bool = True
    lmM: bool = True
    selftrain: bool = True
    pairs_weight: float = 1.0
    recon_weight: float = 1.0
    prior_weight: float = 0.1
    selftrain_weight: float = 1.0
    prior_tau: float = 1.0  # temperature of the soft tokens (x code dimension)
    prior_mode: str = "typical"  # typical: (NLL - NLL of real U_A audio)^2; likelihood: NLL itself
    prior_frames: int = 128  # frames of S(g(v)) scored by LM^A (from the start; <= 2 * block_size)
    prior_batch: int = 2
    unpaired_batch: int = 4  # U_A crops per h step (recon, self-training)
    max_unpaired: int | None = 64  # U_A recordings and U_V scores read (None: all)
    warm_fraction: float = 0.5  # phase A's share of the steps (all of them without selftrain)
    keep_fraction: float = 0.5  # U_A transcriptions kept as pseudo-labels
    candidates: int = 8  # variants of g's performance scored by LM^M (the first = unchanged)
    tempo_jitter: float = 0.15
    legato: tuple[float, float] = (0.5, 1.0)
    velocity_shift: float = 15.0
    rank: int = 16  # LM adapters' bottleneck
    g_frames: int = 200
    onset_sigma: float = 2.0
    edge: float = 2.0
    deviation_weight: float = 0.01
    scales: tuple[int, ...] = (1, 4, 16)
    timing_grad: bool = False  # audio-level terms (recon, LM^A prior) may move g's onsets (common.render_g)
    g_warp: bool = True  # g's reconstruction against the DTW-re-timed recording (cycle.warp_to)
    lmM_tokens: dict = field(default_factory=lambda: {"time_step": 0.02, "max_shift": 50, "velocity_bins": 16})
    lmM_model: dict = field(default_factory=lambda: {"block_size": 128, "n_layer": 2, "n_head": 2, "n_embd": 64,
                                                     "dropout": 0.0})
    lmM_train: dict = field(default_factory=lambda: {"steps": 100, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4,
                                                     "warmup": 10, "weight_decay": 0.0, "precision": "fp32"})

    def on(self, term: str, off: tuple[str, ...]) -> bool:
        if term not in TERMS:
            raise ValueError(f"unknown lmm term {term!r}; terms: {TERMS}")
        return bool(getattr(self, term)) and term not in off


def vary(perf: Performance, rng: np.random.Generator, cfg: LMMConfig) -> Performance:
    """A variant of a performance: tempo factor, held fraction and velocity offset per excerpt (note order kept)."""
    if not perf.notes:
        return perf
    t0 = min(n.onset for n in perf.notes)
    f = float(np.exp(rng.uniform(-cfg.tempo_jitter, cfg.tempo_jitter)))
    legato = float(rng.uniform(*cfg.legato))
    dv = float(rng.uniform(-cfg.velocity_shift, cfg.velocity_shift))
    notes = []
    for n in perf.notes:
        on = t0 + (n.onset - t0) * f
        notes.append(PerformedNote(n.pitch, on, on + max(0.03, (n.offset - n.onset) * f * legato),
                                   int(np.clip(round(n.velocity + dv), 1, 127))))
    return Performance(notes=notes, pedal=list(perf.pedal))


def lm_score(lm, tok, perf: Performance) -> float:
    """Mean log-prob per token (nats) of a performance under LM^M; -inf for an empty one."""
    if not perf.notes:
        return float("-inf")
    lp = lm.log_probs(tok.encode(perf))
    return float(lp.mean()) if len(lp) else float("-inf")


def run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> dict:
    from lmm_utils.lm.model import train_lm
    from lmm_utils.tokens.motion import MotionTokenizer

    params = params or {}
    for t in off:
        if t not in TERMS:
            raise ValueError(f"lmm-no_{t}: unknown term; terms: {TERMS}")
    cfg = supervised.MethodConfig.from_params(params.get("method"))
    lc = config_from(LMMConfig, params.get("lmm"))
    on = {t: lc.on(t, off) for t in TERMS}
    if not on["lmA"]:
        on["lmA_prior"] = False  # no LM^A at all
    dev = resolve_device(cfg.device)
    paths = lm_paths(params)
    lmA = load_lm_features("A", paths["A"], dev, data.root) if (on["lmA"] or on["lmA_prior"]) else None
    lmV = load_lm_features("V", paths["V"], dev, data.root) if on["lmV"] else None
    torch.manual_seed(cfg.seed)
    h = make_h(TranscriberConfig.from_params(params.get("transcriber")), feat, lmA if on["lmA"] else None,
               {"rank": lc.rank})
    g = make_g(PerformerConfig.from_params(params.get("performer")), lmV)
    h.net.to(dev).train()
    g.net.to(dev).train()
    cc = CycleConfig(g_frames=lc.g_frames, onset_sigma=lc.onset_sigma, edge=lc.edge,
                     deviation_weight=lc.deviation_weight, scales=lc.scales, g_warp=lc.g_warp,
                     timing_grad=lc.timing_grad)

    pairs = supervised.load_pairs(data, feat)
    pseudo = supervised.pseudo_motion(pairs, synth, AlignConfig.from_params(params.get("align")), feat)
    use_pairs = on["pairs"] and bool(pairs)
    info: dict = {"terms": dict(on), "n_pairs": len(pairs)}

    need_ua = on["recon"] or on["selftrain"] or on["lmA_prior"]
    ua = unpaired_logmels(data, feat, lc.max_unpaired, cfg.seed) if need_ua else []
    ua_inputs = [h.inputs(x) for _, x in ua]
    need_uv = on["lmA_prior"] or on["selftrain"]
    uv: list[ScoreExcerpt] = []
    if need_uv:
        uv = [s for s in data.scores("U_V") if s.notes]
        if lc.max_unpaired is not None and lc.max_unpaired < len(uv):
            pick = np.random.default_rng(cfg.seed + 7).choice(len(uv), size=lc.max_unpaired, replace=False)
            uv = [uv[i] for i in sorted(pick)]
    info["n_unpaired_audio"], info["n_unpaired_scores"] = len(ua), len(uv)

    # LM^A prior target: the typical per-token NLL of real (U_A) audio under LM^A, with the same soft tokens.
    # Plain maximum likelihood would reward degenerate audio (sparser, slower, quieter is more predictable: the
    # likelihood trap); matching the typical value does not.
    prior_target = None
    if on["lmA_prior"] and ua and lc.prior_mode == "typical":
        with torch.no_grad():
            n = min(len(ua), 16)
            clips = [torch.from_numpy(x[:, :lc.prior_frames]) for _, x in ua[:n] if x.shape[1] >= lc.prior_frames]
            if clips:
                prior_target = float(lmA.prior_nll(torch.stack(clips).to(dev), lc.prior_tau))
    info["prior_target_nll"] = prior_target

    def prior_loss(audio: torch.Tensor) -> torch.Tensor:
        nll = lmA.prior_nll(audio, lc.prior_tau)
        return (nll - prior_target) ** 2 if prior_target is not None else nll

    n_mels = feat.n_mels
    pair_crops = Crops([h.inputs(x) for _, x in pairs], pseudo, cfg.crop_frames, feat.fps, n_mels) if use_pairs else None
    ua_crops = Crops(ua_inputs, None, cfg.crop_frames, feat.fps, n_mels) if (on["recon"] and ua) else None
    self_crops: list[Crops | None] = [None]
    g_targets: dict = {}

    def h_loss(step, gen):
        terms = []
        if pair_crops is not None:
            x, y, w = (t.to(dev) for t in pair_crops.sample(cfg.batch_size, gen))
            terms.append(lc.pairs_weight * weighted_transcription_loss(h.net(x), y, w))
        if ua_crops is not None:
            (x,) = (t.to(dev) for t in ua_crops.sample(lc.unpaired_batch, gen))
            terms.append(lc.recon_weight * recon_loss(synth(*h_to_synth(h.net(x))), x[:, :n_mels], scales=lc.scales))
        if self_crops[0] is not None:
            x, y, w = (t.to(dev) for t in self_crops[0].sample(lc.unpaired_batch, gen))
            terms.append(lc.selftrain_weight * weighted_transcription_loss(h.net(x), y, w))
        return sum(terms) if terms else None

    g_pairs = g.encode([s for s, _ in pairs]) if pairs else None
    g_pair_targets = note_targets(pseudo, g_pairs) if pairs else None
    g_rec = pair_recordings(pairs, min(lc.g_frames, max(x.shape[1] for _, x in pairs))) if pairs else None
    g_uv = g.encode(uv) if uv else None

    def rows(batch: ScoreBatch, idx: torch.Tensor) -> ScoreBatch:
        return ScoreBatch.from_tuple(tuple(t[idx] for t in batch.as_tuple())).to(dev)

    def g_loss(step, gen):
        terms = []
        if use_pairs:
            idx = torch.randint(len(pairs), (cfg.batch_size,), generator=gen)
            b = rows(g_pairs, idx)
            tgt = {k: v[idx].to(dev) for k, v in g_pair_targets.items()}
            terms.append(lc.pairs_weight * performer_loss(g.net(b), tgt, b.mask)["loss"])
        if on["recon"] and pairs:
            idx = torch.randint(len(pairs), (cfg.batch_size,), generator=gen)
            terms.append(lc.recon_weight * g_recon_step(g, g_pairs, g_rec, synth, idx, cc, feat.fps))
        if on["lmA_prior"] and uv:
            idx = torch.randint(len(uv), (lc.prior_batch,), generator=gen)
            b = rows(g_uv, idx)
            audio = render_g(g, b, synth, lc.prior_frames, feat.fps, lc.onset_sigma, lc.edge, lc.timing_grad)
            terms.append(lc.prior_weight * prior_loss(audio))
        if g_targets:
            idx = torch.randint(len(uv), (cfg.batch_size,), generator=gen)
            b = rows(g_uv, idx)
            tgt = {k: v[idx].to(dev) for k, v in g_targets.items()}
            terms.append(lc.selftrain_weight * performer_loss(g.net(b), tgt, b.mask)["loss"])
        if not terms:
            return None
        if lc.deviation_weight > 0 and not (on["recon"] and pairs):  # (g_recon_step adds its own)
            idx = torch.randint(len(uv) if uv else max(1, len(pairs)), (cfg.batch_size,), generator=gen)
            b = rows(g_uv if uv else g_pairs, idx)
            raw = g.net(b)["deviation"]
            terms.append(lc.deviation_weight * ((raw ** 2).mean(-1) * b.mask).sum() / b.mask.sum().clamp(min=1))
        return sum(terms)

    def skip_none(fn):
        def wrapped(step, gen):
            loss = fn(step, gen)
            return loss if loss is not None else torch.zeros((), requires_grad=True)
        return wrapped

    h_active = pair_crops is not None or ua_crops is not None or (on["selftrain"] and bool(ua))
    g_active = use_pairs or (on["recon"] and bool(pairs)) or (on["lmA_prior"] and bool(uv)) or (on["selftrain"] and bool(uv))
    n_warm = int(round(cfg.steps * lc.warm_fraction)) if on["selftrain"] else cfg.steps
    opt_h = opt_g = None
    info["loss_h"], info["loss_g"] = [], []
    h_params, g_params = list(h.net.parameters()), list(g.net.parameters())
    if h_active and (pair_crops is not None or ua_crops is not None):
        losses, opt_h = optimize(h_params, n_warm, skip_none(h_loss), cfg, total=cfg.steps)
        info["loss_h"] += losses
    if g_active and (use_pairs or (on["recon"] and pairs) or (on["lmA_prior"] and uv)):
        losses, opt_g = optimize(g_params, n_warm, skip_none(g_loss), cfg, total=cfg.steps)
        info["loss_g"] += losses

    if on["selftrain"] and cfg.steps - n_warm > 0 and (ua or uv):
        # -- phase B: LM^M from h's and g's motion ------------------------------------------------------
        tok = MotionTokenizer(**lc.lmM_tokens)
        decodes = [h.transcribe_inputs(x) for x in ua_inputs]
        g_perfs = g.perform(uv) if uv else []
        lmM = None
        if on["lmM"]:
            seqs = [tok.encode(p) for p in decodes + g_perfs + list(pseudo) if p.notes]
            if sum(len(s) for s in seqs) >= 2:
                train_cfg = {**lc.lmM_train, "seed": cfg.seed, "device": str(dev), "threads": cfg.threads,
                             "eval_every": 10 ** 9, "log_every": max(1, int(lc.lmM_train.get("steps", 100)) // 10)}
                lmM = train_lm(seqs, tok, lc.lmM_model, train_cfg, progress=False,
                               info={"sources": {"h_U_A": len(decodes), "g_U_V": len(g_perfs), "pairs": len(pseudo)}})
                lmM.precision = "fp32"
        info["lmM"] = lmM
        rng = np.random.default_rng(cfg.seed + 99)
        # h: rank U_A transcriptions
        if ua:
            if lmM is not None:
                scores = [lm_score(lmM, tok, p) for p in decodes]
            else:  # matched control: random ranking
                scores = [float(rng.random()) if p.notes else float("-inf") for p in decodes]
            order = [i for i in np.argsort(scores)[::-1] if np.isfinite(scores[i])]
            n_keep = int(round(lc.keep_fraction * len(ua)))
            kept = sorted(order[:n_keep])
            info["selftrain"] = {"ids": [i for i, _ in ua], "score": [float(s) for s in scores],
                                 "kept": [ua[i][0] for i in kept], "decodes": {ua[i][0]: decodes[i] for i in range(len(ua))}}
            if kept:
                self_crops[0] = Crops([ua_inputs[i] for i in kept], [decodes[i] for i in kept], cfg.crop_frames,
                                      feat.fps, n_mels)
        # g: LM^M picks among variants of its own performances
        if uv:
            chosen, picks = [], []
            for p in g_perfs:
                cands = [p] + [vary(p, rng, lc) for _ in range(max(0, lc.candidates - 1))]
                if lmM is not None:
                    sc = [lm_score(lmM, tok, c) for c in cands]
                    k = int(np.argmax(sc))
                else:
                    k = int(rng.integers(len(cands)))
                picks.append(k)
                chosen.append(cands[k])
            g_targets.update(note_targets(chosen, g_uv))
            info["g_choice"] = {"unchanged_fraction": float(np.mean([k == 0 for k in picks]))}
        # -- phase C ----------------------------------------------------------------------------------
        rest = cfg.steps - n_warm
        losses, opt_h = optimize(h_params, rest, skip_none(h_loss), cfg, start=n_warm, total=cfg.steps, opt=opt_h)
        info["loss_h"] += losses
        losses, opt_g = optimize(g_params, rest, skip_none(g_loss), cfg, start=n_warm, total=cfg.steps, opt=opt_g)
        info["loss_g"] += losses
    h.net.eval()
    g.net.eval()
    return {"h": h, "g": g, "pseudo": dict(zip([s.id for s, _ in pairs], pseudo)), "info": info}
