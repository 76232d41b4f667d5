"""models/transcriber.py: shapes, the harmonic front end, decoding, gradients, and that h overfits two
tiny excerpts (rendered by the template synth, so no FluidSynth is needed)."""
import factories
import numpy as np
import pytest
import torch

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.motion import Performance, to_roll
from lmm_utils.evaluation.metrics import transcription_scores
from lmm_utils.methods.alignment import TemplateSynth
from lmm_utils.models.transcriber import (
    DecodeConfig,
    Transcriber,
    TranscriberConfig,
    build_transcriber,
    decode,
    n_parameters,
    transcribe,
    transcription_loss,
)

FEAT = FeatureConfig()


def _tiny_performance(seed: int, seconds: float = 3.0) -> Performance:
    return factories.chord_performance(np.random.default_rng(seed), start=0.2, until=seconds - 0.5, steps=[0.3, 0.45],
                                       pitches=(55, 80), chord=(1, 3), length=(0.2, 0.4), velocity=(50, 110))


def _render(perf: Performance, n_frames: int) -> torch.Tensor:
    roll = to_roll(perf, FEAT.fps, n_frames)
    with torch.no_grad():
        return TemplateSynth(FEAT)(*(torch.from_numpy(roll[k])[None] for k in ("onset", "velocity", "sustain")))[0]


def test_sizes_and_shapes():
    assert 15_000 <= n_parameters(build_transcriber({})) <= 30_000
    assert n_parameters(build_transcriber({"bins_per_semitone": 3})) <= 40_000
    m = Transcriber(TranscriberConfig.tiny())
    out = m(torch.randn(2, FEAT.n_mels, 37))
    assert set(out) == {"onset", "frame", "velocity"}
    assert all(v.shape == (2, 88, 37) for v in out.values())


@pytest.mark.parametrize("midi", [57, 69, 81, 93])
def test_frontend_puts_a_tone_on_its_key_and_ignores_gain(midi):
    m = Transcriber(TranscriberConfig())
    t = np.arange(FEAT.sample_rate) / FEAT.sample_rate
    x = torch.from_numpy(log_mel(0.3 * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t), FEAT))[None]
    stacked = m.frontend(x)[0]  # (H, 88, T); channel 1 is harmonic 1
    assert int(stacked[1, :, 25].argmax()) + 21 == midi
    assert torch.allclose(m.frontend(x + 2.5), m.frontend(x), atol=1e-5)  # recording gain does not matter


def test_decode_of_true_rolls_is_perfect():
    perf = _tiny_performance(0)
    roll = to_roll(perf, FEAT.fps, 160)
    logits = {k: torch.logit(torch.from_numpy(roll[k]).clamp(0.02, 0.98)) for k in ("onset", "frame", "velocity")}
    est = decode(logits, FEAT.fps, DecodeConfig())
    s = transcription_scores(perf, est)
    assert s["note_f1"] == 1.0 and s["frame_f1"] > 0.95


def test_gradients_reach_the_input():
    """synth-pairs and cycle train h on S's output: h must be differentiable in its log-mel input."""
    m = Transcriber(TranscriberConfig.tiny())
    x = torch.randn(1, FEAT.n_mels, 40, requires_grad=True)
    m(x)["frame"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _fit(m: Transcriber, x: torch.Tensor, perfs: list[Performance], steps: int) -> Transcriber:
    """`steps` Adam steps of h on log-mels x (B, n_mels, T) and their performances."""
    rolls = [to_roll(p, FEAT.fps, x.shape[-1]) for p in perfs]
    y = {k: torch.stack([torch.from_numpy(r[k]) for r in rolls]) for k in ("onset", "frame", "velocity")}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = transcription_loss(m(x), y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m


def test_overfits_two_tiny_excerpts():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n_frames = 160
    perfs = [_tiny_performance(1), _tiny_performance(2)]
    x = torch.stack([_render(p, n_frames) for p in perfs])
    m = _fit(Transcriber(TranscriberConfig()), x, perfs, 100)
    for i, perf in enumerate(perfs):
        s = transcription_scores(perf, transcribe(m, x[i]))
        assert s["note_f1"] >= 0.9, s
        assert s["frame_f1"] >= 0.8, s


def _piano_like(seed: int, seconds: float = 4.0) -> tuple[np.ndarray, Performance]:
    """A recording-like waveform (decaying harmonic tones) and its notes: no FluidSynth needed."""
    from lmm_utils.core.motion import PerformedNote

    rng = np.random.default_rng(seed)
    sr = FEAT.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    x, notes = np.zeros_like(t), []
    for _ in range(8):
        on, pitch, vel = round(rng.uniform(0.1, seconds - 1.0), 2), int(rng.integers(45, 85)), rng.uniform(0.3, 1.0)
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        env = np.where(t >= on, np.exp(-(t - on) * 2.5), 0.0) * (t < on + 0.6)
        for k in range(1, 9):
            x += vel * env * np.sin(2 * np.pi * k * f0 * t) / k ** 1.5
        notes.append(PerformedNote(pitch, on, on + 0.6, int(40 + 80 * vel)))
    return x.astype(np.float32), Performance(sorted(notes, key=lambda n: (n.onset, n.pitch)))


def _at_rms_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * (10 ** (dbfs / 20) / np.sqrt(np.mean(x ** 2)))).astype(np.float32)


LEVELS_DBFS = (-45.0, -25.0, -6.0)  # a quiet benchmark take, an ordinary recording, a hot master


def test_the_same_recording_at_three_levels_reads_the_same():
    """h's front end sees the same input at -45, -25 and -6 dBFS RMS (its 40-dB window sits above the log-mel's
    absolute floor at every ordinary level), so h writes the same notes at each level."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = Transcriber(TranscriberConfig())
    x, perf = _piano_like(0, 3.0)
    stacked = {db: m.frontend(torch.from_numpy(log_mel(_at_rms_dbfs(x, db), FEAT))[None]) for db in LEVELS_DBFS}
    for a in LEVELS_DBFS:
        assert float((stacked[a] - stacked[-25.0]).abs().max()) < 0.02, a
    # trained on the -25 dBFS take only, h transcribes the other two levels the same way
    train = [_piano_like(1, 3.0), (x, perf)]
    inputs = torch.stack([torch.from_numpy(log_mel(_at_rms_dbfs(w, -25.0), FEAT)) for w, _ in train])
    m = _fit(m, inputs, [p for _, p in train], 120).eval()
    est = {db: transcribe(m, torch.from_numpy(log_mel(_at_rms_dbfs(x, db), FEAT))) for db in LEVELS_DBFS}
    assert est[-25.0].notes, "h learned nothing: the comparison below would be empty"
    for db in (-45.0, -6.0):
        assert transcription_scores(est[-25.0], est[db])["note_f1"] >= 0.98, db
