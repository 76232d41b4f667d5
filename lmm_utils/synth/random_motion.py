"""Random motion: the only music S is ever fitted on (it learns the instrument, never the music).

Random pitches over the whole keyboard, timings, velocities, chords, re-strikes and sustain pedal; each
excerpt draws its own onset rate and loudness, so the fitting data covers sparse and dense, soft and loud.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmm_utils.core.motion import PIANO_HIGH, PIANO_LOW, PedalEvent, Performance, PerformedNote
from lmm_utils.core.params import ParamsError, dataclass_from


@dataclass(frozen=True)
class RandomMotionConfig:
    seconds: float = 10.0
    notes_per_s: tuple[float, float] = (0.5, 10.0)  # onset rate, log-uniform per excerpt
    chord_prob: float = 0.3  # an onset is a chord of 2..max_chord notes within an octave and a half
    max_chord: int = 5
    repeat_prob: float = 0.15  # re-strike one of the last few pitches
    duration_s: tuple[float, float] = (0.04, 4.0)  # key-down time, log-uniform
    velocity: tuple[int, int] = (8, 127)  # excerpt mean uniform in this range, notes spread +-15 around it
    pedal_prob: float = 0.3  # share of excerpts with sustain-pedal use


def motion_config(section: dict | None, seconds: float) -> RandomMotionConfig:
    """params.yaml synth.motion (RandomMotionConfig's fields but seconds) with the excerpt length, which is
    synth.excerpt_seconds (the stage's own, so a `seconds` here would be ignored: it is refused)."""
    if section and "seconds" in section:
        raise ParamsError("params.yaml: synth.motion.seconds is not read: set the excerpt length in synth.excerpt_seconds")
    return dataclass_from(RandomMotionConfig, {**(section or {}), "seconds": float(seconds)}, "synth.motion")


def random_performance(rng: np.random.Generator, cfg: RandomMotionConfig) -> Performance:
    """Random notes over the whole keyboard, no two overlapping notes on one key (a re-strike cuts the
    previous press short, as a pianist's would), everything released before cfg.seconds."""
    end = cfg.seconds - 0.05
    lo, hi = np.log(cfg.notes_per_s)
    rate = float(np.exp(rng.uniform(lo, hi)))
    mean_vel = rng.uniform(*cfg.velocity)
    notes: list[list] = []  # [pitch, onset, offset, velocity]
    last: dict[int, int] = {}  # pitch -> index of its latest note
    t = rng.exponential(1.0 / rate) * rng.uniform(0, 1)
    dlo, dhi = np.log(cfg.duration_s)
    while t < end - 0.1:
        size = int(rng.integers(2, cfg.max_chord + 1)) if rng.random() < cfg.chord_prob else 1
        if notes and rng.random() < cfg.repeat_prob:
            recent = [n[0] for n in notes[-6:]]
            pitches = {int(rng.choice(recent))}
        else:
            centre = int(rng.integers(PIANO_LOW, PIANO_HIGH + 1))
            pitches = {centre}
            while len(pitches) < size:
                pitches.add(int(np.clip(centre + rng.integers(-18, 19), PIANO_LOW, PIANO_HIGH)))
        for p in sorted(pitches):
            on = t + (rng.uniform(0, 0.015) if size > 1 else 0.0)
            if p in last:
                prev = notes[last[p]]
                if prev[2] > on - 0.01:
                    if on - 0.01 - prev[1] < 0.02:
                        continue  # too soon after the previous press of this key
                    prev[2] = on - 0.01
            off = min(on + float(np.exp(rng.uniform(dlo, dhi))), end)
            vel = int(np.clip(round(rng.normal(mean_vel, 15.0)), 1, 127))
            last[p] = len(notes)
            notes.append([p, on, off, vel])
        t += rng.exponential(1.0 / rate)
    if not notes:
        notes.append([int(rng.integers(PIANO_LOW, PIANO_HIGH + 1)), 0.1, min(1.0, end), int(mean_vel)])
    pedal: list[PedalEvent] = []
    if rng.random() < cfg.pedal_prob:
        p_t = rng.uniform(0.0, 2.0)
        while p_t < end - 0.3:
            up = min(p_t + rng.uniform(0.5, 3.0), end)
            pedal += [PedalEvent(p_t, True), PedalEvent(up, False)]
            p_t = up + rng.uniform(0.05, 1.5)
    perf = [PerformedNote(int(p), float(on), float(off), int(v)) for p, on, off, v in notes]
    perf.sort(key=lambda n: (n.onset, n.pitch))
    return Performance(notes=perf, pedal=pedal)


__all__ = ["RandomMotionConfig", "motion_config", "random_performance"]
