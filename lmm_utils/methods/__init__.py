"""The mapping methods: each learns h (A -> M) and g (V -> M) from a run's K pairs (+ what else it may read).

    result = run_method("lmm-no_lmM", TrainingData().restrict_pairs(ids), synth, params["map"], feat)
    result["h"]: common.HModel   result["g"]: common.GModel
    result["pseudo"]: {pair id: pseudo-motion}   result["info"]: terms, losses, diagnostics

Methods (same h and g architectures, same step budget map.method.steps, fixed decoding thresholds):
  supervised   the K pairs' pseudo-motion only (K = 0: untrained h, plain g)
  synth_pairs  h also on U_V scores performed plainly (with variation) and rendered through S; g plain
  surface      frozen LM^A / LM^V features + a small adapter head, on the K pairs only
  cycle        no LMs: h also reconstructs unpaired U_A audio through S; g matches S(g(v)) to its recording
  lmm          LM features + LM^A prior + reconstruction + pairs + an LM^M prior for self-training
An ablation is '<method>-no_<term>' (e.g. lmm-no_lmA, lmm-no_recon, cycle-no_recon): that term switched off.
"""
from __future__ import annotations

from lmm_utils.methods.alignment import Synth
from lmm_utils.core.features import FeatureConfig
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods.common import GModel, HModel, Switches, make_g, make_h

METHODS = ("supervised", "synth_pairs", "surface", "cycle", "lmm")


def _supervised(data, synth, params, feat, progress, off):
    from lmm_utils.models.performer import PerformerConfig
    from lmm_utils.models.transcriber import TranscriberConfig
    from lmm_utils.methods import supervised

    if off:
        raise ValueError(f"supervised has no terms to switch off (got {off})")
    ids = [s.id for s in data.scores("P")]
    if not ids:  # K = 0: nothing to learn from -- the untrained h and the plain performer
        cfg = supervised.MethodConfig.from_params(params.get("method"))
        import torch

        torch.manual_seed(cfg.seed)
        h = make_h(TranscriberConfig.from_params(params.get("transcriber")), feat)
        g = make_g(PerformerConfig.from_params(params.get("performer")))
        return {"h": h, "g": g, "pseudo": {}, "info": {"terms": {"pairs": False}}}
    r = supervised.run(data, synth, params, feat, progress)
    return {"h": HModel(r["h"]), "g": GModel(r["g"]), "pseudo": dict(zip(r["pairs"], r["pseudo"])),
            "info": {"terms": {"pairs": True}, "hist_h": r["hist_h"], "hist_g": r["hist_g"]}}


def _synth_pairs(data, synth, params, feat, progress, off):
    from lmm_utils.methods.alignment import AlignConfig
    from lmm_utils.models.performer import PerformerConfig
    from lmm_utils.methods import supervised, synth_pairs

    sp = dict(params.get("synth_pairs") or {})
    for t in off:
        if t != "pairs":
            raise ValueError(f"synth_pairs: only 'pairs' can be switched off (got {t!r})")
        sp["mix_pairs"] = False
    r = synth_pairs.run(data, synth, {**params, "synth_pairs": sp}, feat, progress)
    # synth_pairs trains h only; g is the plain performer. The pairs' pseudo-motion (which synth_pairs
    # computes internally when mixing pairs) is recomputed here for the run's diagnostics.
    pairs = supervised.load_pairs(data, feat)
    pseudo = supervised.pseudo_motion(pairs, synth, AlignConfig.from_params(params.get("align")), feat)
    g = make_g(PerformerConfig.from_params(params.get("performer")))
    return {"h": HModel(r["h"]), "g": g, "pseudo": dict(zip([s.id for s, _ in pairs], pseudo)),
            "info": {"terms": {"synth": True, "pairs": bool(sp.get("mix_pairs", True))}, "n_synth": r["n_synth"],
                     "n_pairs": r["n_pairs"], "hist_h": r["hist_h"]}}


def _module(name):
    def run(data, synth, params, feat, progress, off):
        import importlib

        return importlib.import_module(f"{__name__}.{name}").run(data, synth, params, feat, progress, off)
    return run


RUNNERS = {"supervised": _supervised, "synth_pairs": _synth_pairs, "surface": _module("surface"),
           "cycle": _module("cycle"), "lmm": _module("lmm")}


def check_method(name: str) -> Switches:
    sw = Switches.parse(name)
    if sw.base not in RUNNERS:
        raise ValueError(f"unknown method {name!r}; methods: {METHODS} (ablations: '<method>-no_<term>')")
    return sw


def run_method(name: str, data: TrainingData, synth: Synth, params: dict | None = None,
               feat: FeatureConfig = FeatureConfig(), progress: bool = False) -> dict:
    """Train one method on `data` (a TrainingData restricted to the run's K pairs) -> {"h", "g", "pseudo", "info"}."""
    if not isinstance(data, TrainingData):
        raise TypeError("methods read data only through pools.TrainingData")
    sw = check_method(name)
    out = RUNNERS[sw.base](data, synth, params or {}, feat, progress, sw.off)
    out["h"].net.cpu().eval()
    out["g"].net.cpu().eval()
    return out


__all__ = ["METHODS", "RUNNERS", "check_method", "run_method"]
