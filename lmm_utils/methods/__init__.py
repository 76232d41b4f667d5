"""The mapping methods: each learns h (A -> M) and g (V -> M) from a run's K pairs (+ what else it may read).

    result = run_method("lmm-no_lmM", TrainingData().restrict_pairs(ids), synth, params["mapping"], feat)
    result.h: wrappers.HModel   result.g: wrappers.GModel
    result.pseudo: {pair id: pseudo-motion}   result.info: terms, losses, diagnostics   (base.MethodResult)

Methods (same h and g architectures, same step budget mapping.method.steps, fixed decoding thresholds):
  supervised   the K pairs' pseudo-motion only (K = 0: untrained h, plain g)
  synth_pairs  h also on U_V scores performed plainly (with variation) and rendered through S; g plain
  surface      frozen LM^A / LM^V features + a small adapter head, on the K pairs only
  cycle        no LMs: h also reconstructs unpaired U_A audio through S; g matches S(g(v)) to its recording
  lmm          LM features + LM^A prior + reconstruction + pairs + an LM^M prior for self-training
  basis        g = a ridge regression from score features to the pairs' deviations from the plain performance
               (basis_lmV: on LM^V features, basis_both: on both); h as supervised's
An ablation is '<method>-no_<term>' (e.g. lmm-no_lmA, lmm-no_recon, cycle-no_recon): that term switched off.
Each method module's `run` has the one signature base.MethodRun and returns a base.MethodResult.

The modules: base (MethodConfig, MethodResult, Switches, the K pairs), wrappers (h and g), lm_features (the frozen
LMs), losses, steps (crops and the mixed-term step loop), checkpoints (save / load h and g), alignment
(pseudo-motion), one module per method, and lmm_labels (lmm's LM^M label picking).
"""
from __future__ import annotations

from lmm_utils.core.features import FeatureConfig
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods import basis, cycle, lmm, supervised, surface, synth_pairs
from lmm_utils.methods.alignment import Synth
from lmm_utils.methods.base import MethodResult, MethodRun, Switches

RUNNERS: dict[str, MethodRun] = {"supervised": supervised.run, "synth_pairs": synth_pairs.run,
                                 "surface": surface.run, "cycle": cycle.run, "lmm": lmm.run,
                                 "basis": basis.run, "basis_lmV": basis.run_lmV, "basis_both": basis.run_both}
METHODS = tuple(RUNNERS)


def check_method(name: str) -> Switches:
    sw = Switches.parse(name)
    if sw.base not in RUNNERS:
        raise ValueError(f"unknown method {name!r}; methods: {METHODS} (ablations: '<method>-no_<term>')")
    return sw


def run_method(name: str, data: TrainingData, synth: Synth, params: dict | None = None,
               feat: FeatureConfig = FeatureConfig(), progress: bool = False) -> MethodResult:
    """Train one method on `data` (a TrainingData restricted to the run's K pairs); h and g come back on the CPU,
    in eval mode."""
    if not isinstance(data, TrainingData):
        raise TypeError("methods read data only through pools.TrainingData")
    sw = check_method(name)
    out = RUNNERS[sw.base](data, synth, params or {}, feat, progress, sw.off)
    out.h.net.cpu().eval()
    out.g.net.cpu().eval()
    return out


__all__ = ["METHODS", "RUNNERS", "MethodResult", "check_method", "run_method"]
