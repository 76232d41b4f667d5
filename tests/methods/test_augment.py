"""methods.augment: h's crops re-recorded in the log-mel power domain."""
import math

import numpy as np
import pytest
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.params import ParamsError
from lmm_utils.methods.augment import (
    AugmentConfig,
    Augmenter,
    apply_reverb,
    augment_config,
    augment_logmel,
    crop_augmenter,
    random_eq,
    reverb_tail,
)
from lmm_utils.methods.steps import Crops
from lmm_utils.methods.supervised import CropSampler

FEAT = FeatureConfig()


def _crops(n=4, t=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    power = torch.rand(n, FEAT.n_mels, t, generator=g) * 1e-2
    return torch.log(power + FEAT.log_floor)


def test_off_returns_the_crops_and_draws_nothing():
    x, g = _crops(), torch.Generator().manual_seed(3)
    state = g.get_state()
    assert augment_logmel(x, AugmentConfig(p=0.0), FEAT, g) is x
    assert torch.equal(g.get_state(), state)


def test_on_is_seeded_and_keeps_shape_and_dtype():
    x = _crops()
    cfg = AugmentConfig(p=1.0)
    a = augment_logmel(x, cfg, FEAT, torch.Generator().manual_seed(1))
    b = augment_logmel(x, cfg, FEAT, torch.Generator().manual_seed(1))
    c = augment_logmel(x, cfg, FEAT, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)


def test_noise_only_adds_power_at_the_drawn_snr():
    x = _crops(n=8)
    cfg = AugmentConfig(p=1.0, eq_db=0.0, reverb_p=0.0, noise_p=1.0, snr_db=(10.0, 10.0))
    y = augment_logmel(x, cfg, FEAT, torch.Generator().manual_seed(0))
    clean = torch.exp(x) - FEAT.log_floor
    added = torch.exp(y) - torch.exp(x)
    assert (added >= -1e-9).all()
    ratio = added.mean((1, 2)) / clean.mean((1, 2))
    np.testing.assert_allclose(ratio.numpy(), 0.1, rtol=1e-2)  # float32 through exp and log


def test_eq_stays_within_its_range():
    g = torch.Generator().manual_seed(0)
    eq_db = 10 * torch.log10(random_eq(64, FEAT.n_mels, AugmentConfig(eq_db=6.0), g))
    assert eq_db.abs().max() <= 6.0 + 1e-4
    assert eq_db.abs().amax(1).max() > 3.0  # and uses it


def test_reverb_tail_is_causal_decays_and_has_the_wet_energy():
    t, fps = 100, FEAT.fps
    cfg = AugmentConfig(rt60_s=(0.5, 0.5), rt60_high_ratio=(1.0, 1.0), wet_db=(0.0, 0.0))
    decay, gain = reverb_tail(1, 4, fps, cfg, torch.Generator().manual_seed(0))
    power = torch.zeros(1, 4, t)
    power[:, :, 10] = 1.0
    out = apply_reverb(power, decay, gain)
    assert torch.equal(out[:, :, :11], power[:, :, :11])  # nothing before the sound, nor in its own frame
    tail = out[0, 0, 11:]
    assert (tail[:-1] > tail[1:]).all()  # falls
    # -60 dB after RT60 = 0.5 s = 25 frames
    np.testing.assert_allclose(10 * math.log10(tail[25].item() / tail[0].item()), -60.0, atol=0.5)
    # wet 0 dB: the tail carries the direct sound's energy (less what falls past the crop, < 0.1 % here)
    assert 0.99 < tail.sum().item() <= 1.0 + 1e-5


def test_reverb_recursion_is_the_convolution_with_the_decaying_kernel():
    g = torch.Generator().manual_seed(3)
    power = torch.rand(2, 3, 40, generator=g)
    decay, gain = reverb_tail(2, 3, FEAT.fps, AugmentConfig(), g)
    k = torch.arange(1, 40, dtype=torch.float64)
    want = power.double().clone()
    for t in range(40):
        for lag in range(1, t + 1):
            want[..., t] += gain.double() * decay.double() ** k[lag - 1] * power.double()[..., t - lag]
    torch.testing.assert_close(apply_reverb(power, decay, gain).double(), want, rtol=1e-5, atol=1e-7)


def test_noise_level_follows_the_recording_not_the_crop():
    """A quiet crop of a loud recording gets the recording's noise, so relatively more of it."""
    x = _crops(n=2)
    cfg = AugmentConfig(p=1.0, eq_db=0.0, reverb_p=0.0, noise_p=1.0, snr_db=(10.0, 10.0))
    clean = torch.exp(x) - FEAT.log_floor
    reference = clean.mean((1, 2)) * torch.tensor([1.0, 10.0])  # the second crop: a tenth of its recording's mean
    y = augment_logmel(x, cfg, FEAT, torch.Generator().manual_seed(0), reference)
    added = (torch.exp(y) - torch.exp(x)).mean((1, 2))
    np.testing.assert_allclose((added / reference).numpy(), 0.1, rtol=1e-2)


def test_ranges_and_keys_are_checked():
    with pytest.raises(ValueError, match="snr_db"):
        AugmentConfig(snr_db=(20.0, 10.0))
    with pytest.raises(ValueError, match="p must be"):
        AugmentConfig(p=1.5)
    with pytest.raises(ParamsError, match="augment"):
        augment_config({"augment": {"pp": 0.5}})
    assert augment_config({"augment": {"p": 0.5}}).p == 0.5
    assert augment_config({"augment": {"p": 0.5}}, lm_rows=True).p == 0.0  # LM rows would describe the clean crop


def test_crop_sampler_augments_inputs_not_targets():
    rng = np.random.default_rng(0)
    logmel = np.log(rng.random((FEAT.n_mels, 120)).astype(np.float32) * 1e-2 + FEAT.log_floor)
    perf = Performance([PerformedNote(pitch=60, onset=0.2, offset=1.0, velocity=80)])
    plain = CropSampler([logmel], [perf], 4, 32, FEAT)
    aug = CropSampler([logmel], [perf], 4, 32, FEAT, Augmenter(AugmentConfig(p=1.0), FEAT, seed=0))
    a = plain("train", torch.Generator().manual_seed(0))
    b = aug("train", torch.Generator().manual_seed(0))
    assert not torch.equal(a[0], b[0])
    for ya, yb in zip(a[1:], b[1:]):
        assert torch.equal(ya, yb)


def test_crops_re_record_labelled_crops_only():
    rng = np.random.default_rng(1)
    logmel = np.log(rng.random((FEAT.n_mels, 90)).astype(np.float32) * 1e-2 + FEAT.log_floor)
    perf = Performance([PerformedNote(pitch=64, onset=0.1, offset=0.8, velocity=70)])
    augmenter = crop_augmenter(AugmentConfig(p=1.0), FEAT, seed=0)
    plain = Crops([logmel], [perf], 32, FEAT.fps, FEAT.n_mels).sample(3, torch.Generator().manual_seed(0))
    aug = Crops([logmel], [perf], 32, FEAT.fps, FEAT.n_mels, augmenter=augmenter).sample(3, torch.Generator().manual_seed(0))
    assert not torch.equal(plain[0], aug[0]) and torch.equal(plain[1], aug[1]) and torch.equal(plain[2], aug[2])
    assert crop_augmenter(AugmentConfig(p=0.0), FEAT, seed=0) is None
    with pytest.raises(AssertionError, match="labelled"):
        Crops([logmel], None, 32, FEAT.fps, FEAT.n_mels, augmenter=augmenter)


def test_crops_not_chosen_stay_bit_identical():
    x = _crops(n=16)
    y = augment_logmel(x, AugmentConfig(p=0.5), FEAT, torch.Generator().manual_seed(4))
    same = (y == x).flatten(1).all(1)
    assert 0 < int(same.sum()) < 16  # some chosen, some not, and the rest untouched to the bit


@pytest.mark.parametrize("sampler", ["CropSampler", "Crops"])
@pytest.mark.parametrize("p", [0.5, 1.0])
def test_samplers_draw_the_same_crops_with_or_without_augmentation(sampler, p):
    """The run's generator ends where the plain sampler leaves it, on or off (the Augmenter draws from its own), so
    the same crops and labels are drawn: p = 0 is byte-identical to no augmentation, p > 0 differs by the sound."""
    rng = np.random.default_rng(2)
    logmel = np.log(rng.random((FEAT.n_mels, 90)).astype(np.float32) * 1e-2 + FEAT.log_floor)
    perf = Performance([PerformedNote(pitch=62, onset=0.1, offset=0.6, velocity=90)])
    states, outs = [], []
    for augmenter in (None, crop_augmenter(AugmentConfig(p=p), FEAT, seed=0)):
        g = torch.Generator().manual_seed(5)
        if sampler == "CropSampler":
            outs.append(CropSampler([logmel], [perf], 3, 32, FEAT, augmenter)("train", g))
        else:
            outs.append(Crops([logmel], [perf], 32, FEAT.fps, FEAT.n_mels, augmenter=augmenter).sample(3, g))
        states.append(g.get_state())
    assert torch.equal(states[0], states[1])
    assert not torch.equal(outs[0][0], outs[1][0])  # the sound differs (p = 0 builds no Augmenter at all)
    for a, b in zip(outs[0][1:], outs[1][1:]):
        assert torch.equal(a, b)


def test_augmenter_sets_the_noise_level_against_the_crop_or_the_recording():
    x = _crops(n=2)
    base = dict(p=1.0, eq_db=0.0, reverb_p=0.0, noise_p=1.0, snr_db=(10.0, 10.0))
    clean = torch.exp(x) - FEAT.log_floor
    loud = clean.mean((1, 2)) * 10.0  # recordings ten times louder than these crops
    for level, want in (("crop", clean.mean((1, 2))), ("recording", loud)):
        y = Augmenter(AugmentConfig(**base, noise_level=level), FEAT, seed=0)(x, loud)
        added = (torch.exp(y) - torch.exp(x)).mean((1, 2))
        np.testing.assert_allclose((added / want).numpy(), 0.1, rtol=1e-2)
    with pytest.raises(ValueError, match="noise_level"):
        AugmentConfig(noise_level="room")


def test_augmenter_is_seeded_by_the_run():
    x = _crops()
    ref = torch.ones(len(x)) * 1e-3
    a = Augmenter(AugmentConfig(p=1.0), FEAT, seed=0)(x, ref)
    b = Augmenter(AugmentConfig(p=1.0), FEAT, seed=0)(x, ref)
    c = Augmenter(AugmentConfig(p=1.0), FEAT, seed=1)(x, ref)
    assert torch.equal(a, b) and not torch.equal(a, c)
