"""The LM machinery on tiny debug configs: training, determinism, scoring, baselines, save/load."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.lm.model import LanguageModel, NGramBaseline, TokenStream, evaluate_lm, train_lm
from lmm_utils.models.transformer import Transformer, TransformerConfig, autocast
from lmm_utils.tokens import BOS, EOS
from lmm_utils.tokens.motion import MotionTokenizer
from lmm_utils.training.loop import TrainConfig, lr_at

torch.set_num_threads(1)

TINY_MODEL = dict(block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)


def tiny_train(**kw) -> TrainConfig:
    base = dict(steps=120, batch_size=8, lr=3e-3, min_lr=3e-4, warmup=10, eval_every=40, eval_batches=2,
                log_every=10, seed=0, device="cpu", precision="fp32")
    return TrainConfig(**{**base, **kw})


def scales(n: int) -> list[list[int]]:
    """Tiny corpus: ascending scales as performances -- very predictable token sequences."""
    tok = MotionTokenizer()
    seqs = []
    for i in range(n):
        start = 48 + (i % 5)
        notes = [PerformedNote(start + 2 * k, 0.25 * k, 0.25 * k + 0.2, 64) for k in range(8)]
        seqs.append(tok.encode(Performance(notes)))
    return seqs


@pytest.fixture(scope="module")
def trained() -> LanguageModel:
    return train_lm(scales(10), MotionTokenizer(), TINY_MODEL, tiny_train(steps=300, lr=1e-2, precision="auto"),
                    val_sequences=scales(3), progress=False)


def test_loss_decreases(trained):
    h = trained.info["history"]
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h["val_loss"][-1] < h["val_loss"][0]
    assert h["tokens_per_s"] > 0


def test_deterministic_with_seed():
    a = train_lm(scales(4), MotionTokenizer(), TINY_MODEL, tiny_train(steps=20), progress=False)
    b = train_lm(scales(4), MotionTokenizer(), TINY_MODEL, tiny_train(steps=20), progress=False)
    c = train_lm(scales(4), MotionTokenizer(), TINY_MODEL, tiny_train(steps=20, seed=1), progress=False)
    assert a.info["history"]["train_loss"] == b.info["history"]["train_loss"]
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    assert a.info["history"]["train_loss"] != c.info["history"]["train_loss"]


def test_lm_beats_baselines_on_predictable_data(trained):
    res = evaluate_lm(trained, scales(10), scales(5), progress=False)
    assert 0 <= res["lm"] < res["unigram"] <= res["uniform"]
    assert res["bigram"] < res["unigram"]
    assert res["lm"] < res["bigram"]  # scales are nearly deterministic given a longer context


def test_ngram_baselines_sane():
    rng = np.random.default_rng(0)
    v = 20
    uniform = [[BOS] + rng.integers(3, v, size=500).tolist() + [EOS] for _ in range(20)]
    base = NGramBaseline(v).fit(uniform)
    res = base.bits_per_token(uniform[:5])
    assert abs(res["unigram"] - math.log2(v - 3)) < 0.1  # 17 equiprobable symbols (eos rare)
    assert res["bigram"] > res["unigram"] - 0.2  # no structure to find
    cyclic = [[BOS] + [3 + (i % 7) for i in range(300)] + [EOS] for _ in range(5)]
    res = NGramBaseline(v).fit(cyclic).bits_per_token(cyclic)
    assert res["bigram"] < 0.2 < res["unigram"]
    table = NGramBaseline(v).fit(cyclic).bigram_table()
    assert np.allclose(table.sum(1), 1.0)  # a proper distribution for every context, seen or not


def test_sliding_window_log_probs_match_brute_force():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=50, **TINY_MODEL)
    lm = LanguageModel(Transformer(cfg).eval(), MotionTokenizer(), precision="fp32")
    seq = [BOS] + torch.randint(3, 50, (90,)).tolist()
    lp = lm.log_probs(seq, stride=1)
    assert lp.shape == (90,)
    with torch.no_grad():
        for t in (1, 20, 32, 33, 60, 90):
            ctx = torch.tensor(seq[max(0, t - cfg.block_size) : t + 1])[None]
            ref = lm.model.token_log_probs(ctx)[0, -1].item()
            assert lp[t - 1] == pytest.approx(ref, abs=1e-4)
    short = seq[:20]
    assert np.allclose(lm.log_probs(short), lm.log_probs(seq)[:19], atol=1e-5)
    assert np.isfinite(lm.log_probs(seq, stride=8)).all()


def test_hidden_features_and_soft_tokens():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=50, **TINY_MODEL)
    lm = LanguageModel(Transformer(cfg).eval(), MotionTokenizer(), precision="fp32")
    seq = [BOS] + torch.randint(3, 50, (79,)).tolist()
    h = lm.hidden(seq)
    assert h.shape == (80, cfg.n_embd)
    assert torch.allclose(h[:32], lm.hidden(seq[:32]), atol=1e-5)  # first block: full context
    with torch.no_grad():  # a later position: the window ends there and starts stride-aligned
        ref = lm.model.hidden(torch.tensor(seq[48:80])[None])[0, -1]
    assert torch.allclose(h[79], ref, atol=1e-5)
    layers = lm.hidden(seq, all_layers=True)
    assert len(layers) == cfg.n_layer + 1 and all(x.shape == (80, cfg.n_embd) for x in layers)
    ids = torch.tensor(seq[:20])[None]
    one_hot = torch.nn.functional.one_hot(ids, cfg.vocab_size).float()  # soft tokens: same result
    with torch.no_grad():
        assert torch.allclose(lm.model(one_hot)[0], lm.model(ids)[0], atol=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    trained.save(tmp_path / "lm")
    back = LanguageModel.load(tmp_path / "lm")
    seq = scales(1)[0]
    assert np.allclose(back.log_probs(seq), trained.log_probs(seq), atol=1e-6)
    assert back.tokenizer.config() == trained.tokenizer.config()
    assert back.info["modality"] == "M" and (tmp_path / "lm" / "info.json").is_file()
    assert torch.allclose(back.hidden(seq), trained.hidden(seq), atol=1e-6)
    assert len(back.hidden(seq, all_layers=True)) == TINY_MODEL["n_layer"] + 1


def test_sample_and_decode(trained):
    samples = trained.sample(3, max_new_tokens=40, seed=0)
    assert samples == trained.sample(3, max_new_tokens=40, seed=0)
    for s in samples:
        assert s[0] == BOS and EOS not in s[1:-1]
        perf = trained.decode(s)
        assert isinstance(perf, Performance)


def test_token_stream_masks_sequence_starts():
    stream = TokenStream([[BOS, 5, 6, EOS], [BOS, 7, EOS]], block_size=4)
    x, y = stream.batch(16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 4)
    assert not (y == BOS).any() and (y[x == EOS] == -1).all()


def test_lr_schedule_and_autocast():
    cfg = tiny_train(steps=100, warmup=10, lr=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    with autocast("cpu", "fp32"):
        assert torch.get_autocast_dtype("cpu") is not None  # no error; fp32 is a no-op context
    with pytest.raises(ValueError):
        autocast("cpu", "fp8")


def test_pretrain_headline_is_bits_per_token_on_T(tmp_path):
    from lmm_utils.core.io import read_json
    from lmm_utils.lm import report

    metrics = {"modality": "A", "test": {"lm_bits_per_token": 1.8705, "bigram_bits_per_token": 2.1}, "train": {}}
    assert report.headline(metrics) == {"A_bits": 1.8705}
    report.write_headline_metrics(metrics, tmp_path)
    assert read_json(tmp_path / "reports/headline/lm_A.json") == {"A_bits": 1.8705}
