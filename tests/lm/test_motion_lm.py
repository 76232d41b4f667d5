"""LM^M mapped from LM^V: the generic performer, the held-out split, the trunk copy, the config's errors."""
from __future__ import annotations

import subprocess
import sys

import factories
import numpy as np
import pytest

from lmm_utils.core.params import ParamsError
from lmm_utils.lm.model import train_lm
from lmm_utils.lm.motion_lm import (
    GenericPerformerConfig,
    MotionLMConfig,
    copy_trunk,
    generic_motion,
    generic_performance,
    motion_lm_data,
    split_by_score,
    train_motion_lm,
)
from lmm_utils.models.performer import plain_performance
from lmm_utils.tokens.motion import MotionTokenizer

TINY_MODEL = {"block_size": 32, "n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.0}
TINY_TRAIN = {"steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 1, "eval_every": 100, "precision": "fp32",
              "device": "cpu", "threads": 1}


def _score(seed: int, voices: int = 2):
    notes = factories.voices(np.random.default_rng(seed), voices, 8.0, [0.5, 1.0, 2.0],
                             lambda rng, p, centre: int(centre + rng.integers(-5, 6)))
    return factories.excerpt(notes, id=f"s{seed}", piece_id=f"p{seed}", n_bars=2, bpm=96.0,
                             dynamics=[(0.0, "p"), (4.0, "f")])


def test_generic_performance_plays_every_score_note_in_order():
    s = _score(0)
    perf = generic_performance(s, np.random.default_rng(0))
    assert [n.pitch for n in perf.notes] == [n.pitch for n in s.notes]
    assert all(1 <= n.velocity <= 127 and n.offset > n.onset >= 0 for n in perf.notes)
    # Time follows the score: a later notated onset is never played more than the chord spread + jitter earlier.
    order = np.argsort([n.onset for n in s.notes], kind="stable")
    played = np.array([perf.notes[i].onset for i in order])
    assert np.all(np.diff(played) > -0.1)


def test_generic_performance_varies_and_is_seeded():
    s = _score(1)
    a = generic_performance(s, np.random.default_rng(3))
    b = generic_performance(s, np.random.default_rng(3))
    c = generic_performance(s, np.random.default_rng(4))
    assert a == b
    assert a != c
    plain = plain_performance(s)
    assert [n.velocity for n in a.notes] != [n.velocity for n in plain.notes]


def test_no_augmentation_is_the_plain_performance_up_to_rounding():
    cfg = GenericPerformerConfig(tempo_jitter=0.0, tempo_drift=0.0, chord_spread_ms=0.0, onset_jitter_ms=0.0,
                                 articulation=(1.0, 1.0), articulation_spread=0.0, velocity_shift=0.0,
                                 velocity_noise=0.0, accent=0.0, pedal_prob=0.0)
    s = _score(2)
    gen, plain = generic_performance(s, np.random.default_rng(0), cfg), plain_performance(s)
    assert [n.velocity for n in gen.notes] == [n.velocity for n in plain.notes]
    assert np.allclose([n.onset for n in gen.notes], [n.onset for n in plain.notes], atol=1e-9)
    assert np.allclose([n.offset for n in gen.notes], [n.offset for n in plain.notes], atol=1e-9)


def test_pedal_alternates_and_ends_up():
    s = _score(3)
    perf = generic_performance(s, np.random.default_rng(0), GenericPerformerConfig(pedal_prob=1.0))
    downs = [p.down for p in sorted(perf.pedal, key=lambda p: p.time)]
    assert downs[0] and not downs[-1]
    assert all(a != b for a, b in zip(downs, downs[1:]))


def test_validation_holds_out_whole_scores():
    scores = [_score(i) for i in range(10)]
    perfs = generic_motion(scores, renditions=3, seed=0)
    assert len(perfs) == 30
    train, val = split_by_score(perfs, 3, 0.2, seed=0)
    assert len(val) == 6 and len(train) == 24
    val_first = {tuple(n.pitch for n in p.notes) for p in val}
    train_first = {tuple(n.pitch for n in p.notes) for p in train}
    assert not val_first & train_first


def test_trunk_copy_takes_lmV_blocks_and_refuses_a_mismatch():
    from lmm_utils.models.transformer import Transformer, TransformerConfig
    src = Transformer(TransformerConfig(vocab_size=50, **TINY_MODEL))
    dst = Transformer(TransformerConfig(vocab_size=80, **TINY_MODEL))
    copied = copy_trunk(dst, src)
    assert any(n.startswith("blocks.") for n in copied) and "wte.weight" not in copied
    assert (dst.blocks[0].mlp.fc.weight == src.blocks[0].mlp.fc.weight).all()
    wide = Transformer(TransformerConfig(vocab_size=80, **{**TINY_MODEL, "n_embd": 32}))
    with pytest.raises(ValueError, match="init lmV"):
        copy_trunk(wide, src)


def test_train_motion_lm_from_lmV_trunk():
    scores = [_score(i) for i in range(6)]
    cfg = MotionLMConfig(renditions=2, init="lmV", tokens={"time_step": 0.02, "max_shift": 50, "velocity_bins": 16},
                         train=TINY_TRAIN)
    data = motion_lm_data(scores, cfg)
    assert data.stats["n_scores"] == 6 and data.val and not data.test
    lmV = train_lm(data.train, MotionTokenizer(), TINY_MODEL, TINY_TRAIN, progress=False)  # any small LM stands in
    lmM = train_motion_lm(data, cfg, lmV, default_model={}, progress=False)
    assert lmM.model.cfg.n_embd == TINY_MODEL["n_embd"] and lmM.info["init"] == "lmV"
    with pytest.raises(ValueError, match="needs LM"):
        train_motion_lm(data, cfg, None, default_model={}, progress=False)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="init"):
        MotionLMConfig.from_params({"init": "lmA"})
    with pytest.raises(ParamsError, match="renditons"):
        MotionLMConfig.from_params({"renditons": 2})


def test_the_generic_performer_never_imports_the_benchmark_pianist():
    code = ("import sys, lmm_utils.lm.generic_performer, lmm_utils.lm.motion_lm; "
            "print('PIANIST_LOADED', 'lmm_utils.data.pianist' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Other libraries may print on import (pyfluidsynth reports where it found its library), so read our own line.
    verdicts = [line for line in out.stdout.splitlines() if line.startswith("PIANIST_LOADED")]
    assert verdicts == ["PIANIST_LOADED False"], out.stdout
