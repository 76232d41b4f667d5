"""The one language model: a compact decoder-only transformer (nanoGPT-style), shared by V, A and M.

Pre-LayerNorm blocks, learned positions, tied input/output embeddings, causal attention through
`torch.nn.functional.scaled_dot_product_attention(is_causal=True)` (flash/memory-efficient kernels
on CPU and GPU). Besides training (`forward` -> logits, loss) it offers what later stages need from a
frozen LM: per-token log-probabilities (`token_log_probs`, the prior) and hidden features
(`hidden`, the feature extractor), and plain ancestral sampling (`generate`).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.params import dataclass_from


@dataclass
class TransformerConfig:
    vocab_size: int = 512
    block_size: int = 256  # longest context
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    bias: bool = False  # biases in linears/LayerNorms: slightly worse and slower (nanoGPT)

    @classmethod
    def from_params(cls, section: dict, vocab_size: int) -> TransformerConfig:
        return replace(dataclass_from(cls, section, "pretrain.model"), vocab_size=int(vocab_size))

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """bf16 matmuls are fast only with native support (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(device: str | torch.device, precision: str = "auto") -> str:
    """"auto" -> "bf16" where the hardware runs bf16 natively, else "fp32"; "bf16"/"fp32" as given."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision != "auto":
        return precision
    dev = torch.device(device).type
    ok = torch.cuda.is_bf16_supported() if dev == "cuda" else dev == "cpu" and cpu_supports_bf16()
    return "bf16" if ok else "fp32"


def autocast(device: str | torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast where the hardware runs it natively ("auto"), or as asked ("bf16" / "fp32")."""
    if resolve_precision(device, precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # weight tying: fewer parameters, better small-data LMs
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> (B, T, C); or soft tokens (B, T, V) probabilities -> their expected
        embedding, so a frozen LM can score a differentiable distribution over tokens (a prior)."""
        if idx.is_floating_point():
            return idx.to(self.wte.weight.dtype) @ self.wte.weight
        return self.wte(idx)

    def hidden(self, idx: torch.Tensor, all_layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """(B, T) token ids or (B, T, V) soft tokens -> (B, T, C) final normalised hidden states (or
        every layer's residual stream, embeddings first, when all_layers) -- the features a frozen LM
        offers downstream."""
        t = idx.shape[1]
        if t > self.cfg.block_size:
            raise ValueError(f"sequence of {t} tokens exceeds block_size {self.cfg.block_size}")
        x = self.drop(self.embed(idx) + self.wpe(torch.arange(t, device=idx.device)))
        layers = [x]
        for block in self.blocks:
            x = block(x)
            layers.append(x)
        x = self.ln_f(x)
        if all_layers:
            return layers[:-1] + [x]
        return x

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V); with targets (B, T) also the mean cross-entropy over targets != -1.
        idx may be token ids (B, T) or soft tokens (B, T, V) (see `embed`)."""
        logits = self.head(self.hidden(idx))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    def token_log_probs(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T-1): log p(idx[:, t] | idx[:, :t]) in nats, for t = 1..T-1."""
        logits, _ = self(idx[:, :-1])
        logp = F.log_softmax(logits.float(), dim=-1)
        return logp.gather(-1, idx[:, 1:, None]).squeeze(-1)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        stop_token: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling; the context slides once it exceeds block_size. Stops early when every
        row has produced stop_token (rows that stopped keep emitting it, to be cut by the decoder)."""
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.cfg.block_size :])
            logits = logits[:, -1, :].float() / max(temperature, 1e-6)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -float("inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            if stop_token is not None:
                nxt = torch.where(done[:, None], torch.full_like(nxt, stop_token), nxt)
                done |= nxt.squeeze(1) == stop_token
            idx = torch.cat([idx, nxt], dim=1)
            if stop_token is not None and bool(done.all()):
                break
        return idx


__all__ = ["TransformerConfig", "Transformer", "autocast", "resolve_precision", "cpu_supports_bf16"]
