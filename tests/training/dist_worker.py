"""The training run of tests/training/test_distributed.py: run as `python dist_worker.py OUT` (one process) or
`torchrun --nproc_per_node 2 dist_worker.py OUT` (two); rank 0 saves final weights and history to OUT."""
from __future__ import annotations

import sys

import torch

from lmm_utils.lm.model import TokenStream
from lmm_utils.models.transformer import Transformer, TransformerConfig
from lmm_utils.tokens import EOS
from lmm_utils.training.distributed import is_main_process
from lmm_utils.training.loop import TrainConfig, train

VOCAB = 40


def run(out: str) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(123)
    # One long sequence: no <bos>/<pad> targets inside a window, so every row of a batch has the same
    # number of scored tokens and the mean of per-process means is the global mean exactly.
    seq = [1] + torch.randint(EOS + 1, VOCAB, (800,), generator=g).tolist() + [EOS]
    stream = TokenStream([seq], block_size=16)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    cfg = TrainConfig(steps=8, batch_size=8, lr=3e-3, min_lr=3e-4, warmup=2, eval_every=4, eval_batches=2,
                      log_every=2, seed=0, device="cpu", precision="fp32", threads=1)
    hist = train(model, lambda split, gen: stream.batch(cfg.batch_size, gen), cfg, progress=False)
    if is_main_process():
        keep = ("train_loss", "val_loss", "world_size", "tokens")
        torch.save({"state": model.state_dict(), "hist": {k: hist[k] for k in keep}}, out)


if __name__ == "__main__":
    run(sys.argv[1])
