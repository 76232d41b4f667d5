"""Label-free criteria for choosing among trained h's (seeds, checkpoints): what unpaired audio says about them.

    sample = unpaired_logmels(TrainingData(root), feat, limit=64, seed=12345)   # methods.cycle: U_A audio only
    crit = unsupervised_criteria(h, sample, synth, lmM, feat)
    # {"recon": -mean recon loss, "lmM": mean nats/token, "empty_fraction": ...}; higher = better for both

    recon   how well h's transcriptions, played through S, explain their recordings (losses.recon_loss, the loss lmm
            trains on): minus its mean over the sample; an empty transcription is scored as silence.
    lmM     how probable LM^M finds them: the mean over the sample of LM^M's mean log-prob per token (nats); an empty
            transcription scores as chance, -ln(vocabulary size): the same floor for every h, so an h that hears
            little cannot hide behind its own worst transcription.

Only U_A's recordings are read (TrainingData); no labels, no true motion, nothing of T. Whether the criteria pick the
better h is measured in the evaluation part (evaluation.selection, benchmarks/model_selection.py). No method runs
this yet, so no run's fingerprint depends on this module.
"""
from __future__ import annotations

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.methods.alignment import render_logmel
from lmm_utils.methods.lmm_labels import lm_score
from lmm_utils.methods.losses import recon_loss

CRITERIA = ("recon", "lmM")


def unsupervised_criteria(h, sample: list[tuple[str, np.ndarray]], synth, lmM, feat: FeatureConfig,
                          scales: tuple[int, ...] = (1, 4, 16)) -> dict[str, float]:
    """h (HModel) on `sample` [(id, log-mel)] -> {"recon", "lmM", "empty_fraction"} (higher = better)."""
    if not sample:
        raise ValueError("the sample of unpaired recordings is empty")
    losses, lps, empty = [], [], 0
    for _, x in sample:
        perf = h.transcribe(x)
        empty += not perf.notes
        pred = render_logmel(perf, synth, feat.fps, x.shape[1])  # an empty one renders as silence
        target = torch.from_numpy(np.asarray(x, np.float32))[None]
        losses.append(float(recon_loss(torch.from_numpy(np.asarray(pred, np.float32))[None], target, scales=scales)))
        lps.append(lm_score(lmM, lmM.tokenizer, perf))
    floor = -float(np.log(lmM.tokenizer.vocab_size))  # chance: a uniform guess over the tokens
    return {"recon": -float(np.mean(losses)), "lmM": float(np.mean([v if np.isfinite(v) else floor for v in lps])),
            "empty_fraction": empty / len(sample)}


__all__ = ["CRITERIA", "unsupervised_criteria"]
