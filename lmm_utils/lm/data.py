"""What each LM may read, and its token sequences.

One small reader per modality: training pools through the data-access guard pools.TrainingData, the test
pool T (and any motion) through the evaluation door data.evaluation.EvaluationData:
    read_scores(pool)            data/scores/<pool>.jsonl -> ScoreExcerpts
    read_audio_logmels(pool)     data/audio/<pool>/<id>.flac -> log-mel (n_mels, T) per excerpt

`pretrain_data(modality, ...)` builds what stage 06 needs: LM^V from U_V scores only; LM^A from U_A
audio only, the codebook fitted on U_A log-mels only. A small random part of the training pool is
held out for the validation curve; T is read only as the held-out test set for evaluation.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.paths import AUDIO_DIR, DATA
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.evaluation import TEST_POOL, EvaluationData
from lmm_utils.data.pools import TrainingData
from lmm_utils.tokens import Tokenizer, build_tokenizer

TRAIN_POOL = {"V": "U_V", "A": "U_A"}  # the only pool each pretraining stage trains on (TEST_POOL: "T")
LM_DIR = DATA / "lm"


def lm_dir(modality: str) -> Path:
    """Where stage 06 saves LM^<modality> (lm.pt + info.json); LanguageModel.load reads it back."""
    return LM_DIR / modality


# -- readers (one per modality) -----------------------------------------------------------------
# Training pools go through pools.TrainingData, which refuses T and motion; the test pool through
# EvaluationData, and only for the evaluation part of stage 06 (`pretrain_data`'s test sequences).
def read_scores(pool: str) -> list[ScoreExcerpt]:
    if pool == TEST_POOL:
        return list(EvaluationData().scores(pool).values())
    return TrainingData().scores(pool)


def read_audio_logmels(pool: str, cfg: FeatureConfig, limit: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Log-mel of every excerpt's audio in pool (ordered as its conditions.jsonl; T's by file name)."""
    if pool == TEST_POOL:
        return EvaluationData().logmels(pool, cfg, limit=limit, progress=progress)
    guard = TrainingData()
    ids = guard.audio_ids(pool)[:limit]
    if not ids:
        raise FileNotFoundError(f"no audio for pool {pool} in {AUDIO_DIR / pool}")
    out = {}
    for i in tqdm(ids, desc=f"log-mel {pool}", disable=not progress, mininterval=2.0):
        audio, sr = guard.audio(pool, i)
        if sr != cfg.sample_rate:
            raise ValueError(f"{pool}/{i}: {sr} Hz, expected {cfg.sample_rate} Hz")
        out[i] = log_mel(audio.mean(1) if audio.ndim == 2 else audio, cfg)
    return out


# -- pretraining data ---------------------------------------------------------------------------
@dataclass
class PretrainData:
    modality: str
    tokenizer: Tokenizer
    train: list[list[int]]
    val: list[list[int]]
    test: list[list[int]]  # T: evaluation only
    stats: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)  # a few raw test items for the report (score / log-mel)

    def summary(self) -> dict:
        lens = lambda s: [len(x) for x in s]  # noqa: E731
        out = {"modality": self.modality, "vocab_size": self.tokenizer.vocab_size}
        for name in ("train", "val", "test"):
            seqs = getattr(self, name)
            out[f"{name}_sequences"] = len(seqs)
            out[f"{name}_tokens"] = int(sum(lens(seqs)))
            out[f"{name}_mean_len"] = float(np.mean(lens(seqs))) if seqs else 0.0
        return out


def split_val(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Random held-out part of the training pool for the validation curve (at least one item)."""
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_val = max(1, int(round(fraction * len(items)))) if len(items) > 1 and fraction > 0 else 0
    val = set(idx[:n_val])
    return [x for i, x in enumerate(items) if i not in val], [x for i, x in enumerate(items) if i in val]


def pretrain_data(modality: str, pretrain: dict, features: dict, progress: bool = True) -> PretrainData:
    """Tokenizer + train/val sequences from the modality's training pool + test sequences from T."""
    seed = int(pretrain.get("seed", 0))
    frac = float(pretrain.get("val_fraction", 0.05))
    limit = pretrain.get("max_items")  # smoke profiles: cap the number of excerpts read per pool
    tok_params = dict((pretrain.get("tokens") or {}).get(modality) or {})
    if modality == "V":
        tok = build_tokenizer("V", tok_params)
        train_items, val_items = split_val(read_scores(TRAIN_POOL["V"])[:limit], frac, seed)
        test_items = read_scores(TEST_POOL)[:limit]
        data = PretrainData("V", tok, [tok.encode(s) for s in train_items], [tok.encode(s) for s in val_items],
                            [tok.encode(s) for s in test_items], examples={"test": test_items[:4]})
        return data
    if modality == "A":
        fcfg = FeatureConfig.from_params(features or {})
        tok = build_tokenizer("A", {**tok_params, "n_mels": fcfg.n_mels, "fmin": fcfg.fmin, "fmax": fcfg.fmax,
                                    "seed": seed})
        mels = list(read_audio_logmels(TRAIN_POOL["A"], fcfg, limit, progress).values())
        train_mels, val_mels = split_val(mels, frac, seed)
        fit = tok.fit(mels, progress=progress)  # the codebook sees U_A only (train + val part)
        test_mels = list(read_audio_logmels(TEST_POOL, fcfg, limit, progress).values())
        test = [tok.encode(m) for m in test_mels]
        # measured on T, not fps / frames_per_token: a dedup tokenizer's rate depends on the music
        seconds = sum(m.shape[1] for m in test_mels) / fcfg.fps
        stats = {"codebook": {**fit, "U_A": tok.reconstruction_error(mels), "T": tok.reconstruction_error(test_mels),
                              "tokens_per_second": (sum(len(s) - 2 for s in test) / max(seconds, 1e-9) if tok.dedup
                                                    else fcfg.fps / tok.frames_per_token)}}
        return PretrainData("A", tok, [tok.encode(m) for m in train_mels], [tok.encode(m) for m in val_mels],
                            test, stats, examples={"test": test_mels[:4]})
    raise ValueError(f"pretraining is defined for V and A (LM^M is trained by the mapping stage), not {modality!r}")


__all__ = ["lm_dir", "LM_DIR", "read_scores", "read_audio_logmels", "PretrainData", "split_val", "pretrain_data",
           "TRAIN_POOL", "TEST_POOL"]
