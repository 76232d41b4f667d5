from __future__ import annotations

import numpy as np
import pytest
import torch

from lmm_utils.lm.model import LanguageModel
from lmm_utils.methods.lm_features import AudioLMFeatures
from lmm_utils.models.transformer import Transformer, TransformerConfig
from lmm_utils.tokens import SPECIALS
from lmm_utils.tokens.audio import AudioTokenizer


def audio_lm(features: str) -> tuple[AudioLMFeatures, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    mels = [rng.normal(size=(32, 40)).astype(np.float32) for _ in range(4)]
    tok = AudioTokenizer(n_mels=32, frames_per_token=2, codebook_size=8, kmeans_iters=3, features=features)
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
