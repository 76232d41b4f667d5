"""basis.py: the ridge g recovers a known linear rule of deviations from the plain performance, plays plainly
unfitted, and survives a checkpoint."""
import factories
import numpy as np
import pytest

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.methods.basis import BasisConfig, choose_alpha, fit_basis, make_basis_g, ridge
from lmm_utils.methods.checkpoints import load_g, save_g
from lmm_utils.models.performer import PerformerConfig, plain_performance

PCFG = PerformerConfig.tiny()


def _scores(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def walk(rng, p, centre):
        return int(np.clip(p + int(rng.choice([-3, -2, -1, 1, 2, 3])), centre - 7, centre + 7))

    return [factories.excerpt(factories.voices(rng, 2, 16.0, [0.5, 1.0, 1.0, 2.0], walk), id=f"b{i}", n_bars=4)
            for i in range(n)]


def _rule(score, noise: float, rng) -> Performance:
    """The score played by a known linear rule: velocity +6 per octave above middle C and +10 on downbeats, every
    note held 70 % of the plain length, 10 % slower than the mark throughout; plus velocity noise."""
    plain = plain_performance(score, PCFG.plain)
    lead = PCFG.plain.lead_in
    notes = []
    for n, x in zip(plain.notes, score.notes):
        downbeat = abs(x.onset % score.bar_beats) < 1e-3
        v = n.velocity + 6.0 * (x.pitch - 60) / 12.0 + 10.0 * downbeat + rng.normal(0.0, noise)
        on = lead + 1.1 * (n.onset - lead)
        notes.append(PerformedNote(n.pitch, on, on + 0.7 * 1.1 * (x.duration * 60.0 / score.tempo_bpm),
                                   int(np.clip(round(v), 1, 127))))
    return Performance(notes=notes)


def _velocity_r(a: Performance, b: Performance) -> float:
    return float(np.corrcoef([n.velocity for n in a.notes], [n.velocity for n in b.notes])[0, 1])


def test_unfitted_basis_g_plays_the_plain_performance():
    s = _scores(1)[0]
    (perf,) = make_basis_g(PCFG, "basic").perform([s])
    plain = plain_performance(s, PCFG.plain)
    assert [n.velocity for n in perf.notes] == [n.velocity for n in plain.notes]
    assert np.allclose([n.onset for n in perf.notes], [n.onset for n in plain.notes], atol=1e-5)


def test_ridge_recovers_a_known_linear_rule_on_held_out_scores(tmp_path):
    rng = np.random.default_rng(1)
    train, test = _scores(12, seed=2), _scores(4, seed=3)
    g = make_basis_g(PCFG, "basic")
    alphas = fit_basis(g, train, [_rule(s, 3.0, rng) for s in train], BasisConfig())
    assert set(alphas) == {"tempo", "duration", "velocity"}
    truth = [_rule(s, 0.0, rng) for s in test]
    played = g.perform(test)
    for t, p in zip(truth, played):
        assert _velocity_r(t, p) > 0.9  # the plain performer's velocity r here is 0: one mark, one velocity
        assert np.mean([abs(a.velocity - b.velocity) for a, b in zip(t.notes, p.notes)]) < 3.0
        span = lambda perf: max(n.onset for n in perf.notes) - min(n.onset for n in perf.notes)  # noqa: E731
        assert span(p) / span(t) == pytest.approx(1.0, abs=0.03)  # the 10 % slower tempo, learned
        durs = np.array([n.offset - n.onset for n in p.notes]) / np.array([n.offset - n.onset for n in t.notes])
        assert np.median(durs) == pytest.approx(1.0, abs=0.1)
    # a checkpoint plays the same
    save_g(g, tmp_path / "g.pt")
    again = load_g(tmp_path / "g.pt").perform(test)
    assert [n.velocity for n in again[0].notes] == [n.velocity for n in played[0].notes]


def test_ridge_and_alpha_choice_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 3.0
    w, b = ridge(x, y, 1e-9)
    assert np.allclose(w, [1.0, -2.0, 0.5], atol=1e-6) and b == pytest.approx(3.0)
    noise = rng.normal(size=200)  # a target that is pure noise: held-out error prefers the strongest ridge
    cfg = BasisConfig(alphas=(1e-3, 1e4))
    assert choose_alpha(x, noise, np.arange(200) % 10, cfg) == 1e4
    assert choose_alpha(x, y, np.arange(200) % 10, cfg) == 1e-3
    assert choose_alpha(x, y, np.zeros(200), cfg) == cfg.default_alpha  # one pair: nothing to cross-validate
    with pytest.raises(ValueError, match="basis features"):
        make_basis_g(PCFG, "pitch")
    with pytest.raises(ValueError, match="need LM"):
        make_basis_g(PCFG, "both")
    assert make_basis_g(PCFG, "notes").net.n_in == 38  # the ablation without the position basis functions
