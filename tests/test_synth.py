"""The differentiable piano S (models/synth.py) and its fitting helpers (synth_fit.py). CPU, seconds."""
import math

import numpy as np
import pytest
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.models.synth import (
    KINDS, AdditiveConfig, NeuralConfig, build_synth, linear_scan, load_synth, make_synth, save_synth,
    window_kernel,
)
from lmm_utils.core.motion import N_KEYS, to_roll
from lmm_utils.synth.fit import (
    BaselineConfig, RandomMotionConfig, SynthPairs, TemplateBaseline, fit_synth, gradient_check,
    random_performance, spectral_metrics,
)

FEAT = FeatureConfig()
FLOOR = math.log(FEAT.log_floor)


def tiny(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    cfg = AdditiveConfig.tiny() if kind == "additive" else NeuralConfig.tiny()
    return make_synth(kind, cfg, FEAT)


def random_roll(b: int = 2, t: int = 30, seed: int = 0, density: float = 0.03):
    g = torch.Generator().manual_seed(seed)
    onset = (torch.rand(b, N_KEYS, t, generator=g) < density).float()
    velocity = onset * (0.2 + 0.8 * torch.rand(b, N_KEYS, t, generator=g))
    sustain = torch.zeros(b, N_KEYS, t)
    for bi, k, ti in onset.nonzero().tolist():  # hold each struck key for a few frames
        sustain[bi, k, ti:ti + 6] = 1.0
    return onset, velocity, sustain


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    s = tiny(kind)
    o, v, h = random_roll(b=3, t=25)
    out = s(o, v, h)
    assert out.shape == (3, FEAT.n_mels, 25)
    assert torch.isfinite(out).all()
    assert s(o[0], v[0], h[0]).shape == (FEAT.n_mels, 25)  # unbatched
    assert s(o, v, h, piano=torch.tensor([0, 1, -1])).shape == (3, FEAT.n_mels, 25)


@pytest.mark.parametrize("kind", KINDS)
def test_silence_in_silence_out(kind):
    s = tiny(kind)
    z = torch.zeros(2, N_KEYS, 20)
    out = s(z, z, z)
    torch.testing.assert_close(out, torch.full_like(out, FLOOR))
    # Sustain without any onset is silence too (nothing was struck).
    assert torch.allclose(s(z, z, torch.ones_like(z)), torch.full_like(out, FLOOR))


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_every_input(kind):
    s = tiny(kind)
    o, v, h = random_roll(t=30)
    # Soft inputs, as a learner's would be: every key gets some onset mass.
    o = (0.5 * o + 0.05).requires_grad_(True)
    v = (0.5 + 0.3 * v).requires_grad_(True)
    h = (0.8 * h + 0.1).requires_grad_(True)
    s(o, v, h).mean().backward()
    for name, x in (("onset", o), ("velocity", v), ("sustain", h)):
        assert x.grad is not None and torch.isfinite(x.grad).all(), name
        assert x.grad.abs().sum() > 0, name
    # Gradient to a key that was never struck: adding a note there must change the sound.
    assert o.grad[:, 40].abs().sum() > 0
    for name, p in s.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_output(kind):
    o, v, h = random_roll(seed=3)
    a, b = tiny(kind, seed=7)(o, v, h), tiny(kind, seed=7)(o, v, h)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    cfg = RandomMotionConfig(seconds=3.0)
    p1 = random_performance(np.random.default_rng(5), cfg)
    p2 = random_performance(np.random.default_rng(5), cfg)
    assert p1.to_dict() == p2.to_dict()


@pytest.mark.parametrize("kind", KINDS)
def test_struck_row_skipping_is_exact(kind):
    """Without input gradients S computes only struck keys; the result must equal the dense path."""
    s = tiny(kind)
    o, v, h = random_roll(t=30)
    fast = s(o, v, h)
    dense = s(o.clone().requires_grad_(True), v, h)
    torch.testing.assert_close(fast, dense.detach(), rtol=1e-5, atol=1e-5)


def test_linear_scan_matches_loop_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(12, 3, 4, generator=g, dtype=torch.float64)
    x = torch.randn(12, 3, 1, generator=g, dtype=torch.float64)  # broadcast against d
    out = linear_scan(d, x)
    ref, acc = [], torch.zeros(3, 4, dtype=torch.float64)
    for t in range(12):
        acc = d[t] * acc + x[t]
        ref.append(acc)
    torch.testing.assert_close(out, torch.stack(ref))
    assert torch.autograd.gradcheck(linear_scan, (d.requires_grad_(True), x.requires_grad_(True)))


def test_window_kernel_is_a_partition_of_the_window():
    h = window_kernel(FEAT)
    assert h.shape == (9,) and abs(float(h.sum()) - 1.0) < 1e-6
    np.testing.assert_allclose(h, h[::-1], atol=1e-3)  # centred frame, centred blocks: ~symmetric


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_check_autograd_vs_finite_differences(kind):
    errs = gradient_check(tiny(kind), frames=12, n_directions=2)
    assert set(errs) == {"onset", "velocity", "sustain", "parameters"}
    assert max(errs.values()) < 1e-4, errs


def test_fit_loss_decreases_on_a_tiny_problem():
    """A student additive S fitted to a teacher's output (no FluidSynth needed) gets closer."""
    teacher = tiny("additive", seed=1)
    with torch.no_grad():
        teacher.gamma.fill_(3.0)
        teacher.slope[0] = -2.0
        teacher.log_tau[:, 0] += 0.7
    o, v, h = random_roll(b=6, t=40, seed=2, density=0.05)
    with torch.no_grad():
        y = teacher(o, v, h)
    pairs = SynthPairs(onset=o.to(torch.uint8), velocity=(v * 127).round().to(torch.uint8),
                       sustain=h.to(torch.uint8), logmel=y.half(), piano=torch.zeros(6, dtype=torch.long),
                       lengths=torch.full((6,), 40), ids=[str(i) for i in range(6)])
    student = tiny("additive", seed=0)
    hist = fit_synth(student, pairs, pairs, {"steps": 30, "batch": 4, "lr": 0.05, "log_every": 5, "warmup": 2},
                     progress=False)
    assert hist["train_loss"][-1] < 0.7 * hist["train_loss"][0], hist["train_loss"]


def test_save_load_roundtrip(tmp_path):
    section = {"kind": "neural", "pianos": [["a.sf2", 0], ["b.sf2", 1]],
               "neural": {"channels": 3, "hidden": 4, "key_dim": 2, "decay_kernel": 3, "steps": 5, "lr": 0.1}}
    torch.manual_seed(0)
    s = build_synth(section, FEAT, fit_keys=("steps", "lr"))
    assert s.kind == "neural" and s.cfg.n_pianos == 2 and s.cfg.channels == 3
    save_synth(s, tmp_path / "S.pt")
    s2 = load_synth(tmp_path / "S.pt")
    o, v, h = random_roll()
    torch.testing.assert_close(s.eval()(o, v, h), s2(o, v, h))


def test_baseline_and_metrics():
    b = TemplateBaseline(BaselineConfig(1), FEAT)
    z = torch.zeros(1, N_KEYS, 10)
    assert torch.allclose(b(z, z, z), torch.full((1, FEAT.n_mels, 10), FLOOR))
    y = torch.randn(FEAT.n_mels, 20)
    m = spectral_metrics(y, y, FEAT.log_floor)
    assert m["logmel_l1"] == 0.0 and m["spectral_convergence"] == 0.0


def test_random_performance_is_playable():
    cfg = RandomMotionConfig(seconds=5.0, pedal_prob=1.0)
    perf = random_performance(np.random.default_rng(0), cfg)
    assert perf.notes and perf.duration <= cfg.seconds
    by_key = {}
    for n in perf.notes:  # no overlapping presses of one key
        assert n.offset > n.onset and 21 <= n.pitch <= 108 and 1 <= n.velocity <= 127
        assert n.onset >= by_key.get(n.pitch, -1.0)
        by_key[n.pitch] = n.offset
    roll = to_roll(perf, FEAT.fps, n_frames=int(cfg.seconds * FEAT.fps) + 1)
    assert roll["sustain"].sum() >= roll["frame"].sum()  # the pedal only prolongs


def test_render_pair_aligns_roll_and_logmel():
    pytest.importorskip("fluidsynth")
    from lmm_utils.data.render import MissingSystemDependency, RecordingConditions
    from lmm_utils.synth.fit import render_pair

    perf = random_performance(np.random.default_rng(1), RandomMotionConfig(seconds=2.0))
    try:
        pair, audio = render_pair(perf, RecordingConditions("TimGM6mb.sf2", 0), FEAT, seconds=2.0)
    except MissingSystemDependency as exc:
        pytest.skip(str(exc))
    assert len(audio) == 2 * FEAT.sample_rate
    assert pair["onset"].shape == (N_KEYS, pair["logmel"].shape[1]) == (N_KEYS, FEAT.n_frames(len(audio)))
    assert pair["logmel"].max() > FLOOR + 5  # it made sound


@pytest.mark.parametrize("kind", KINDS)
def test_pianos_and_the_average_piano(kind):
    """piano=None and piano=-1 both select the average piano; fitted pianos can sound different."""
    s = tiny(kind)
    with torch.no_grad():
        s.eq[0] += 1.0  # piano 0 one neper louder in power than piano 1
    o, v, h = random_roll(b=2)
    avg = s(o, v, h)
    torch.testing.assert_close(avg, s(o, v, h, piano=torch.tensor([-1, -1])))
    p0, p1 = s(o, v, h, piano=torch.tensor([0, 0])), s(o, v, h, piano=1)
    loud = p1 > FLOOR + 8  # well above the floor, the EQ offsets show up exactly
    torch.testing.assert_close((p0 - p1)[loud], torch.ones_like(p0[loud]), atol=1e-3, rtol=0)
    torch.testing.assert_close((avg - p1)[loud], torch.full_like(p1[loud], 0.5), atol=1e-3, rtol=0)
