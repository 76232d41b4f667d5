"""methods.steps: one shared forward of g over several terms' rows gives each term what its own forward gave."""
from __future__ import annotations

import numpy as np
import torch
from factories import excerpt, voices

from lmm_utils.methods.steps import batch_rows, shared_forward, target_loss
from lmm_utils.methods.wrappers import make_g
from lmm_utils.models.performer import PerformerConfig, note_targets, performer_loss


def _g_and_batch(n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = [excerpt(voices(rng, 1 + i % 2, 8.0, [0.5, 1.0, 2.0], lambda r, p, c: int(c + r.integers(-5, 6))),
                      id=f"s{i}") for i in range(n)]
    torch.manual_seed(seed)
    g = make_g(PerformerConfig(d_model=16, n_layers=1, dropout=0.0))
    with torch.no_grad():  # a trained-looking head: non-zero deviations
        g.net.head.weight.normal_(0.0, 0.3)
    g.net.eval()
    return g, scores, g.encode(scores)


def test_shared_forward_equals_one_forward_per_term():
    g, _, full = _g_and_batch()
    parts = [torch.tensor([0, 3, 3]), None, torch.tensor([4, 1])]
    out = shared_forward(g.net, full, parts, torch.device("cpu"))
    assert out[1] is None
    for idx, got in zip(parts, out):
        if idx is None:
            continue
        rows, raw = got
        alone = g.net.deviations(batch_rows(full, idx, torch.device("cpu")))
        torch.testing.assert_close(raw, alone, rtol=1e-5, atol=1e-6)
        assert torch.equal(rows.pitch, full.pitch[idx])
    assert shared_forward(g.net, full, [None, None], torch.device("cpu")) == [None, None]


def test_target_loss_is_performer_loss_of_the_rows():
    g, scores, full = _g_and_batch()
    targets = note_targets(g.perform(scores), full)
    idx = torch.tensor([2, 0])
    rows = batch_rows(full, idx, torch.device("cpu"))
    (part,) = shared_forward(g.net, full, [idx], torch.device("cpu"))
    want = performer_loss(g.net(rows), {k: v[idx] for k, v in targets.items()}, rows.mask)["loss"]
    got = target_loss(g.net, *part, targets, idx, torch.device("cpu"))
    torch.testing.assert_close(got, want)
