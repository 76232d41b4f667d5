"""methods.losses: g's rendering through S with a shared forward, and the block on timing gradients."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from factories import excerpt, voices

from lmm_utils.methods.alignment import TemplateSynth
from lmm_utils.methods.losses import density_loss, deviation_pull, level_curve, recon_loss, render_g, timing_blocked
from lmm_utils.methods.wrappers import make_g
from lmm_utils.models.performer import PerformerConfig


def _g_and_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = [excerpt(voices(rng, 2, 6.0, [0.5, 1.0], lambda r, p, c: int(c + r.integers(-4, 5))), id=f"s{i}")
              for i in range(3)]
    torch.manual_seed(seed)
    g = make_g(PerformerConfig(d_model=16, n_layers=1, dropout=0.0))
    with torch.no_grad():
        g.net.head.weight.normal_(0.0, 0.3)
    return g, g.encode(scores)


def test_timing_blocked_keeps_values_and_blocks_tempo_and_asynchrony_gradients():
    raw = torch.randn(2, 5, 4, requires_grad=True)
    out = timing_blocked(raw)
    assert torch.equal(out, raw)
    out.sum().backward()
    assert torch.equal(raw.grad[..., :2], torch.zeros(2, 5, 2))
    assert torch.equal(raw.grad[..., 2:], torch.ones(2, 5, 2))


def test_render_with_a_shared_forward_equals_its_own_and_the_pull_keeps_its_timing_gradient():
    g, b = _g_and_batch()
    synth = TemplateSynth()
    own = render_g(g, b, synth, 80, 50.0)
    raw = g.net.deviations(b)
    shared = render_g(g, b, synth, 80, 50.0, raw=raw)
    torch.testing.assert_close(shared, own)
    # The rendering sends no gradient into timing (channels 0, 1); the pull, reading the same raw, does.
    (grad_render,) = torch.autograd.grad(shared.mean(), raw, retain_graph=True)
    assert float(grad_render[..., :2].abs().max()) == 0.0 and float(grad_render[..., 2:].abs().max()) > 0.0
    (grad_pull,) = torch.autograd.grad(deviation_pull(g, b, 0.01, raw=raw), raw)
    assert float(grad_pull[..., :2].abs().max()) > 0.0
    torch.testing.assert_close(deviation_pull(g, b, 0.01, raw=raw), deviation_pull(g, b, 0.01))


def test_s_renders_only_the_score_keys_with_the_same_sound_and_gradient():
    from lmm_utils.models.synth import NeuralConfig, make_synth

    g, b = _g_and_batch()
    torch.manual_seed(1)
    synth = make_synth("neural", NeuralConfig.tiny())
    for p in synth.parameters():
        p.requires_grad_(False)
    out = {}
    for sparse in (False, True):
        type(synth).takes_sounding = sparse
        g.net.zero_grad()
        audio = render_g(g, b, synth, 80, 50.0)
        audio.mean().backward()
        out[sparse] = audio.detach(), torch.cat([p.grad.flatten() for p in g.net.parameters() if p.grad is not None])
    type(synth).takes_sounding = True
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-4, atol=1e-7)
    silent = synth(torch.zeros(1, 88, 10), torch.zeros(1, 88, 10), torch.zeros(1, 88, 10),
                   sounding=torch.zeros(1, 88, dtype=torch.bool))
    torch.testing.assert_close(silent, torch.full_like(silent, float(np.log(synth.feat.log_floor))))


def test_recon_loss_forgives_the_recordings_eq_only_at_the_order_asked():
    """A recording = S's output through a tilted EQ and a gain: order 0 sees the tilt as error, order 1 forgives it;
    a missing note (a narrow bump) is still an error at order 2, and order 0 is the former gain-only loss."""
    torch.manual_seed(0)
    pred = torch.randn(2, 64, 40)
    tilt = torch.linspace(-1.0, 1.0, 64)[None, :, None]
    recording = pred + 3.0 * tilt - 2.0
    assert float(recon_loss(pred, recording, eq_order=1)) < 1e-6 < float(recon_loss(pred, recording, eq_order=0))
    with_note = recording.clone()
    with_note[:, 30:32, 10:20] += 6.0  # a note S's input lacks
    assert float(recon_loss(pred, with_note, eq_order=2)) > 1e-3
    # order 0 is the former gain-only loss, written out as it was
    lo = recording.amax(dim=(-2, -1), keepdim=True) - 18.42
    t = torch.maximum(recording, lo)
    p = torch.maximum(pred + (t - pred).mean(dim=(-2, -1), keepdim=True), lo)
    old = sum([(p - t).abs().mean()] + [(F.avg_pool1d(p, s, s) - F.avg_pool1d(t, s, s)).abs().mean() for s in (4, 16)])
    assert torch.allclose(recon_loss(pred, recording, eq_order=0), old / 3 / 18.42)
    assert level_curve(recording - pred, 0).shape == (2, 1, 1)


def test_density_loss_is_zero_up_to_the_target_rates_and_grows_with_the_excess():
    def logit(q):
        return torch.full((2, 88, 16), float(np.log(q / (1 - q))))

    def out(frame_p, onset_p):
        return {"frame": logit(frame_p), "onset": logit(onset_p)}

    assert density_loss(out(0.04, 0.01), 0.04, 0.01).item() < 1e-9
    twice, half = density_loss(out(0.08, 0.01), 0.04, 0.01).item(), density_loss(out(0.02, 0.01), 0.04, 0.01).item()
    assert half == 0.0 and abs(twice - np.log(2) ** 2) < 1e-4  # fewer notes cost nothing, twice as many (log 2)^2
    logits = out(0.2, 0.05)
    logits = {k: v.requires_grad_() for k, v in logits.items()}
    density_loss(logits, 0.04, 0.01).backward()
    assert (logits["frame"].grad > 0).all() and (logits["onset"].grad > 0).all()  # too many notes: push down
