"""Training throughput (tokens/s) of our Transformer vs a plain-PyTorch reference of the same size.

The reference is torch.nn.TransformerEncoder (pre-LN, GELU, 4x MLP, causal mask, tied head) with the
same width, depth, heads, context and vocabulary. Both run the same training step (forward, cross-
entropy, backward, AdamW) on the same batches, interleaved round by round so that load from other
processes on a shared machine hits both alike. Prints tokens/s per model and precision and the ratio.

    .venv/bin/python benchmarks/bench_transformer.py                 # the pretrain default size
    .venv/bin/python benchmarks/bench_transformer.py --threads 2 --rounds 5 --precision fp32 bf16
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.models.transformer import Transformer, TransformerConfig, autocast, cpu_supports_bf16


class ReferenceLM(nn.Module):
    """The same LM built from torch.nn.TransformerEncoder."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        layer = nn.TransformerEncoderLayer(
            cfg.n_embd, cfg.n_head, 4 * cfg.n_embd, cfg.dropout, activation="gelu", batch_first=True,
            norm_first=True, bias=cfg.bias,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layer, norm=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=idx.device)
        logits = self.head(self.encoder(x, mask=mask, is_causal=True))
        return logits, F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def step_time(model: nn.Module, opt, x, y, precision: str) -> float:
    t0 = time.perf_counter()
    with autocast("cpu", precision):
        _, loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds; each round times --steps steps per model")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "auto"])
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = TransformerConfig(args.vocab_size, args.block_size, args.n_layer, args.n_head, args.n_embd, args.dropout)
    x = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.block_size))
    y = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.block_size))
    tokens = x.numel() * args.steps
    print(f"config: {cfg}  batch {args.batch_size}  threads {args.threads}  cpu bf16 native: {cpu_supports_bf16()}")
    for precision in args.precision:
        models = {"ours": Transformer(cfg), "reference": ReferenceLM(cfg)}
        n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
        opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
        for k in models:  # warm-up (allocator, kernels)
            for _ in range(2):
                step_time(models[k], opts[k], x, y, precision)
        rates: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(args.rounds):
            for k in models:
                secs = sum(step_time(models[k], opts[k], x, y, precision) for _ in range(args.steps))
                rates[k].append(tokens / secs)
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k in models:
            print(f"[{precision}] {k:9s} params {n_params[k]:>9,d}  {med[k]:>9,.0f} tokens/s "
                  f"(rounds: {', '.join(f'{r:,.0f}' for r in rates[k])})")
        print(f"[{precision}] ratio ours / reference = {med['ours'] / med['reference']:.2f}")


if __name__ == "__main__":
    main()
