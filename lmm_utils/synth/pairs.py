"""Rendering motion to (roll, log-mel) pairs, S's training and test data.

  make_random_pairs     render many random excerpts (multiprocessing, tqdm) -> SynthPairs (roll, log-mel, piano)
  load_pool_pairs       a pool's ground-truth motion + its clean re-rendering -> SynthPairs
  render_pool_excerpt   clean audio of one pool excerpt (for listening)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.motion import Performance, to_roll
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.data.render import FluidRenderer, RecordingConditions
from lmm_utils.synth.random_motion import RandomMotionConfig, random_performance

Piano = tuple[str, int]  # (soundfont file, preset)


@dataclass
class SynthPairs:
    """Rolls and log-mels of N excerpts, padded to the longest (lengths says how many frames are real).

    Stored compactly (rolls as uint8 0..127/0..1, log-mel as float16): 256 ten-second excerpts are ~70 MB.
    """

    onset: torch.Tensor  # (N, 88, T) uint8 0/1
    velocity: torch.Tensor  # (N, 88, T) uint8 MIDI velocity on onset frames
    sustain: torch.Tensor  # (N, 88, T) uint8 0/1 (key or pedal holds the sound)
    logmel: torch.Tensor  # (N, n_mels, T) float16
    piano: torch.Tensor  # (N,) long: index into the fitting pianos, -1 = another piano
    lengths: torch.Tensor  # (N,) long
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.onset.shape[0]

    def batch(self, idx: torch.Tensor | list[int]) -> tuple[torch.Tensor, ...]:
        """(onset, velocity, sustain, piano, logmel) as float tensors, ready for S."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return (self.onset[idx].float(), self.velocity[idx].float() / 127.0, self.sustain[idx].float(),
                self.piano[idx], self.logmel[idx].float())

    def item(self, i: int) -> tuple[torch.Tensor, ...]:
        """One excerpt cut to its real length, batch dimension 1."""
        n = int(self.lengths[i])
        return tuple(x[..., :n] if x.dim() == 3 else x for x in self.batch([i]))

    @classmethod
    def stack(cls, items: list[dict], log_floor: float) -> SynthPairs:
        n_frames = max(it["logmel"].shape[-1] for it in items)

        def pad(x: np.ndarray, value: float) -> np.ndarray:
            return np.pad(x, ((0, 0), (0, n_frames - x.shape[-1])), constant_values=value)

        return cls(
            onset=torch.from_numpy(np.stack([pad(it["onset"], 0) for it in items])),
            velocity=torch.from_numpy(np.stack([pad(it["velocity"], 0) for it in items])),
            sustain=torch.from_numpy(np.stack([pad(it["sustain"], 0) for it in items])),
            logmel=torch.from_numpy(np.stack([pad(it["logmel"], math.log(log_floor)) for it in items])),
            piano=torch.tensor([it["piano"] for it in items], dtype=torch.long),
            lengths=torch.tensor([it["logmel"].shape[-1] for it in items], dtype=torch.long),
            ids=[it["id"] for it in items],
        )


_RENDERER = None


def _renderer(sample_rate: int) -> FluidRenderer:
    """This process's renderer: soundfonts load once per process (pool workers keep their own)."""
    global _RENDERER
    if _RENDERER is None or _RENDERER.sample_rate != sample_rate:
        _RENDERER = FluidRenderer(sample_rate)
    return _RENDERER


def render_pair(perf: Performance, cond: RecordingConditions, feat: FeatureConfig, seconds: float | None = None,
                tail: float = 1.0) -> tuple[dict, np.ndarray]:
    """Render one performance and cut it into a (roll, log-mel) pair on the same frame grid.

    seconds: exact length of the rendering (notes must end before it); None = duration + tail.
    Returns (pair dict with uint8 rolls and float16 log-mel, the audio).
    """
    if seconds is not None:
        tail = max(0.0, seconds - perf.duration)
    audio = _renderer(feat.sample_rate).render(perf, cond, tail=tail)
    mel = log_mel(audio, feat)
    roll = to_roll(perf, feat.fps, n_frames=mel.shape[-1])
    pair = {
        "onset": roll["onset"].astype(np.uint8),
        "velocity": np.round(roll["velocity"] * 127).astype(np.uint8),
        "sustain": roll["sustain"].astype(np.uint8),
        "logmel": mel.astype(np.float16),
        "peak": float(np.abs(audio).max(initial=0.0)),
    }
    return pair, audio


def _random_job(job: tuple) -> dict:
    seed, index, piano_index, piano, motion_cfg, feat = job
    rng = np.random.default_rng([seed, index])
    perf = random_performance(rng, motion_cfg)
    cond = RecordingConditions(soundfont=piano[0], preset=int(piano[1]))
    pair, _ = render_pair(perf, cond, feat, seconds=motion_cfg.seconds)
    pair.update(id=f"random-{seed}-{index}", piano=piano_index, n_notes=len(perf.notes))
    return pair


def _pool_job(job: tuple) -> dict:
    excerpt_id, perf_dict, cond, piano_index, feat = job
    perf = Performance.from_dict(perf_dict)
    pair, _ = render_pair(perf, cond, feat)
    pair.update(id=excerpt_id, piano=piano_index, n_notes=len(perf.notes))
    return pair


def _parallel(fn, jobs: list, workers: int, desc: str) -> list:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        return [fn(j) for j in tqdm(jobs, desc=desc, unit="excerpt")]
    # Each worker keeps one FluidRenderer (soundfonts loaded once); torch stays single-threaded there.
    with get_context("fork").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc, unit="excerpt"))


def make_random_pairs(n: int, seed: int, pianos: list[Piano], feat: FeatureConfig,
                      motion_cfg: RandomMotionConfig, workers: int = 0, start: int = 0,
                      desc: str = "render random motion") -> SynthPairs:
    """Render n random excerpts (indices start..start+n), cycling through the fitting pianos."""
    jobs = [(seed, i, i % len(pianos), tuple(pianos[i % len(pianos)]), motion_cfg, feat)
            for i in range(start, start + n)]
    return SynthPairs.stack(_parallel(_random_job, jobs, workers, desc), feat.log_floor)


def clean_conditions(cond: dict) -> RecordingConditions:
    """The same piano with the recording chain removed: no reverb, EQ, gain change or noise."""
    return RecordingConditions(soundfont=cond["soundfont"], preset=int(cond.get("preset", 0)),
                               bank=int(cond.get("bank", 0)))


def load_pool_pairs(pool: str, pianos: list[Piano], feat: FeatureConfig, workers: int = 0,
                    limit: int | None = None, piano_override: Piano | None = None,
                    root: str | Path = ".") -> SynthPairs:
    """A pool's ground-truth motion and a clean re-rendering of it with each excerpt's own piano, or with
    `piano_override` for all of them (e.g. the held-out piano); read through EvaluationData, since this is S's
    report on T, never its training data. limit: only the first `limit` excerpts."""
    data = EvaluationData(root)
    conds = data.conditions(pool) if piano_override is None else {}
    index = {(sf, int(pr)): i for i, (sf, pr) in enumerate(pianos)}
    jobs = []
    for excerpt_id, perf in list(data.motion(pool).items())[:limit]:
        if piano_override is None:
            cond = clean_conditions(conds[excerpt_id])
        else:
            cond = RecordingConditions(soundfont=piano_override[0], preset=int(piano_override[1]))
        jobs.append((excerpt_id, perf.to_dict(), cond, index.get((cond.soundfont, cond.preset), -1), feat))
    name = pool if piano_override is None else f"{pool} on {piano_override[0]}:{piano_override[1]}"
    return SynthPairs.stack(_parallel(_pool_job, jobs, workers, f"re-render {name} cleanly"), feat.log_floor)


def pool_available(pool: str, root: str | Path = ".") -> bool:
    return EvaluationData(root).has_pool(pool)


def render_pool_excerpt(pool: str, excerpt_id: str, sample_rate: int = 16000, root: str | Path = ".") -> np.ndarray:
    """Clean FluidSynth audio of one pool excerpt's ground-truth motion on its own piano (for listening)."""
    data = EvaluationData(root)
    cond = clean_conditions(data.conditions(pool)[excerpt_id])
    return _renderer(sample_rate).render(data.motion(pool)[excerpt_id], cond)


def pool_piano_names(pool: str, root: str | Path = ".") -> dict[str, str]:
    """excerpt id -> 'soundfont:preset' of its recording."""
    return {i: f"{c['soundfont']}:{c.get('preset', 0)}" for i, c in EvaluationData(root).conditions(pool).items()}


__all__ = [
    "Piano", "SynthPairs", "render_pair", "make_random_pairs", "clean_conditions", "load_pool_pairs",
    "pool_available", "render_pool_excerpt", "pool_piano_names",
]
