"""Language models over token sequences, for any modality: train, save/load, score, sample.

    tok = ScoreTokenizer()                      # or a fitted AudioTokenizer, a MotionTokenizer
    seqs = [tok.encode(x) for x in train_items] # lists of ids, each <bos> ... <eos>
    lm = train_lm(seqs, tok, model_cfg, train_cfg, val_sequences=val)
    lm.save("data/lm/V"); lm = LanguageModel.load("data/lm/V")
    lm.bits_per_token(test_seqs)                # held-out cross-entropy, bits per predicted token
    lm.sample(4, max_new_tokens=512)            # token lists -> lm.tokenizer.decode(...)
    lm.hidden(seq); lm.log_probs(seqs)          # frozen feature extractor / prior

Bits per token count every token after <bos> (including <eos>), each predicted from its whole
prefix (a sliding window with `stride` new tokens per window once a sequence outgrows the context).
The unigram and bigram baselines (`NGramBaseline`) score exactly the same targets.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lmm_utils.core.io import atomic_path, jsonable
from lmm_utils.models.transformer import Transformer, TransformerConfig, autocast
from lmm_utils.tokens import BOS, EOS, PAD, Tokenizer, tokenizer_from_dict
from lmm_utils.training.distributed import is_main_process
from lmm_utils.training.loop import TrainConfig, train

CHECKPOINT = "lm.pt"
INFO = "info.json"


# -- data ---------------------------------------------------------------------------------------
class TokenStream:
    """Sequences concatenated into one stream; batches are random windows of block_size + 1 tokens
    (nanoGPT). Targets that are <bos> (the jump from one sequence's <eos> to the next) are ignored."""

    def __init__(self, sequences: Sequence[Sequence[int]], block_size: int):
        flat = [t for s in sequences for t in s]
        if len(flat) < 2:
            raise ValueError("need at least two tokens to train on")
        # pad short streams so one window always fits
        if len(flat) < block_size + 1:
            flat = flat + [PAD] * (block_size + 1 - len(flat))
        self.data = torch.tensor(flat, dtype=torch.long)
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, batch_size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.data) - self.block_size, (batch_size,), generator=g)
        win = torch.stack([self.data[s : s + self.block_size + 1] for s in starts.tolist()])
        x, y = win[:, :-1], win[:, 1:].clone()
        y[(y == BOS) | (y == PAD)] = -1
        return x, y


# -- the bundle ---------------------------------------------------------------------------------
TIMING_KEYS = ("seconds", "tokens_per_s")


def without_timings(info):
    """`info` without its wall-clock measurements (at any depth)."""
    if isinstance(info, dict):
        return {k: without_timings(v) for k, v in info.items() if k not in TIMING_KEYS}
    return info


@dataclass
class LanguageModel:
    model: Transformer
    tokenizer: Tokenizer
    info: dict = field(default_factory=dict)  # modality, training history, data sizes ...
    precision: str = "auto"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def block_size(self) -> int:
        return self.model.cfg.block_size

    def save(self, folder: str | Path) -> Path:
        """folder/lm.pt (config + weights + tokenizer + info) and folder/info.json (readable). The checkpoint
        leaves out wall-clock figures (seconds, tokens/s), so the same training gives the same bytes."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / CHECKPOINT) as tmp:  # an interrupted save never leaves a torn checkpoint
            torch.save(
                {"model_config": self.model.cfg.to_dict(), "state_dict": self.model.state_dict(),
                 "tokenizer": self.tokenizer.to_dict(), "info": without_timings(self.info)},
                tmp,
            )
        with atomic_path(folder / INFO) as tmp:
            tmp.write_text(json.dumps(jsonable(
                {"model_config": self.model.cfg.to_dict(), "tokenizer": {"modality": self.tokenizer.modality,
                 "config": self.tokenizer.config(), "vocab_size": self.tokenizer.vocab_size}, **self.info}),
                indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> LanguageModel:
        ck = torch.load(Path(folder) / CHECKPOINT, map_location=device, weights_only=True)
        model = Transformer(TransformerConfig(**ck["model_config"]))
        model.load_state_dict(ck["state_dict"])
        model.to(device).eval()
        return cls(model, tokenizer_from_dict(ck["tokenizer"]), ck.get("info", {}))

    @classmethod
    def load_frozen(cls, folder: str | Path, device: str | torch.device = "cpu") -> LanguageModel:
        """A frozen LM for a method to read (features, priors, ranking): eval mode, fp32 (no autocast noise in
        the scores it ranks by), no gradients to its weights."""
        lm = cls.load(folder, device=str(device))
        lm.precision = "fp32"
        for p in lm.model.parameters():
            p.requires_grad_(False)
        return lm

    # -- scoring ------------------------------------------------------------------------------
    @torch.no_grad()
    def log_probs(self, seq: Sequence[int], stride: int | None = None) -> np.ndarray:
        """log p(seq[t] | seq[:t]) in nats for t = 1..len-1. The first block_size targets see their
        whole prefix; later ones at least block_size - stride tokens (stride 1: always block_size)."""
        self.model.eval()
        ids = torch.tensor(list(seq), dtype=torch.long, device=self.device)
        n, block = len(ids), self.block_size
        out = torch.empty(max(n - 1, 0))
        stride = stride or block // 2
        done = 0  # targets 1..done are scored
        start = 0
        while done < n - 1:
            end = min(start + block + 1, n)  # window ids[start:end] predicts targets start+1..end-1
            with autocast(self.device, self.precision):
                lp = self.model.token_log_probs(ids[start:end][None])[0].float().cpu()
            first = done + 1  # first target not yet scored
            out[first - 1 : end - 1] = lp[first - start - 1 :]
            done = end - 1
            start = min(start + stride, max(n - block - 1, 0)) if end < n else start
        return out.numpy()

    def bits_per_token(self, sequences: Sequence[Sequence[int]], progress: bool = False) -> dict:
        total, count = 0.0, 0
        for s in tqdm(sequences, desc="bits/token", disable=not progress, mininterval=2.0):
            lp = self.log_probs(s)
            total += float(-lp.sum())
            count += len(lp)
        return {"bits_per_token": total / max(count, 1) / math.log(2), "n_tokens": count, "n_sequences": len(sequences)}

    @torch.no_grad()
    def hidden(self, seq: Sequence[int], all_layers: bool = False, stride: int | None = None) -> torch.Tensor | list[torch.Tensor]:
        """Features of one sequence, (T, C) or a list per layer (embeddings first). Past block_size
        tokens the window slides like `log_probs`, so every position sees at least block - stride
        tokens of context (the first block_size positions see all of theirs)."""
        self.model.eval()
        ids = torch.tensor(list(seq), dtype=torch.long, device=self.device)
        n, block = len(ids), self.block_size
        stride = stride or block // 2
        pieces: list[list[torch.Tensor]] = []
        done, start = 0, 0  # positions < done are computed
        while done < n:
            end = min(start + block, n)
            with autocast(self.device, self.precision):
                h = self.model.hidden(ids[start:end][None], all_layers=True)
            pieces.append([x[0, done - start :].float() for x in h])
            done = end
            start = min(start + stride, max(n - block, 0)) if end < n else start
        layers = [torch.cat([p[i] for p in pieces]) if pieces else torch.zeros(0, self.model.cfg.n_embd)
                  for i in range(self.model.cfg.n_layer + 1)]
        return layers if all_layers else layers[-1]

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, max_new_tokens: int = 512, temperature: float = 1.0, top_k: int | None = None,
        seed: int = 0, prompt: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """n sequences started from <bos> (or prompt), cut after their <eos>."""
        self.model.eval()
        g = torch.Generator(device=self.device).manual_seed(seed)
        start = torch.tensor([list(prompt or [BOS])] * n, dtype=torch.long, device=self.device)
        with autocast(self.device, self.precision):
            out = self.model.generate(start, max_new_tokens, temperature, top_k or None, stop_token=EOS, generator=g)
        seqs = []
        for row in out.tolist():
            if EOS in row[1:]:
                row = row[: row.index(EOS, 1) + 1]
            seqs.append(row)
        return seqs

    def decode(self, seq: Sequence[int]):
        return self.tokenizer.decode(seq)


# -- training -----------------------------------------------------------------------------------
def train_lm(
    sequences: Sequence[Sequence[int]],
    tokenizer: Tokenizer,
    model_cfg: TransformerConfig | dict,
    train_cfg: TrainConfig | dict,
    val_sequences: Sequence[Sequence[int]] | None = None,
    out_dir: str | Path | None = None,
    live_dir: str | Path | None = None,
    info: dict | None = None,
    progress: bool = True,
    init: Callable[[Transformer], object] | None = None,
) -> LanguageModel:
    """The modality-generic entry point: token sequences + their tokenizer -> a trained LanguageModel.

    Validation batches come from val_sequences (a held-out part of the *training pool*, never T);
    without them the validation curve is skipped. With out_dir, the bundle is saved at every
    evaluation (so an interrupted run leaves the latest checkpoint) and at the end.
    """
    if isinstance(train_cfg, dict):
        train_cfg = TrainConfig.from_params(train_cfg)
    if isinstance(model_cfg, dict):
        model_cfg = TransformerConfig.from_params(model_cfg, tokenizer.vocab_size)
    if model_cfg.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"model vocab {model_cfg.vocab_size} != tokenizer vocab {tokenizer.vocab_size}")
    torch.manual_seed(train_cfg.seed)  # the initial weights
    model = Transformer(model_cfg)
    if init is not None:
        init(model)
    streams = {"train": TokenStream(sequences, model_cfg.block_size)}
    if val_sequences:
        streams["val"] = TokenStream(val_sequences, model_cfg.block_size)
    lm = LanguageModel(model, tokenizer, dict(info or {}), precision=train_cfg.precision)
    lm.info.update(modality=tokenizer.modality, n_train_sequences=len(sequences),
                   n_train_tokens=sum(len(s) for s in sequences), n_params=model.num_params())

    def get_batch(split: str, g: torch.Generator):
        return streams[split].batch(train_cfg.batch_size, g)

    def on_eval(step: int, hist: dict) -> None:
        if out_dir is not None:
            lm.info["history"] = {k: v for k, v in hist.items()}
            lm.info["steps_done"] = step
            lm.save(out_dir)

    hist = train(model, get_batch, train_cfg, live_dir=live_dir, on_eval=on_eval, has_val="val" in streams,
                 progress=progress)
    model.eval()
    lm.info["history"] = hist
    if out_dir is not None and is_main_process():  # under torchrun only rank 0 writes
        lm.save(out_dir)
    return lm


# -- baselines ----------------------------------------------------------------------------------
class NGramBaseline:
    """Unigram (add-one) and interpolated Kneser-Ney bigram (discount D, add-one continuation
    counts so unseen tokens keep some mass), over the same targets as LanguageModel.bits_per_token."""

    def __init__(self, vocab_size: int, discount: float = 0.75):
        self.v = vocab_size
        self.d = discount
        self.uni = np.zeros(vocab_size)
        self.bi = np.zeros((vocab_size, vocab_size))

    def fit(self, sequences: Sequence[Sequence[int]]) -> NGramBaseline:
        for s in sequences:
            a = np.asarray(s, dtype=np.int64)
            if len(a) < 2:
                continue
            np.add.at(self.uni, a[1:], 1)
            np.add.at(self.bi, (a[:-1], a[1:]), 1)
        return self

    def unigram_log_probs(self, seq: Sequence[int]) -> np.ndarray:
        p = (self.uni + 1) / (self.uni.sum() + self.v)
        return np.log(p[np.asarray(seq[1:], dtype=np.int64)])

    def bigram_table(self) -> np.ndarray:
        cont = (self.bi > 0).sum(0)  # N1+(. w): how many contexts each token follows
        p_cont = (cont + 1) / (cont.sum() + self.v)
        c_ctx = self.bi.sum(1, keepdims=True)
        n_types = (self.bi > 0).sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.maximum(self.bi - self.d, 0) / c_ctx + self.d * n_types / c_ctx * p_cont[None]
        return np.where(c_ctx > 0, p, p_cont[None])

    def bigram_log_probs(self, seq: Sequence[int], table: np.ndarray | None = None) -> np.ndarray:
        table = self.bigram_table() if table is None else table
        a = np.asarray(seq, dtype=np.int64)
        return np.log(table[a[:-1], a[1:]])

    def bits_per_token(self, sequences: Sequence[Sequence[int]]) -> dict:
        table = self.bigram_table()
        uni = sum(float(-self.unigram_log_probs(s).sum()) for s in sequences)
        bi = sum(float(-self.bigram_log_probs(s, table).sum()) for s in sequences)
        n = sum(max(len(s) - 1, 0) for s in sequences)
        return {"unigram": uni / max(n, 1) / math.log(2), "bigram": bi / max(n, 1) / math.log(2), "n_tokens": n}


def evaluate_lm(lm: LanguageModel, train_sequences: Sequence[Sequence[int]],
                test_sequences: Sequence[Sequence[int]], progress: bool = True) -> dict:
    """Held-out bits per token of the LM and of unigram/bigram baselines fitted on the same training data."""
    base = NGramBaseline(lm.tokenizer.vocab_size).fit(train_sequences).bits_per_token(test_sequences)
    mine = lm.bits_per_token(test_sequences, progress=progress)
    return {"lm": mine["bits_per_token"], "unigram": base["unigram"], "bigram": base["bigram"],
            "uniform": math.log2(lm.tokenizer.vocab_size), "n_tokens": mine["n_tokens"],
            "n_sequences": mine["n_sequences"]}


__all__ = ["TokenStream", "LanguageModel", "train_lm", "NGramBaseline", "evaluate_lm"]
