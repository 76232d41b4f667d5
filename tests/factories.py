"""Builders of small scores, performances and sounds shared by the tests (seeded; each test picks its sizes)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.score import ScoreExcerpt, ScoreNote

VOICE_CENTRES = (72, 64, 57, 48)  # soprano, alto, tenor, bass


def excerpt(notes: list[ScoreNote], *, id: str = "s", piece_id: str | None = None, collection: str = "test",
            meter: str = "4/4", key: str = "C major", key_fifths: int = 0, n_bars: int | None = None,
            bar_beats: float = 4.0, bpm: float = 120.0, dynamics: Sequence[tuple[float, str]] = ((0.0, "mf"),),
            from_source: bool = False) -> ScoreExcerpt:
    """A ScoreExcerpt around `notes` with plain defaults (4/4, C major, mf); n_bars from the last note if not given."""
    if n_bars is None:
        end = max((n.onset + n.duration for n in notes), default=bar_beats)
        n_bars = max(1, int(np.ceil(end / bar_beats - 1e-9)))
    return ScoreExcerpt(id=id, piece_id=piece_id or id, collection=collection, meter=meter, key=key,
                        key_fifths=key_fifths, n_bars=n_bars, bar_beats=bar_beats, tempo_bpm=float(bpm),
                        tempo_from_source=from_source, dynamics=list(dynamics), dynamics_from_source=from_source,
                        notes=notes)


def voices(rng: np.random.Generator, n_voices: int, beats: float, durations: Sequence[float], next_pitch) -> list[ScoreNote]:
    """Random voices around VOICE_CENTRES: each voice draws a duration, then `next_pitch(rng, previous, centre)`;
    notes sorted by onset, highest first."""
    notes = []
    for v in range(n_voices):
        t, p = 0.0, VOICE_CENTRES[v]
        while t < beats - 1e-9:
            d = min(float(rng.choice(durations)), beats - t)
            p = next_pitch(rng, p, VOICE_CENTRES[v])
            notes.append(ScoreNote(p, t, d, v))
            t += d
    notes.sort(key=lambda n: (n.onset, -n.pitch))
    return notes


def chord_performance(rng: np.random.Generator, *, start: float, steps: Sequence[float], pitches: tuple[int, int],
                      chord: tuple[int, int] | None, length: tuple[float, float], velocity: tuple[int, int],
                      n: int | None = None, until: float | None = None) -> Performance:
    """Random chords (sizes drawn from range(*chord), or single notes when chord is None) every `steps` seconds, for n
    chords or until a time; each note lasts uniform(*length) s with velocity integers(*velocity)."""
    notes, t, i = [], start, 0
    while (n is not None and i < n) or (until is not None and t < until):
        size = int(rng.integers(*chord)) if chord else 1
        for p in rng.choice(np.arange(*pitches), size=size, replace=False):
            notes.append(PerformedNote(int(p), t, t + float(rng.uniform(*length)), int(rng.integers(*velocity))))
        t += float(rng.choice(steps))
        i += 1
    return Performance(notes=sorted(notes, key=lambda x: (x.onset, x.pitch)))


def tone(sr: int, seconds: float, *, amplitude: float = 0.3, start: float = 0.2, stop: float | None = None,
         channels: int = 1, freq: float = 261.63) -> np.ndarray:
    """Middle C from `start` to `stop` (s); two channels give the right one at half level."""
    t = np.arange(int(sr * seconds)) / sr
    x = amplitude * np.sin(2 * np.pi * freq * t) * ((t >= start) & (t < (stop or seconds)))
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


def trained_run(runs_dir, method: str, K: int, seed: int, *, h_note_f1: float | None = None,
                g_note_f1: float | None = None, checkpoints: tuple[str, ...] = ("h", "g"), torch_seed: int = 0):
    """A run folder as the mapping stage leaves it, minus predictions: tiny untrained h.pt / g.pt and a metrics.json
    with h note F1 on T and T_timbre (T_timbre = 0.9 x T) and g note F1 = velocity r on T, "all" subset (None: not
    scored).
    The one place tests build a run folder's path, so a change of the run layout is made here."""
    import json

    import torch

    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.core.paths import run_path
    from lmm_utils.methods.checkpoints import save_g, save_h
    from lmm_utils.methods.wrappers import make_g, make_h
    from lmm_utils.models.performer import PerformerConfig
    from lmm_utils.models.transcriber import TranscriberConfig

    d = run_path(runs_dir, method, K, seed)
    d.mkdir(parents=True)
    torch.manual_seed(torch_seed)
    if "h" in checkpoints:
        save_h(make_h(TranscriberConfig.tiny(), FeatureConfig()), d / "h.pt", {"run": d.name})
    if "g" in checkpoints:
        save_g(make_g(PerformerConfig.tiny()), d / "g.pt", {"run": d.name})
    h_rows = {"T": {"all": {"note_f1": h_note_f1, "frame_f1": h_note_f1, "n": 4}},
              "T_timbre": {"all": {"note_f1": None if h_note_f1 is None else 0.9 * h_note_f1, "n": 4}}}
    g_rows = {"T": {"all": {"note_f1": g_note_f1, "aligned_note_f1": g_note_f1, "velocity_r": g_note_f1,
                            "velocity_mae": 9.0, "n": 4}}}  # g's one score stands for note F1 and velocity r
    metrics = {"run": d.name, "method": method, "K": K, "seed": seed, "h": h_rows, "g": g_rows}
    (d / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return d


# A mapping section small enough for a run in about a second on the tiny project (tests/conftest.py tiny_root).
TINY_MAP = {
    "device": "cpu", "synth": "data/synth/S.pt", "lm": {"A": "data/lm/A", "V": "data/lm/V", "M": "data/lm/M"},
    "eval": {"max_items": None},
    "method": {"steps": 2, "batch_size": 2, "crop_frames": 40, "warmup": 1, "threads": 1},
    "transcriber": {"harmonics": [0.5, 1.0, 2.0, 3.0], "contour_channels": 4, "contour_out_channels": 4,
                    "note_channels": 4, "onset_channels": 4, "time_kernel": 3},
    "performer": {"d_model": 16, "n_layers": 1, "dropout": 0.0},
    "synth_pairs": {"max_scores": 3},
    "cycle": {"max_unpaired": 2, "g_frames": 60, "unpaired_batch": 2},
    "surface": {"rank": 4},
    "lmm": {"max_unpaired": 3, "g_frames": 60, "prior_frames": 32, "prior_batch": 1, "unpaired_batch": 2,
            "candidates": 3, "lmM_model": {"block_size": 32, "n_layer": 1, "n_head": 1, "n_embd": 16, "dropout": 0.0},
            "lmM_train": {"steps": 2, "batch_size": 2, "warmup": 1}},
}
