"""Recording conditions: the timbre variety of the training pools (generator offsets, velocity curve, EQ curve,
compression), T's draws left as they were, and T_noisy's reverberant, noisy re-recording of T."""
import copy
from dataclasses import replace

import numpy as np
import pytest

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.params import ParamsError, check_perform, load_params
from lmm_utils.data.excerpts import stable_seed
from lmm_utils.data.render import (
    FluidRenderer,
    RecordingConditions,
    compress,
    curved_velocity,
    eq_gains_db,
)
from lmm_utils.data.stages import noisy_conditions, recording_conditions

SR = 16000
SECTION = load_params()["perform"]
PERF = Performance([PerformedNote(p, 0.1 + 0.25 * k, 0.9 + 0.25 * k, 90) for k, p in enumerate((48, 60, 64, 67))])


def _draw(section: dict, pool: str, eid: str = "x-b000") -> RecordingConditions:
    return recording_conditions(section, pool, eid, np.random.default_rng(stable_seed(section["seed"], eid)))


def test_variety_reaches_the_training_pools_only_and_leaves_the_base_draws_alone():
    off = copy.deepcopy(SECTION)
    off["conditions"]["timbre_variety"]["active"] = False
    assert _draw(SECTION, "T") == _draw(off, "T") == _draw(off, "U_A")  # T: the conditions it always had
    varied = _draw(SECTION, "U_A")
    assert varied == _draw(SECTION, "U_A")  # seeded per excerpt
    assert varied != _draw(SECTION, "U_A", "y-b000")
    v = SECTION["conditions"]["timbre_variety"]
    base = _draw(off, "U_A")
    # the base draws (piano, level, tilt, noise) stay; the variety's own ranges are respected
    assert (varied.soundfont, varied.preset, varied.gain_db, varied.eq_tilt_db, varied.noise_snr_db) == \
        (base.soundfont, base.preset, base.gain_db, base.eq_tilt_db, base.noise_snr_db)
    for key in ("filter_fc_cents", "attack_tc", "detune_cents", "velocity_gamma", "reverb_room"):
        assert v[key][0] <= getattr(varied, key) <= v[key][1], key
    assert len(varied.eq_bands_db) == v["eq_bands"]


def test_variety_may_not_name_T():
    bad = copy.deepcopy(SECTION)
    bad["conditions"]["timbre_variety"]["pools"] = ["U_A", "T"]
    with pytest.raises(ParamsError, match="must not list T"):
        check_perform(bad)


def test_velocity_curve_eq_curve_and_compressor():
    assert curved_velocity(64, 1.0) == 64 and curved_velocity(64, 1.4) < 64 < curved_velocity(64, 0.7)
    assert curved_velocity(127, 1.4) == 127 and curved_velocity(1, 2.0) == 1  # never a note-off (velocity 0)
    freqs = np.array([50.0, 1000.0, 8000.0])
    tilt = eq_gains_db(freqs, RecordingConditions("x", eq_tilt_db=6.0), SR)
    assert tilt[1] == pytest.approx(0.0) and tilt[2] > 0 > tilt[0]
    curve = eq_gains_db(np.array([50.0, 8000.0]), RecordingConditions("x", eq_bands_db=(3.0, -2.0, 5.0)), SR)
    assert curve == pytest.approx([3.0, 5.0])  # the curve passes through its end points
    t = np.arange(SR) / SR
    loud_then_quiet = np.where(t < 0.5, 0.5, 0.05) * np.sin(2 * np.pi * 440 * t)
    assert np.array_equal(compress(loud_then_quiet, 1.0, 0.0, SR), loud_then_quiet)
    squeezed = compress(loud_then_quiet.astype(np.float32), 3.0, 0.0, SR)
    ratio_loud = np.abs(squeezed[2000:7000]).max() / 0.5
    ratio_quiet = np.abs(squeezed[12000:15000]).max() / 0.05
    assert ratio_loud < 0.8 and ratio_quiet > 0.95  # above the threshold it acts, below it leaves the sound alone


def _centroid(x: np.ndarray) -> float:
    s = np.abs(np.fft.rfft(x))
    return float((s * np.fft.rfftfreq(len(x), 1 / SR)).sum() / s.sum())


def test_generator_offsets_change_the_piano():
    renderer = FluidRenderer(SR)
    base = RecordingConditions("TimGM6mb.sf2")
    ref = renderer.render(PERF, base)
    darker = renderer.render(PERF, replace(base, filter_fc_cents=-2400.0))
    assert _centroid(darker) < 0.8 * _centroid(ref)
    softer = renderer.render(PERF, replace(base, velocity_gamma=1.4))
    assert np.std(softer) < np.std(ref)
    one = Performance([PerformedNote(69, 0.0, 1.0, 100)])
    spec = [np.abs(np.fft.rfft(renderer.render(one, replace(base, detune_cents=c))[:SR])) for c in (0.0, 50.0)]
    f0 = [np.argmax(s[300:600]) + 300 for s in spec]  # 1 Hz bins: A4 near 440 Hz
    assert 8 <= f0[1] - f0[0] <= 18  # +50 cents: 440 -> 453 Hz
    chorus = renderer.render(PERF, replace(base, chorus_level=2.0))
    assert not np.allclose(chorus, ref, atol=1e-3)


def test_t_noisy_is_t_again_in_a_big_noisy_room():
    t_cond = _draw(SECTION, "T")
    noisy = SECTION["noisy"]
    cond = noisy_conditions(noisy, t_cond, np.random.default_rng(0))
    assert (cond.soundfont, cond.preset, cond.gain_db, cond.eq_tilt_db) == \
        (t_cond.soundfont, t_cond.preset, t_cond.gain_db, t_cond.eq_tilt_db)
    assert noisy["noise_snr_db"][0] <= cond.noise_snr_db <= noisy["noise_snr_db"][1]
    assert cond.reverb_room >= noisy["reverb_room"][0] and cond.reverb_level >= noisy["reverb_level"][0]
    renderer = FluidRenderer(SR)
    clean = renderer.render(PERF, replace(cond, noise_snr_db=None))
    recorded = renderer.render(PERF, cond)
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((recorded - clean).astype(np.float64) ** 2))
    assert snr == pytest.approx(cond.noise_snr_db, abs=0.1)
