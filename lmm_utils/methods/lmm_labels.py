"""lmm's phase B, the parts that need no lmm state: LM^M trained on the motion h and g produce, and LM^M as the
prior that picks self-training labels -- h's transcriptions ranked by their mean log-prob per token, and for g,
the most probable of a few variants of its own performance. Without LM^M (ablation lmm-no_lmM) the same picks
are made at random, so that ablation measures the prior, not the extra data.
"""
from __future__ import annotations

import numpy as np

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.lm.model import LanguageModel, train_lm
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


__all__ = ["choose_variants", "keep_best", "lm_score", "rank_scores", "train_lmM", "vary"]
