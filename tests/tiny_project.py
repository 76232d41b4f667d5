"""A tiny synthetic project for tests: a few excerpts per pool, sine-tone "recordings" of a jittered plain
performance, tiny LMs and a tiny additive S, all made here in a few seconds.

    root = make_tiny_project(tmp_path_factory.mktemp("tiny_project"))
"""
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.score import ScoreExcerpt, ScoreNote
from lmm_utils.models.performer import plain_performance

FEAT = FeatureConfig()
SR = FEAT.sample_rate
POOL_SIZES = {"U_V": 4, "U_A": 4, "P": 5, "T": 3}


def score(pool: str, i: int, rng: np.random.Generator) -> ScoreExcerpt:
    coll = "essenFolksong" if i % 2 == 0 else "bachChorales"
    notes, beat = [], 0.0
    while beat < 8.0:
        d = float(rng.choice([0.5, 1.0]))
        notes.append(ScoreNote(int(rng.integers(60, 76)), beat, d, 0))
        if coll == "bachChorales":
            notes.append(ScoreNote(notes[-1].pitch - 12, beat, d, 1))
        beat += d
    return ScoreExcerpt(id=f"{coll}-w{pool}{i}-b001", piece_id=f"{coll}-w{pool}{i}", collection=coll, meter="4/4",
                        key="C major", key_fifths=0, n_bars=2, bar_beats=4.0, tempo_bpm=float(rng.uniform(100, 140)),
                        tempo_from_source=False, dynamics=[(0.0, "mf")], dynamics_from_source=False, notes=notes)


def perform(score: ScoreExcerpt, rng: np.random.Generator) -> Performance:
    plain = plain_performance(score)
    f = float(rng.uniform(0.9, 1.1))
    return Performance(notes=[PerformedNote(n.pitch, 0.25 + (n.onset - 0.25) * f, 0.25 + (n.offset - 0.25) * f * 0.8,
                                            int(np.clip(n.velocity + rng.integers(-10, 10), 1, 127))) for n in plain.notes])


def render(perf: Performance, partials: int = 6, decay: float = 3.0) -> np.ndarray:
    n = int((perf.duration + 0.5) * SR)
    out = np.zeros(n, np.float32)
    for note in perf.notes:
        a, b = int(note.onset * SR), min(n, int((note.offset + 0.05) * SR))
        t = np.arange(b - a) / SR
        f0 = 440.0 * 2 ** ((note.pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, partials + 1) if h * f0 < SR / 2)
        out[a:b] += (note.velocity / 127.0) * 0.1 * np.exp(-decay * t) * tone
    return out


def make_tiny_project(root: Path) -> Path:
    from lmm_utils.lm.model import train_lm
    from lmm_utils.models.synth import AdditiveConfig, make_synth, save_synth
    from lmm_utils.tokens.audio import AudioTokenizer
    from lmm_utils.tokens.motion import MotionTokenizer
    from lmm_utils.tokens.score import ScoreTokenizer

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    scores = {pool: [score(pool, i, rng) for i in range(n)] for pool, n in POOL_SIZES.items()}
    (root / "data/scores").mkdir(parents=True)
    for pool, ss in scores.items():
        (root / f"data/scores/{pool}.jsonl").write_text("".join(json.dumps(s.to_dict()) + "\n" for s in ss))
    (root / "data/motion").mkdir(parents=True)
    mels = {}
    for pool in ("U_A", "P", "T"):
        perfs = {s.id: perform(s, rng) for s in scores[pool]}
        (root / f"data/motion/{pool}.jsonl").write_text(
            "".join(json.dumps({"id": i, "performance": p.to_dict()}) + "\n" for i, p in perfs.items()))
        for audio_pool, partials in ((pool, 6), ("T_timbre", 3)) if pool == "T" else ((pool, 6),):
            d = root / "data/audio" / audio_pool
            d.mkdir(parents=True, exist_ok=True)
            (d / "conditions.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in perfs))
            for i, p in perfs.items():
                audio = render(p, partials)
                sf.write(d / f"{i}.flac", audio, SR)
                if audio_pool == "U_A":
                    mels[i] = log_mel(audio, FEAT)
    # tiny LMs and S
    atok = AudioTokenizer(n_mels=FEAT.n_mels, codebook_size=8, kmeans_iters=2)
    atok.fit(list(mels.values()), progress=False)
    model = {"block_size": 32, "n_layer": 1, "n_head": 1, "n_embd": 16, "dropout": 0.0}
    train = {"steps": 2, "batch_size": 2, "warmup": 1, "eval_every": 100, "device": "cpu", "precision": "fp32"}
    train_lm([atok.encode(m) for m in mels.values()], atok, model, train, out_dir=root / "data/lm/A", progress=False)
    stok = ScoreTokenizer()
    train_lm([stok.encode(s) for s in scores["U_V"]], stok, model, train, out_dir=root / "data/lm/V", progress=False)
    mtok = MotionTokenizer(time_step=0.02, max_shift=50, velocity_bins=16)  # LM^M (stage pretrain_M: plain motion)
    train_lm([mtok.encode(plain_performance(s)) for s in scores["U_V"]], mtok, model, train,
             out_dir=root / "data/lm/M", progress=False)
    save_synth(make_synth("additive", AdditiveConfig.tiny(), FEAT), root / "data/synth/S.pt")
    return root
