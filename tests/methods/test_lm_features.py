from __future__ import annotations

import numpy as np
import pytest
import torch

from lmm_utils.lm.model import LanguageModel
from lmm_utils.methods.lm_features import AudioLMFeatures, merge_runs
from lmm_utils.models.transformer import Transformer, TransformerConfig
from lmm_utils.tokens import SPECIALS
from lmm_utils.tokens.audio import AudioTokenizer


def audio_lm(features: str, dedup: bool = False) -> tuple[AudioLMFeatures, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    mels = [rng.normal(size=(32, 40)).astype(np.float32) for _ in range(4)]
    tok = AudioTokenizer(n_mels=32, frames_per_token=2, codebook_size=8, kmeans_iters=3, features=features,
                         dedup=dedup)
    tok.fit(mels, progress=False)
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    return AudioLMFeatures(LanguageModel(Transformer(cfg).eval(), tok, precision="fp32")), mels


@pytest.mark.parametrize("features", ["logmel", "harmonic"])
def test_audio_lm_features_read_the_tokenizers_codes(features):
    lmf, mels = audio_lm(features)
    out = lmf(mels[0][:, :35])
    assert out.shape == (16, 35) and np.isfinite(out).all()
    assert np.allclose(out[:, 0], out[:, 1])  # one token covers frames 0 and 1
    x = torch.from_numpy(np.stack(mels[:2])).requires_grad_(True)
    sharp = lmf.soft_tokens(x, tau=1e-4)  # nearly hard: the same codes as encode
    hard = lmf.lm.tokenizer.codes(mels[0]) + len(SPECIALS)
    assert sharp.shape == (2, 20, lmf.lm.tokenizer.vocab_size)
    assert torch.equal(sharp[0].argmax(-1), hard)
    nll = lmf.prior_nll(x)
    nll.backward()
    assert torch.isfinite(nll) and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def held_notes(n_mels: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Log-mels of a few 'sounds', each held 2-10 frame tokens: what dedup tokens are for."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(6, n_mels, 1)).astype(np.float32) * 3
    return [np.concatenate([np.repeat(protos[k], 2 * int(rng.integers(1, 6)), axis=1)
                            for k in rng.integers(0, 6, size=8)], axis=1) for _ in range(4)]


def test_merge_runs_averages_each_run_and_pads_the_shorter_sequence():
    soft = torch.tensor([[[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4]],
                         [[0.1, 0.9], [0.3, 0.7], [0.4, 0.6], [0.2, 0.8]]], requires_grad=True)
    merged, mask = merge_runs(soft)
    assert merged.shape == (2, 3, 2) and mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.allclose(merged[0], torch.tensor([[0.8, 0.2], [0.2, 0.8], [0.6, 0.4]]))
    assert torch.allclose(merged[1, 0], torch.tensor([0.25, 0.75]))
    merged[0, 0, 0].backward()
    assert soft.grad[0, :2, 0].tolist() == [0.5, 0.5] and soft.grad[0, 2:].abs().sum() == 0


def test_dedup_features_span_each_run_and_the_prior_reads_one_token_per_run():
    mels = held_notes()
    tok = AudioTokenizer(n_mels=32, frames_per_token=2, codebook_size=6, kmeans_iters=10, dedup=True)
    tok.fit(mels, progress=False)
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    lmf = AudioLMFeatures(LanguageModel(Transformer(cfg).eval(), tok, precision="fp32"))
    mel = mels[0]
    ids, counts = tok.encode_runs(mel)
    assert len(ids) - 2 < mel.shape[1] // 2  # fewer tokens than frame tokens
    out = lmf(mel)
    assert out.shape == (16, mel.shape[1])
    h = lmf.lm.hidden(ids)[1:-1].float().numpy()
    ends = np.cumsum(counts * 2)
    for k, (start, end) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        assert np.allclose(out[:, start:end], h[k][:, None], atol=1e-5)  # one run's frames read its token's state
    # nearly hard soft tokens: the prior is the LM's mean NLL (nats) of the run tokens, not of the frame tokens
    x = torch.from_numpy(mel[None]).requires_grad_(True)
    nll = lmf.prior_nll(x, tau=1e-4)
    hard = -lmf.lm.log_probs(ids)[: len(ids) - 2].mean()  # every run token (not <eos>), after <bos>
    assert abs(nll.item() - float(hard)) < 1e-3
    nll.backward()
    assert torch.isfinite(x.grad).all()
