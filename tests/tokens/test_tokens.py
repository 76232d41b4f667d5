"""Round trips of the three tokenizers (V score, M motion, A audio), including edge cases."""
from __future__ import annotations

import random

import factories
import numpy as np
import pytest
import torch

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.core.score import DYNAMICS, ScoreExcerpt, ScoreNote
from lmm_utils.tokens import BOS, EOS, SPECIALS, tokenizer_from_dict
from lmm_utils.tokens.audio import AudioTokenizer
from lmm_utils.tokens.motion import MotionTokenizer
from lmm_utils.tokens.score import ScoreTokenizer


# -- V ------------------------------------------------------------------------------------------
def make_score(seed: int, meter: str = "3/4", key: str = "G major", fifths: int = 1, n_bars: int = 4) -> ScoreExcerpt:
    rng = random.Random(seed)
    num, den = map(int, meter.split("/"))
    bar = num * 4 / den
    grid = [0, 1 / 3, 0.25, 0.5, 2 / 3, 0.75, 1 / 6]
    notes = []
    for _ in range(rng.randint(5, 30)):
        onset = rng.randrange(int(n_bars * bar)) + rng.choice(grid)
        onset = min(onset, n_bars * bar - 0.25)
        dur = rng.choice([0.25, 1 / 3, 0.5, 1, 1.5, 2, 3])
        pitch = rng.randint(30, 90)
        voice = rng.randint(0, 2)
        notes.append(ScoreNote(pitch, onset, dur, voice))
        if rng.random() < 0.3:  # chord
            notes.append(ScoreNote(pitch + 4, onset, dur, voice))
    dyn = [(0.0, rng.choice(DYNAMICS)), (rng.randrange(int(n_bars * bar)) + 0.5, rng.choice(DYNAMICS))]
    return factories.excerpt(notes, id=f"x-e{seed}", piece_id="x", meter=meter, key=key, key_fifths=fifths,
                             n_bars=n_bars, bar_beats=bar, bpm=float(rng.randint(50, 180)), dynamics=sorted(dyn),
                             from_source=True)


@pytest.mark.parametrize("seed,meter,key,fifths", [
    (0, "3/4", "G major", 1), (1, "4/4", "E minor", 1), (2, "6/8", "B- major", -2), (3, "2/2", "F# minor", 3),
    (4, "12/8", "C major", 0), (5, "5/4", "A- minor", -7), (6, "3/8", "D dorian", 0),
])
def test_score_round_trip(seed, meter, key, fifths):
    tok = ScoreTokenizer()
    s = make_score(seed, meter, key, fifths)
    ids = tok.encode(s)
    assert ids[0] == BOS and ids[-1] == EOS and max(ids) < tok.vocab_size
    back = tok.decode(ids)
    assert back == tok.quantize(s)
    assert back.key == key and back.meter == meter and back.n_bars == s.n_bars
    assert back.tempo_bpm == s.tempo_bpm and back.dynamics == s.dynamics


def test_score_grid_is_lossless():
    tok = ScoreTokenizer(ticks_per_beat=12)  # make_score's onsets and durations are multiples of 1/12
    s = make_score(7)
    back = tok.decode(tok.encode(s))
    key = lambda n: (n.onset, n.voice, -n.pitch, n.duration)  # noqa: E731
    assert [(n.pitch, round(n.onset, 9), round(n.duration, 9), n.voice) for n in sorted(back.notes, key=key)] == \
           [(n.pitch, round(n.onset, 9), round(n.duration, 9), n.voice) for n in sorted(s.notes, key=key)]


def test_score_edge_cases():
    tok = ScoreTokenizer(ticks_per_beat=12, max_dur_ticks=24)
    empty = ScoreExcerpt("e", "p", "c", "4/4", "C major", 0, 2, 4.0, 100.0, False, [], False, [])
    assert tok.decode(tok.encode(empty)) == tok.quantize(empty)
    assert tok.names(tok.encode(empty)).count("bar") == 2
    # a note longer than max_dur_ticks, a grace note (duration 0), off-grid onset, odd tempo
    s = ScoreExcerpt("e", "p", "c", "4/4", "D major", 2, 3, 4.0, 97.6, False, [(0.0, "pp"), (4.0, "ff")], False,
                     [ScoreNote(50, 0.0, 11.0, 1), ScoreNote(74, 4.0, 0.0, 0), ScoreNote(76, 4.01, 0.5, 0)])
    back = tok.decode(tok.encode(s))
    assert back == tok.quantize(s)
    assert back.notes[0].duration == 11.0 and back.tempo_bpm == 98.0
    assert tok.names(tok.encode(s)).count("d:24") == 5  # 11 beats = 132 ticks = 5 x 24 + 12


def test_score_key_fallback_and_state():
    tok = ScoreTokenizer()
    assert tok.decode(tok.encode(make_score(3, key="f# minor", fifths=3))).key == "F# minor"  # case: music21's
    s = make_score(3, key="weird", fifths=-3)
    assert tok.decode(tok.encode(s)).key == "E- major"
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode(s) == tok.encode(s)


def test_score_decode_tolerates_garbage():
    tok = ScoreTokenizer()
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = tok.decode(rng.integers(0, tok.vocab_size, size=200).tolist())
        assert isinstance(out, ScoreExcerpt)
        assert all(n.duration >= 0 for n in out.notes)


# -- M ------------------------------------------------------------------------------------------
def make_performance(seed: int) -> Performance:
    rng = random.Random(seed)
    notes, t = [], 0.0
    for _ in range(rng.randint(10, 40)):
        t += rng.choice([0.0, 0.0, 0.12, 0.25, 0.5, 3.7])  # chords (0.0) and long gaps (3.7 s)
        notes.append(PerformedNote(rng.randint(21, 108), t, t + rng.uniform(0.05, 2.0), rng.randint(1, 127)))
    pedal = []
    p = 0.0
    for _ in range(rng.randint(0, 4)):
        p += rng.uniform(0.1, 2.0)
        pedal.append(PedalEvent(p, True))
        p += rng.uniform(0.1, 2.0)
        pedal.append(PedalEvent(p, False))
    return Performance(notes, pedal)


@pytest.mark.parametrize("seed", range(6))
def test_motion_round_trip(seed):
    tok = MotionTokenizer()
    perf = make_performance(seed)
    ids = tok.encode(perf)
    assert ids[0] == BOS and ids[-1] == EOS and max(ids) < tok.vocab_size
    assert tok.decode(ids) == tok.quantize(perf)


def test_motion_edge_cases():
    tok = MotionTokenizer(time_step=0.01, max_shift=100, velocity_bins=32)
    assert tok.decode(tok.encode(Performance([]))) == Performance([], [])
    # an 11.8 s gap -> many shift tokens; a zero-length note; a re-struck key; pedal only at the end
    perf = Performance(
        [PerformedNote(60, 0.0, 0.5, 80), PerformedNote(60, 0.5, 1.0, 81), PerformedNote(64, 0.5, 0.5, 10),
         PerformedNote(67, 12.845, 13.0, 127), PerformedNote(21, 0.0, 0.003, 1)],
        [PedalEvent(0.0, True), PedalEvent(13.5, False)],
    )
    ids = tok.encode(perf)
    names = tok.names(ids)
    assert names.count("shift:100") == 11  # 1.0 s -> 12.845 s: 11 x 1 s + 0.845 s
    back = tok.decode(ids)
    assert back == tok.quantize(perf)
    assert [n.offset - n.onset for n in back.notes if n.pitch == 64] == [pytest.approx(0.01)]  # min 1 step
    assert [(n.onset, n.offset) for n in back.notes if n.pitch == 60] == [(0.0, 0.5), (0.5, 1.0)]
    assert back.pedal == [PedalEvent(0.0, True), PedalEvent(13.5, False)]


def test_motion_velocity_bins_are_idempotent():
    tok = MotionTokenizer(velocity_bins=32)
    q = [tok.bin_velocity(tok.velocity_bin(v)) for v in range(1, 128)]
    assert all(tok.bin_velocity(tok.velocity_bin(v)) == v for v in q)
    assert len(set(q)) == 32 and all(abs(a - v) <= 2 for a, v in zip(q, range(1, 128)))


def test_motion_decode_tolerates_garbage():
    tok = MotionTokenizer()
    rng = np.random.default_rng(1)
    for _ in range(20):
        perf = tok.decode(rng.integers(0, tok.vocab_size, size=300).tolist())
        assert all(n.offset > n.onset for n in perf.notes)


# -- A ------------------------------------------------------------------------------------------
def test_audio_round_trip_on_codebook_data():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(8, 16, 2)).astype(np.float32) * 3  # 8 distinct 2-frame "sounds"
    mels = [np.concatenate([protos[k] for k in rng.integers(0, 8, size=30)], axis=1) for _ in range(5)]
    tok = AudioTokenizer(n_mels=16, frames_per_token=2, codebook_size=8, kmeans_iters=15)
    tok.fit(mels, progress=False)
    ids = tok.encode(mels[0])
    assert ids[0] == BOS and ids[-1] == EOS and len(ids) == 30 + 2
    rec = tok.decode(ids)
    assert rec.shape == mels[0].shape
    err = tok.reconstruction_error(mels)
    assert err["unexplained_variance"] < 1e-6  # 8 codes for 8 prototypes: exact


def test_audio_odd_frames_state_and_error():
    rng = np.random.default_rng(1)
    mels = [rng.normal(size=(16, int(n))).astype(np.float32) for n in rng.integers(20, 60, size=6)]
    tok = AudioTokenizer(n_mels=16, frames_per_token=2, codebook_size=32, kmeans_iters=5)
    tok.fit(mels, progress=False)
    odd = rng.normal(size=(16, 11)).astype(np.float32)
    ids = tok.encode(odd)
    assert len(ids) == 6 + 2 and tok.decode(ids).shape == (16, 12)  # last token padded
    assert tok.decode([BOS, EOS]).shape == (16, 0)
    err = tok.reconstruction_error(mels)
    assert 0 < err["unexplained_variance"] < 1  # better than the mean frame, worse than lossless
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode(odd) == ids


def test_audio_unfitted_raises():
    with pytest.raises(RuntimeError):
        AudioTokenizer(n_mels=16).encode(np.zeros((16, 4), np.float32))


def test_audio_harmonic_features_fit_decode_and_state():
    rng = np.random.default_rng(2)
    mels = [rng.normal(size=(32, int(n))).astype(np.float32) for n in rng.integers(20, 60, size=6)]
    tok = AudioTokenizer(n_mels=32, frames_per_token=2, codebook_size=16, kmeans_iters=5, features="harmonic")
    assert tok.dim == 2 * tok.frame_dim and tok.frame_dim != 32
    tok.fit(mels, progress=False)
    ids = tok.encode(mels[0])
    assert len(ids) == -(-mels[0].shape[1] // 2) + 2
    assert tok.decode(ids).shape == (32, 2 * (len(ids) - 2))  # decodes to log-mel: each code's mean frames
    assert 0 < tok.reconstruction_error(mels)["unexplained_variance"] < 1
    again = tokenizer_from_dict(tok.to_dict())
    assert again.features == "harmonic" and again.encode(mels[1]) == tok.encode(mels[1])
    assert np.allclose(again.decode(ids), tok.decode(ids))
    x = torch.from_numpy(mels[2][None, :, :20])  # token_vectors: the standardised vectors of whole tokens
    assert torch.allclose(tok.token_vectors(x)[0], (tok.vectors(mels[2][:, :20]) - tok.mean) / tok.std, atol=1e-5)
    with pytest.raises(ValueError):
        AudioTokenizer(features="cqt")


def test_audio_checkpoint_without_features_key_is_logmel():
    rng = np.random.default_rng(3)
    mels = [rng.normal(size=(16, 40)).astype(np.float32) for _ in range(4)]
    tok = AudioTokenizer(n_mels=16, codebook_size=8, kmeans_iters=3)
    tok.fit(mels, progress=False)
    old = tok.to_dict()
    for key in ("features", "fmin", "fmax"):  # what a checkpoint saved before the option had
        old["config"].pop(key)
    back = tokenizer_from_dict(old)
    assert back.features == "logmel" and back.encode(mels[0]) == tok.encode(mels[0])
    assert np.allclose(back.decode(tok.encode(mels[0])), tok.decode(tok.encode(mels[0])))


def test_audio_dedup_collapses_runs_and_keeps_their_lengths():
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    protos = rng.normal(size=(4, 16, 2)).astype(np.float32) * 3  # 4 distinct 2-frame sounds, each held a while
    order = [0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 0]
    mel = np.concatenate([protos[k] for k in order], axis=1)
    tok = AudioTokenizer(n_mels=16, frames_per_token=2, codebook_size=4, kmeans_iters=15, dedup=True)
    tok.fit([mel], progress=False)
    frame_codes = tok.codes(mel).tolist()
    ids, counts = tok.encode_runs(mel)
    assert ids[0] == BOS and ids[-1] == EOS and len(ids) == 5 + 2  # five runs: 0 0 0 | 1 | 2 2 | 3 3 3 3 | 0
    codes = ids[1:-1]
    assert all(a != b for a, b in zip(codes, codes[1:])) and codes[0] == codes[-1]
    assert counts.tolist() == [3, 1, 2, 4, 1]
    assert sum(counts) == len(frame_codes)
    assert np.repeat(np.array(codes) - len(SPECIALS), counts).tolist() == frame_codes  # runs expand back exactly
    assert tok.encode(mel) == ids
    again = tokenizer_from_dict(tok.to_dict())
    assert again.dedup and again.encode(mel) == ids
    assert tok.reconstruction_error([mel])["unexplained_variance"] < 1e-6  # every frame token, not one per run
    plain = tokenizer_from_dict({**tok.to_dict(), "config": {**tok.config(), "dedup": False}})
    assert len(plain.encode(mel)) == len(order) + 2
