"""lmm: Language Model Mapping -- frozen LM^A / LM^V as feature extractors and as priors, reconstruction
through S, the K pairs, and LM^M (mapped from LM^V) as a prior on motion.

Three phases inside the shared step budget (method.steps optimizer steps for h, and again for g):

  A  warm-up (warm_fraction of the steps)
       h: [pairs] pseudo-motion of the K pairs  + [recon] S(h(a)) ~ a on unpaired U_A crops
          + [density, off by default] h's key-down and onset rates on U_A pulled to those of U_V's scores played
            by LM^M's generic performer (set_density_target)
       g: [pairs] pseudo-motion of the K pairs  + [recon] S(g(v)) ~ the paired recording
          + [lmA_prior] LM^A as a prior on S(g(v)) for unpaired U_V scores (soft tokens through the frozen LM:
            "g's playing must sound like the audio LM^A knows"): its per-token NLL is pulled to the typical NLL
            of real U_A audio (prior_mode typical; maximizing likelihood instead falls into the likelihood trap:
            slower, quieter, sparser audio is more predictable); a small pull toward plain (deviation_weight)
       h may read LM^A features (wrappers.LMTranscriber) [lmA, off by default]; g reads LM^V features [lmV].
  B  LM^M: by default the LM^M mapped from LM^V (stage pretrain_M: U_V's scores played by a generic performer),
     frozen [lmM]; with lmM_source run, one learned here on h's U_A transcriptions, g's U_V performances and the
     pairs' pseudo-motion (lmm_labels.train_lmM) -- which learns h's own mistakes.
  C  the rest of the steps: A's terms + [selftrain] self-training, with LM^M as the prior that picks the
     labels (a REINFORCE-free proxy):
       h: its own U_A transcriptions ranked by LM^M (mean log-prob per token); the top keep_fraction are labels;
       g: per U_V score, `candidates` variants of g's performance (tempo, articulation, loudness): LM^M's pick.
     Without lmM (ablation lmm-no_lmM) the same amount of self-training happens with *random* ranking and
     choice, so the ablation measures the prior, not the extra data.

Each term has a switch in params (mapping.lmm) and the ablation `lmm-no_<term>` turns it off:
pairs, recon, lmA (LM^A features in h), lmV, lmA_prior (LM^A as g's prior), lmM, selftrain, density, certainty.
LM^V gives g its features and LM^M its trunk (no LM^V prior: h's motion is not a score).
Code: `setup` builds the shared LMMState; `warm_up` (A), `pick_labels` (B) and `self_train` (C) extend it;
`h_loss` / `g_loss` are one optimizer step's terms (phase B's labels switch self-training on).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

import lmm_utils.methods.lmm_labels as labels
from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS, Performance, to_roll
from lmm_utils.data.pools import TrainingData
from lmm_utils.lm.generic_performer import generic_motion
from lmm_utils.lm.model import LanguageModel
from lmm_utils.methods.alignment import Synth
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
from lmm_utils.methods.cycle import CycleConfig, g_recon_step, pair_recordings, unpaired_logmels
from lmm_utils.methods.lm_features import lm_paths, load_lm_features
from lmm_utils.methods.lmm_state import LMM_SOURCES, TERMS, LMMConfig, LMMState, term_switches  # noqa: F401 (re-exported)
from lmm_utils.methods.losses import (
    density_loss,
    deviation_pull,
    h_to_synth,
    recon_loss,
    render_g,
    weighted_transcription_loss,
)
from lmm_utils.methods.steps import Crops, optimize, shared_forward, target_loss
from lmm_utils.methods.wrappers import fast_decode, make_g, make_h
from lmm_utils.models.performer import PerformerConfig, note_targets
from lmm_utils.models.transcriber import TranscriberConfig
from lmm_utils.tokens.motion import MotionTokenizer
from lmm_utils.training.distributed import default_device

# ---------------------------------------------------------------------------------------------------------
# Setup: models, data, batches
# ---------------------------------------------------------------------------------------------------------

def setup(data: TrainingData, synth: Synth, params: dict, feat: FeatureConfig, off: tuple[str, ...]) -> LMMState:
    """Configs and switches, the frozen LMs, h and g (seeded), and the K pairs with their pseudo-motion."""
    check_terms("lmm", off, TERMS)
    cfg = method_config(params)
    lc = params_config(LMMConfig, params, "lmm")
    on = term_switches(lc, off)
    augment = augment_config(params, lm_rows=on["lmA"])
    dev = default_device(cfg.device)
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
                     deviation_weight=lc.deviation_weight, scales=lc.scales, recon_eq=lc.recon_eq, g_warp=lc.g_warp,
                     timing_grad=lc.timing_grad)
    pairs = load_pairs(data, feat)
    pseudo = pseudo_motion(pairs, synth, align_config(params), feat)
    info: dict = {"terms": dict(on), "n_pairs": len(pairs), "augment_p": augment.p}
    return LMMState(cfg, lc, on, dev, feat, synth, lmA, h, g, cc, pairs, pseudo, info, params, str(data.root),
                    augmenter=crop_augmenter(augment, feat, cfg.seed))


def read_unpaired(st: LMMState, data: TrainingData) -> None:
    """U_A recordings (for recon, self-training, the prior's target) and U_V scores (prior, self-training),
    each a seeded sample of at most max_unpaired."""
    on, lc, seed = st.on, st.lc, st.cfg.seed
    if on["recon"] or on["selftrain"] or on["lmA_prior"] or on["density"]:
        st.ua = unpaired_logmels(data, st.feat, lc.max_unpaired, seed)
    st.ua_inputs = [st.h.inputs(x) for _, x in st.ua]
    if on["lmA_prior"] or on["selftrain"] or on["density"]:
        uv = [s for s in data.scores("U_V") if s.notes]
        if lc.max_unpaired is not None and lc.max_unpaired < len(uv):
            pick = np.random.default_rng(seed + 7).choice(len(uv), size=lc.max_unpaired, replace=False)
            uv = [uv[i] for i in sorted(pick)]
        st.uv = uv
    st.info["n_unpaired_audio"], st.info["n_unpaired_scores"] = len(st.ua), len(st.uv)


def set_prior_target(st: LMMState) -> None:
    """LM^A prior target: the typical per-token NLL of real (U_A) audio under LM^A, with the same soft tokens.
    Plain maximum likelihood would reward degenerate audio (sparser, slower, quieter is more predictable: the
    likelihood trap); matching the typical value does not."""
    lc = st.lc
    if st.on["lmA_prior"] and st.ua and lc.prior_mode == "typical":
        with torch.no_grad():
            n = min(len(st.ua), 16)
            clips = [torch.from_numpy(x[:, :lc.prior_frames]) for _, x in st.ua[:n] if x.shape[1] >= lc.prior_frames]
            if clips:
                st.prior_target = float(st.lmA.prior_nll(torch.stack(clips).to(st.dev), lc.prior_tau))
    st.info["prior_target_nll"] = st.prior_target


def set_density_target(st: LMMState) -> None:
    """[density] How many keys are down, and how many notes start, per frame when U_V's scores are played: by the
    generic performer of LM^M's data with its default settings (lm.generic_performer; not pretrain.M.performer's
    params, which belong to the pretrain_M stage; not the benchmark's pianist), one rendition each. A prior on
    h's output as a whole (its rates on U_A), not on any one transcription: the remedy for an h that explains the
    audio through S with extra quiet notes (README, "a wider h")."""
    if not (st.on["density"] and st.uv):
        return
    rolls = [to_roll(p, st.feat.fps) for p in generic_motion(st.uv, 1, st.cfg.seed + 11)]
    frames = sum(r["frame"].shape[1] for r in rolls)
    st.density_target = (sum(float(r["frame"].sum()) for r in rolls) / (frames * N_KEYS),
                         sum(float(r["onset"].sum()) for r in rolls) / (frames * N_KEYS))
    st.info["density_target"] = {"key_down": st.density_target[0], "onset": st.density_target[1]}


def build_batches(st: LMMState) -> None:
    """What the steps draw from: h's crops (pairs, U_A) and g's encoded scores, targets and recordings."""
    cfg, feat, pairs = st.cfg, st.feat, st.pairs
    if st.use_pairs:
        st.pair_crops = Crops([st.h.inputs(x) for _, x in pairs], st.pseudo, cfg.crop_frames, feat.fps, feat.n_mels,
                              augmenter=st.augmenter)
    if (st.on["recon"] or st.density_target is not None) and st.ua:
        st.ua_crops = Crops(st.ua_inputs, None, cfg.crop_frames, feat.fps, feat.n_mels)
    if pairs:
        st.g_pairs = st.g.encode([s for s, _ in pairs])
        st.g_pair_targets = note_targets(st.pseudo, st.g_pairs)
        st.g_rec = pair_recordings(pairs, min(st.lc.g_frames, max(x.shape[1] for _, x in pairs)))
    if st.uv:
        st.g_uv = st.g.encode(st.uv)


# ---------------------------------------------------------------------------------------------------------
# One step's loss
# ---------------------------------------------------------------------------------------------------------

def prior_loss(st: LMMState, audio: torch.Tensor) -> torch.Tensor:
    """LM^A's prior on rendered audio: (NLL - typical NLL)^2, or the NLL itself (prior_mode likelihood)."""
    nll = st.lmA.prior_nll(audio, st.lc.prior_tau)
    return (nll - st.prior_target) ** 2 if st.prior_target is not None else nll


def h_loss(st: LMMState, step: int, gen: torch.Generator) -> torch.Tensor:
    """h's terms: [pairs] pseudo-motion, [recon] S(h(a)) ~ a on U_A, [selftrain] kept transcriptions (phase C)."""
    lc, dev, terms = st.lc, st.dev, []
    if st.pair_crops is not None:
        x, y, w = (t.to(dev) for t in st.pair_crops.sample(st.cfg.batch_size, gen))
        terms.append(lc.pairs_weight * weighted_transcription_loss(st.h.net(x), y, w))
    if st.ua_crops is not None:
        (x,) = (t.to(dev) for t in st.ua_crops.sample(lc.unpaired_batch, gen))
        out = st.h.net(x)
        if st.on["recon"]:
            audio = st.synth(*h_to_synth(out))
            terms.append(lc.recon_weight * recon_loss(audio, x[:, :st.feat.n_mels], scales=lc.scales,
                                                         eq_order=lc.recon_eq))
        if st.density_target is not None:
            terms.append(lc.density_weight * density_loss(out, *st.density_target))
    if st.self_crops is not None:
        x, y, w = (t.to(dev) for t in st.self_crops.sample(lc.unpaired_batch, gen))
        terms.append(lc.selftrain_weight * weighted_transcription_loss(st.h.net(x), y, w))
    return sum(terms) if terms else torch.zeros((), requires_grad=True)


def g_loss(st: LMMState, step: int, gen: torch.Generator) -> torch.Tensor:
    """g's terms: [pairs] pseudo-motion, [recon] S(g(v)) ~ the recording, [lmA_prior] on S(g(v)) for U_V, [selftrain]
    the variants LM^M picked (phase C), the pull toward plain; rows drawn in that order, one g pass per pool."""
    cfg, lc, on, dev, g = st.cfg, st.lc, st.on, st.dev, st.g
    n_pairs, n_uv, terms = len(st.pairs), len(st.uv), []
    i_pairs = torch.randint(n_pairs, (cfg.batch_size,), generator=gen) if st.use_pairs else None
    i_recon = torch.randint(n_pairs, (cfg.batch_size,), generator=gen) if on["recon"] and n_pairs else None
    i_prior = torch.randint(n_uv, (lc.prior_batch,), generator=gen) if on["lmA_prior"] and n_uv else None
    i_self = torch.randint(n_uv, (cfg.batch_size,), generator=gen) if st.g_targets else None
    if all(i is None for i in (i_pairs, i_recon, i_prior, i_self)):
        return torch.zeros((), requires_grad=True)
    i_pull = (torch.randint(n_uv if n_uv else max(1, n_pairs), (cfg.batch_size,), generator=gen)
              if lc.deviation_weight > 0 and i_recon is None else None)  # (g_recon_step adds its own)
    pairs, recon, pull_p = shared_forward(g.net, st.g_pairs, [i_pairs, i_recon, None if n_uv else i_pull], dev)
    prior, selft, pull_u = shared_forward(g.net, st.g_uv, [i_prior, i_self, i_pull if n_uv else None], dev)
    if pairs is not None:
        terms.append(lc.pairs_weight * target_loss(g.net, *pairs, st.g_pair_targets, i_pairs, dev))
    if recon is not None:
        terms.append(lc.recon_weight * g_recon_step(g, st.g_pairs, st.g_rec, st.synth, i_recon, st.cc, st.feat.fps, recon[1]))
    if prior is not None:
        audio = render_g(g, prior[0], st.synth, lc.prior_frames, st.feat.fps, lc.onset_sigma, lc.edge, lc.timing_grad, prior[1])
        terms.append(lc.prior_weight * prior_loss(st, audio))
    if selft is not None:
        terms.append(lc.selftrain_weight * target_loss(g.net, *selft, st.g_targets, i_self, dev))
    terms += [deviation_pull(g, p[0], lc.deviation_weight, raw=p[1]) for p in (pull_p, pull_u) if p is not None]
    return sum(terms)


# ---------------------------------------------------------------------------------------------------------
# The phases
# ---------------------------------------------------------------------------------------------------------

def train_h(st: LMMState, steps: int, start: int = 0) -> None:
    """`steps` steps of h from step `start` of the shared schedule, continuing its optimizer (st.opt_h)."""
    losses, st.opt_h = optimize(list(st.h.net.parameters()), steps, partial(h_loss, st), st.cfg, start=start,
                                total=st.cfg.steps, opt=st.opt_h)
    st.info["loss_h"] += losses


def train_g(st: LMMState, steps: int, start: int = 0) -> None:
    """`steps` steps of g from step `start` of the shared schedule, continuing its optimizer (st.opt_g)."""
    losses, st.opt_g = optimize(list(st.g.net.parameters()), steps, partial(g_loss, st), st.cfg, start=start,
                                total=st.cfg.steps, opt=st.opt_g)
    st.info["loss_g"] += losses


def warm_up(st: LMMState) -> None:
    """Phase A: n_warm steps of h and of g on the terms that need no LM^M (h or g without any is left alone)."""
    on = st.on
    st.info["loss_h"], st.info["loss_g"] = [], []
    if st.pair_crops is not None or st.ua_crops is not None:
        train_h(st, st.n_warm)
    if st.use_pairs or (on["recon"] and st.pairs) or (on["lmA_prior"] and st.uv):
        train_g(st, st.n_warm)


def learn_lmM(st: LMMState, tok: MotionTokenizer, decodes: list[Performance],
              g_perfs: list[Performance]) -> LanguageModel | None:
    """LM^M (None with lmm-no_lmM): mapped from LM^V (lmM_source pretrained, frozen) or learned here (run)."""
    lc, cfg = st.lc, st.cfg
    if not st.on["lmM"]:
        return None
    if lc.lmM_source == "pretrained":
        st.info["lmM_source"] = folder = lm_paths(st.params)["M"]
        return LanguageModel.load_frozen(Path(st.root) / folder, st.dev)
    train_cfg = {**lc.lmM_train, "seed": cfg.seed, "device": str(st.dev), "threads": cfg.threads,
                 "eval_every": 10 ** 9, "log_every": max(1, int(lc.lmM_train.get("steps", 100)) // 10)}
    return labels.train_lmM(decodes + g_perfs + list(st.pseudo), tok, lc.lmM_model, train_cfg,
                     {"h_U_A": len(decodes), "g_U_V": len(g_perfs), "pairs": len(st.pseudo)})


def pick_labels(st: LMMState) -> None:
    """Phase B: h transcribes U_A and g performs U_V; LM^M learns from that motion, then keeps h's best-scored
    transcriptions (st.self_crops) and picks g's most probable variants (st.g_targets) -- at random without lmM."""
    lc, ua = st.lc, st.ua
    tok = MotionTokenizer(**lc.lmM_tokens)
    decodes, certainties = [], ([] if st.on["certainty"] else None)
    for x in st.ua_inputs:  # one forward each: the decode and (certainty) how sure h is of it
        out = st.h.logits_of_inputs(x)
        decodes.append(fast_decode(out, st.feat.fps))
        if certainties is not None:
            certainties.append(labels.certainty(out))
    g_perfs = st.g.perform(st.uv) if st.uv else []
    lmM = learn_lmM(st, tok, decodes, g_perfs)
    tok = lmM.tokenizer if lmM is not None else tok  # a pretrained LM^M brings its own tokens
    st.info["lmM"] = lmM if lc.lmM_source == "run" else None  # a run keeps only an LM^M it learned (saved: lmM/)
    rng = np.random.default_rng(st.cfg.seed + 99)
    if ua:
        scores, crit = labels.rank_transcriptions(decodes, [x for _, x in ua], lmM, tok, st.synth if st.on["recon"]
                                                  else None, st.feat.fps, lc.scales, rng, lc.recon_eq, certainties)
        kept = labels.keep_best(scores, int(round(lc.keep_fraction * len(ua))))
        st.info["selftrain"] = {"ids": [i for i, _ in ua], "score": [float(s) for s in scores], "criteria": crit,
                                "kept": [ua[i][0] for i in kept], "decodes": {ua[i][0]: decodes[i] for i in range(len(ua))}}
        if kept:
            st.self_crops = Crops([st.ua_inputs[i] for i in kept], [decodes[i] for i in kept], st.cfg.crop_frames,
                                  st.feat.fps, st.feat.n_mels, augmenter=st.augmenter)
    if st.uv:
        chosen, picks = labels.choose_variants(g_perfs, lmM, tok, rng, lc.candidates, lc.tempo_jitter, lc.legato,
                                               lc.velocity_shift)
        st.g_targets.update(note_targets(chosen, st.g_uv))
        st.info["g_choice"] = {"unchanged_fraction": float(np.mean([k == 0 for k in picks]))}


def self_train(st: LMMState) -> None:
    """Phase C: the rest of the steps, A's terms + self-training, continuing A's optimizers and schedule."""
    rest = st.cfg.steps - st.n_warm
    train_h(st, rest, start=st.n_warm)
    train_g(st, rest, start=st.n_warm)


def run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> MethodResult:
    """The three phases (module docstring) on one shared state; `off` holds the ablated terms."""
    st = setup(data, synth, params or {}, feat, off)
    read_unpaired(st, data)
    set_prior_target(st)
    set_density_target(st)
    build_batches(st)
    warm_up(st)
    if st.on["selftrain"] and st.cfg.steps - st.n_warm > 0 and (st.ua or st.uv):
        pick_labels(st)
        self_train(st)
    st.h.net.eval()
    st.g.net.eval()
    return MethodResult(st.h, st.g, by_pair(st.pairs, st.pseudo), st.info)
