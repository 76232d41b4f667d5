"""LM^M mapped from LM^V: the unpaired scores U_V, played by a *generic* performer, give abundant motion, and no
true motion is ever read to learn it (stage pretrain_M, notebook 06_pretrain_M).

The generic performer (lm.generic_performer) shares no code, no parameters and no random draws with the benchmark's
pianist (data/pianist.py), whose draws define the ground truth; a test checks that neither module imports it.

With init "lmV", LM^M starts from LM^V's trunk (its transformer blocks, positions and final norm; only the token
embedding -- tied with the output head -- is new): the mapping of LM^V onto motion in its most literal form.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmm_utils.core.motion import Performance
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.lm.data import PretrainData
from lmm_utils.lm.generic_performer import (  # noqa: F401 (re-exported: LM^M's data and the params schema)
    GenericPerformerConfig,
    generic_motion,
    generic_performance,
)
from lmm_utils.lm.model import LanguageModel, train_lm
from lmm_utils.models.transformer import Transformer
from lmm_utils.tokens.motion import MotionTokenizer

INITS = ("scratch", "lmV")
TRUNK_PREFIXES = ("blocks.", "ln_f.", "wpe.")  # what LM^M takes from LM^V (wte / head: a different vocabulary)


def split_by_score(perfs: list[Performance], renditions: int, fraction: float, seed: int):
    """Held-out part for the validation curve, whole scores at a time (every rendition of a held-out score is
    held out, so validation never sees a score it trained on)."""
    n_scores = len(perfs) // max(renditions, 1)
    order = list(range(n_scores))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(round(fraction * n_scores))) if n_scores > 1 and fraction > 0 else 0
    val = set(order[:n_val])
    train = [p for i, p in enumerate(perfs) if i // renditions not in val]
    return train, [p for i, p in enumerate(perfs) if i // renditions in val]


def copy_trunk(target: Transformer, source: Transformer) -> list[str]:
    """LM^V's trunk into LM^M: every parameter under TRUNK_PREFIXES, which must match in shape (same n_layer,
    n_head, n_embd, block_size). -> the names copied."""
    src, copied = source.state_dict(), []
    with torch.no_grad():
        for name, p in target.state_dict().items():
            if not name.startswith(TRUNK_PREFIXES):
                continue
            if name not in src or src[name].shape != p.shape:
                raise ValueError(f"LM^V's {name} does not fit LM^M ({tuple(src[name].shape) if name in src else 'absent'}"
                                 f" vs {tuple(p.shape)}): init lmV needs LM^M's model = LM^V's (pretrain.M.model: null)")
            p.copy_(src[name])
            copied.append(name)
    return copied


@dataclass(frozen=True)
class MotionLMConfig:
    """pretrain.M in params.yaml."""
    renditions: int = 4
    seed: int = 0
    val_fraction: float = 0.05
    init: str = "scratch"  # scratch | lmV
    performer: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    model: dict | None = None  # None: LM^V's size with init lmV, else the runs' LM^M size
    train: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"pretrain.M.init must be one of {INITS}, not {self.init!r}")
        if self.renditions < 1:
            raise ValueError(f"pretrain.M.renditions must be >= 1, not {self.renditions}")

    @classmethod
    def from_params(cls, section: dict | None) -> MotionLMConfig:
        return dataclass_from(cls, section, "pretrain.M")


def model_config(cfg: MotionLMConfig, lmV: LanguageModel | None, default: dict) -> dict:
    """LM^M's transformer size: explicit, else LM^V's (init lmV: the trunk must fit), else `default`."""
    if cfg.model:
        return dict(cfg.model)
    if cfg.init == "lmV":
        if lmV is None:
            raise ValueError("pretrain.M.init lmV needs LM^V (data/lm/V)")
        return {k: v for k, v in lmV.model.cfg.to_dict().items() if k != "vocab_size"}
    return dict(default)


def motion_lm_data(scores: list[ScoreExcerpt], cfg: MotionLMConfig,
                   test_motion: list[Performance] = ()) -> PretrainData:
    """U_V's scores -> renditions by the generic performer -> tokens (validation: whole held-out scores); the test
    sequences are `test_motion` tokenized (T's true motion, passed in by the evaluation part only)."""
    tok = MotionTokenizer(**cfg.tokens)
    perfs = generic_motion(scores, cfg.renditions, cfg.seed, GenericPerformerConfig.from_params(cfg.performer))
    train, val = split_by_score(perfs, cfg.renditions, cfg.val_fraction, cfg.seed)
    stats = {"n_scores": len(perfs) // cfg.renditions, "n_notes": sum(len(p.notes) for p in perfs),
             "n_test_notes": sum(len(p.notes) for p in test_motion)}
    return PretrainData("M", tok, [tok.encode(p) for p in train], [tok.encode(p) for p in val],
                        [tok.encode(p) for p in test_motion], stats)


def train_motion_lm(data: PretrainData, cfg: MotionLMConfig, lmV: LanguageModel | None, default_model: dict,
                    out_dir: str | Path | None = None, live_dir: str | Path | None = None,
                    progress: bool = True) -> LanguageModel:
    """LM^M on the generic motion, from scratch or from LM^V's trunk (cfg.init), with the project's LM code."""
    trunk = None
    if cfg.init == "lmV":
        if lmV is None:
            raise ValueError("pretrain.M.init lmV needs LM^V (data/lm/V)")
        trunk = lambda model: copy_trunk(model, lmV.model)  # noqa: E731
    info = {"train_pool": "U_V (scores, played by the generic performer)", "init": cfg.init,
            "renditions": cfg.renditions, "n_scores": data.stats["n_scores"], "n_notes": data.stats["n_notes"]}
    return train_lm(data.train, data.tokenizer, model_config(cfg, lmV, default_model), {**cfg.train, "seed": cfg.seed},
                    val_sequences=data.val, out_dir=out_dir, live_dir=live_dir, info=info, progress=progress,
                    init=trunk)


__all__ = ["GenericPerformerConfig", "MotionLMConfig", "INITS", "copy_trunk", "generic_motion",
           "generic_performance", "model_config", "motion_lm_data", "split_by_score", "train_motion_lm"]
