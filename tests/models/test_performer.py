"""models/performer.py: the plain performer's arithmetic, g's zero-deviation start, soft rolls, and
that g learns from per-note targets."""
import factories
import numpy as np
import pytest
import torch

from lmm_utils.core.motion import Performance, PerformedNote, to_roll
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.models.performer import (
    PLAIN_DYNAMIC_VELOCITY,
    Performer,
    PerformerConfig,
    PlainConfig,
    encode_scores,
    note_targets,
    performer_loss,
    plain_performance,
    soft_roll,
)


def _score(seed: int, voices: int = 1, bpm: float = 96.0) -> ScoreExcerpt:
    notes = factories.voices(np.random.default_rng(seed), voices, 8.0, [0.5, 1.0, 2.0],
                             lambda rng, p, centre: int(centre + rng.integers(-5, 6)))
    return factories.excerpt(notes, id=f"s{seed}", piece_id=f"p{seed}", n_bars=2, bpm=bpm,
                             dynamics=[(0.0, "p"), (4.0, "f")])


def test_plain_performance_follows_the_marks():
    s = _score(0, voices=2, bpm=120.0)
    perf = plain_performance(s, PlainConfig(lead_in=0.25))
    assert len(perf.notes) == len(s.notes)
    for sn, pn in zip(s.notes, perf.notes):
        assert pn.pitch == sn.pitch
        assert pn.onset == pytest.approx(0.25 + sn.onset * 0.5)
        assert pn.velocity == PLAIN_DYNAMIC_VELOCITY["p" if sn.onset < 4.0 else "f"]
        assert pn.offset <= 0.25 + (sn.onset + sn.duration) * 0.5 + 1e-9
    # A key comes up before it is struck again.
    by_pitch: dict[int, list[PerformedNote]] = {}
    for n in perf.notes:
        by_pitch.setdefault(n.pitch, []).append(n)
    for ns in by_pitch.values():
        ns.sort(key=lambda n: n.onset)
        assert all(a.offset < b.onset or a.onset == b.onset for a, b in zip(ns, ns[1:]))


def test_untrained_performer_plays_plainly_and_padding_is_harmless():
    torch.manual_seed(0)
    scores = [_score(1, voices=1), _score(2, voices=4)]
    g = Performer(PerformerConfig.tiny())
    both = g.perform(scores)
    alone = g.perform(scores[:1])[0]
    for s, perf in zip(scores, both):
        plain = plain_performance(s, g.cfg.plain)
        assert [(n.pitch, n.velocity) for n in perf.notes] == [(n.pitch, n.velocity) for n in plain.notes]
        assert np.allclose([n.onset for n in perf.notes], [n.onset for n in plain.notes], atol=1e-5)
        assert np.allclose([n.offset for n in perf.notes], [n.offset for n in plain.notes], atol=1e-5)
    assert np.allclose([n.onset for n in alone.notes], [n.onset for n in both[0].notes], atol=1e-6)


def test_soft_roll_equals_to_roll_and_carries_gradients():
    torch.manual_seed(0)
    scores = [_score(3, voices=4), _score(4, voices=1)]
    g = Performer(PerformerConfig.tiny())
    with torch.no_grad():  # give g some deviations, so the test is not only about the plain case
        g.head.weight.normal_(0, 0.3)
    batch = encode_scores(scores)
    pred = g(batch)
    n_frames = 400
    roll = soft_roll(pred, batch, n_frames, fps=50.0)
    from lmm_utils.models.performer import to_performances
    for i, perf in enumerate(to_performances(pred, batch)):
        ref = to_roll(perf, 50.0, n_frames)
        for k, tol in (("onset", 1e-3), ("frame", 1e-3), ("velocity", 0.5 / 127 + 1e-4)):  # Performance rounds velocity
            assert np.abs(roll[k][i].detach().numpy() - ref[k]).max() < tol, k
    loss = (roll["frame"] * torch.linspace(0, 1, n_frames)).sum() + (roll["velocity"] ** 2).sum()
    loss.backward()
    assert g.head.weight.grad.abs().sum() > 0 and g.start.grad is not None


def test_performer_learns_slower_and_louder_targets():
    torch.manual_seed(0)
    scores = [_score(5, voices=1), _score(6, voices=4)]
    targets = []
    for s in scores:  # a pianist who plays 20% slower than the mark, 0.1 s late, and 15 velocity louder
        plain = plain_performance(s)
        targets.append(Performance(notes=[PerformedNote(n.pitch, 0.1 + 1.2 * n.onset, 0.1 + 1.2 * n.offset,
                                                        min(127, n.velocity + 15)) for n in plain.notes]))
    g = Performer(PerformerConfig.tiny())
    batch = encode_scores(scores)
    tgt = note_targets(targets, batch)
    opt = torch.optim.Adam(g.parameters(), lr=2e-2)
    first = None
    for _ in range(150):
        loss = performer_loss(g(batch), tgt, batch.mask)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g.eval()
    with torch.no_grad():
        pred = g(batch)
    err = (pred["onset"] - tgt["onset"]).abs()[batch.mask]
    vel_err = (pred["velocity"] - tgt["velocity"]).abs()[batch.mask] * 127
    assert loss.item() < 0.2 * first
    assert float(err.mean()) < 0.03 and float(vel_err.mean()) < 4.0


def test_note_targets_reject_a_mismatched_performance():
    s = _score(7)
    batch = encode_scores([s])
    with pytest.raises(ValueError):
        note_targets([Performance(notes=plain_performance(s).notes[:-1])], batch)
