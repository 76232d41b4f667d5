"""lmm's phase B, the parts that need no lmm state: the label-cleaning criteria and LM^M's picks.

h's U_A transcriptions are ranked by the z-scored sum of their criteria: LM^M's mean log-prob per token [lmM],
how well the transcription, played through S, explains its recording [recon], and how sure h is of
it [certainty: the self-training field's usual filter, beside the issue's two]; with none (ablations) the
ranking is random, so each ablation measures its criterion, not the extra data. For g, LM^M picks the most
probable of a few variants of its own performance (at random without LM^M). An LM^M may also be learned here on
the motion h and g produce (`train_lmM`, lmm's lmM_source run).
"""
from __future__ import annotations

import numpy as np
import torch

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.lm.model import LanguageModel, train_lm
from lmm_utils.methods.alignment import render_logmel
from lmm_utils.methods.losses import recon_loss
from lmm_utils.tokens.motion import MotionTokenizer


def vary(perf: Performance, rng: np.random.Generator, tempo_jitter: float, legato: tuple[float, float],
         velocity_shift: float) -> Performance:
    """A variant of a performance: tempo factor, held fraction and velocity offset per excerpt (note order kept)."""
    if not perf.notes:
        return perf
    t0 = min(n.onset for n in perf.notes)
    f = float(np.exp(rng.uniform(-tempo_jitter, tempo_jitter)))
    held = float(rng.uniform(*legato))
    dv = float(rng.uniform(-velocity_shift, velocity_shift))
    notes = []
    for n in perf.notes:
        on = t0 + (n.onset - t0) * f
        notes.append(PerformedNote(n.pitch, on, on + max(0.03, (n.offset - n.onset) * f * held),
                                   int(np.clip(round(n.velocity + dv), 1, 127))))
    return Performance(notes=notes, pedal=list(perf.pedal))


def lm_score(lm: LanguageModel, tok: MotionTokenizer, perf: Performance) -> float:
    """Mean log-prob per token (nats) of a performance under LM^M; -inf for an empty one."""
    if not perf.notes:
        return float("-inf")
    lp = lm.log_probs(tok.encode(perf))
    return float(lp.mean()) if len(lp) else float("-inf")


def train_lmM(motions: list[Performance], tok: MotionTokenizer, model_cfg: dict, train_cfg: dict,
              sources: dict[str, int]) -> LanguageModel | None:
    """LM^M on the motions (those with notes), with the project's LM code (lm.model.train_lm); None when they
    hold fewer than 2 tokens."""
    seqs = [tok.encode(p) for p in motions if p.notes]
    if sum(len(s) for s in seqs) < 2:
        return None
    lmM = train_lm(seqs, tok, model_cfg, train_cfg, progress=False, info={"sources": sources})
    lmM.precision = "fp32"
    return lmM


def rank_scores(perfs: list[Performance], lmM: LanguageModel | None, tok: MotionTokenizer,
                rng: np.random.Generator) -> list[float]:
    """LM^M's score of each performance (lm_score); without LM^M a random one (matched control). Empty: -inf."""
    if lmM is not None:
        return [lm_score(lmM, tok, p) for p in perfs]
    return [float(rng.random()) if p.notes else float("-inf") for p in perfs]


def recon_errors(perfs: list[Performance], logmels: list[np.ndarray], synth, fps: float,
                 scales: tuple[int, ...] = (1, 4, 16), eq_order: int = 0) -> list[float]:
    """How far each transcription, played through S, sounds from its recording (losses.recon_loss: gain-invariant,
    multi-scale): a label that explains its recording is more likely right. inf for an empty transcription."""
    out = []
    for perf, x in zip(perfs, logmels):
        if not perf.notes:
            out.append(float("inf"))
            continue
        pred = torch.from_numpy(render_logmel(perf, synth, fps, x.shape[1]))[None]
        out.append(float(recon_loss(pred, torch.from_numpy(np.asarray(x, np.float32))[None], scales=scales,
                                    eq_order=eq_order)))
    return out


def certainty(logits: dict[str, torch.Tensor], floor: float = 0.1) -> float:
    """How sure h is of a transcription: minus the mean over the onset and frame heads (each weighted alike) of the
    head's mean 4 p (1 - p) (1 at p = 0.5, 0 at 0 or 1) over the cells it leans on (p >= floor; the silent rest would
    make every sparse roll look sure). A head with no such cell is left out (an h whose frame head has died still
    places notes by its onsets); -inf when neither has one."""
    parts = []
    for key in ("onset", "frame"):
        p = torch.sigmoid(logits[key].float()).flatten()
        p = p[p >= floor]
        if len(p):
            parts.append(float((4 * p * (1 - p)).mean()))
    return -float(np.mean(parts)) if parts else float("-inf")


def combine_criteria(criteria: dict[str, list[float]]) -> list[float]:
    """Sum of the z-scored criteria (each: higher = better); -inf wherever one is not finite."""
    cols = []
    for vals in criteria.values():
        v = np.asarray(vals, float)
        ok = np.isfinite(v)
        z = np.full_like(v, -np.inf)
        if ok.any():
            sd = v[ok].std()
            z[ok] = (v[ok] - v[ok].mean()) / (sd if sd > 0 else 1.0)
        cols.append(z)
    return np.sum(cols, axis=0).tolist() if cols else []


def rank_transcriptions(decodes: list[Performance], logmels: list[np.ndarray], lmM: LanguageModel | None,
                        tok: MotionTokenizer, synth, fps: float, scales: tuple[int, ...],
                        rng: np.random.Generator, eq_order: int = 0,
                        certainties: list[float] | None = None) -> tuple[list[float], dict[str, list[float]]]:
    """Label cleaning: each transcription's score (higher = kept first) from LM^M's log-prob (lmM not None), S's
    reconstruction of its recording (synth not None) and h's certainty (given), z-scored and summed; random with
    none. -> (scores, {criterion: raw values, higher = better})."""
    crit = {"lmM": rank_scores(decodes, lmM, tok, rng)} if lmM is not None else {}
    if synth is not None:
        crit["recon"] = [-e for e in recon_errors(decodes, logmels, synth, fps, scales, eq_order)]
    if certainties is not None:
        crit["certainty"] = list(certainties)
    return (combine_criteria(crit) if crit else rank_scores(decodes, None, tok, rng)), crit


def keep_best(scores: list[float], n_keep: int) -> list[int]:
    """Indices of the n_keep best finite scores, in index order."""
    order = [i for i in np.argsort(scores)[::-1] if np.isfinite(scores[i])]
    return sorted(order[:n_keep])


def choose_variants(perfs: list[Performance], lmM: LanguageModel | None, tok: MotionTokenizer,
                    rng: np.random.Generator, candidates: int, tempo_jitter: float, legato: tuple[float, float],
                    velocity_shift: float) -> tuple[list[Performance], list[int]]:
    """For each performance, `candidates` variants (the first = unchanged, the others `vary`): the one LM^M finds
    most probable (a random one without LM^M). -> (chosen performances, index of each choice)."""
    chosen, picks = [], []
    for p in perfs:
        cands = [p] + [vary(p, rng, tempo_jitter, legato, velocity_shift) for _ in range(max(0, candidates - 1))]
        if lmM is not None:
            k = int(np.argmax([lm_score(lmM, tok, c) for c in cands]))
        else:
            k = int(rng.integers(len(cands)))
        picks.append(k)
        chosen.append(cands[k])
    return chosen, picks


__all__ = ["choose_variants", "certainty", "combine_criteria", "keep_best", "lm_score", "rank_scores", "rank_transcriptions", "recon_errors", "train_lmM",
           "vary"]
