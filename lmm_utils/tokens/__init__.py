"""Tokenizers: every modality becomes a sequence of integers that one language model can read.

    V (score)  -> lmm_utils.tokens.score.ScoreTokenizer   symbolic: bar, position, pitch, duration, ...
    A (audio)  -> lmm_utils.tokens.audio.AudioTokenizer   k-means codes of stacked log-mel frames
    M (motion) -> lmm_utils.tokens.motion.MotionTokenizer performance events: time shift, note on/off, ...

All share this base: a fixed vocabulary of named tokens after three specials (pad, bos, eos),
`encode(x) -> [bos, ..., eos]`, `decode(ids) -> x` (tolerant of ill-formed sampled sequences), and
`to_dict()` / `tokenizer_from_dict()` so a tokenizer is saved inside an LM checkpoint and comes back
exactly (the audio codebook travels as a tensor in `state`).
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import torch

SPECIALS = ("<pad>", "<bos>", "<eos>")
PAD, BOS, EOS = 0, 1, 2

# modality -> "module:class"; imported lazily so that `tokens` has no import cost or cycles.
REGISTRY = {
    "V": "lmm_utils.tokens.score:ScoreTokenizer",
    "A": "lmm_utils.tokens.audio:AudioTokenizer",
    "M": "lmm_utils.tokens.motion:MotionTokenizer",
}


class Tokenizer:
    """A named vocabulary with the three specials first. Subclasses define encode/decode/config."""

    modality: str = "?"

    def __init__(self, names: Sequence[str]):
        self.itos: list[str] = list(SPECIALS) + list(names)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("duplicate token names in vocabulary")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def names(self, ids: Sequence[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def ids(self, names: Sequence[str]) -> list[int]:
        return [self.stoi[n] for n in names]

    def strip(self, ids: Sequence[int]) -> list[int]:
        """Drop a leading bos and pads; cut at the first eos (sampled sequences may lack either)."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(i)
        return out

    # -- subclass API -------------------------------------------------------------------------
    def encode(self, x: Any) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> Any:
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-able constructor arguments."""
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        """Fitted state (e.g. a codebook); empty for rule-based tokenizers."""
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no fitted state")

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"modality": self.modality, "config": self.config(), "state": self.state()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, {self.config()})"


def tokenizer_class(modality: str) -> type[Tokenizer]:
    if modality not in REGISTRY:
        raise KeyError(f"unknown modality {modality!r}; known: {sorted(REGISTRY)}")
    module, name = REGISTRY[modality].split(":")
    return getattr(importlib.import_module(module), name)


def tokenizer_from_dict(d: dict) -> Tokenizer:
    tok = tokenizer_class(d["modality"])(**d["config"])
    tok.load_state(d.get("state") or {})
    return tok


def build_tokenizer(modality: str, section: dict) -> Tokenizer:
    """params section (e.g. pretrain.tokens.V) -> an (unfitted, for A) tokenizer."""
    cls = tokenizer_class(modality)
    return cls(**(section or {}))


__all__ = ["SPECIALS", "PAD", "BOS", "EOS", "Tokenizer", "tokenizer_class", "tokenizer_from_dict", "build_tokenizer"]
