"""Motion (M): what a pianist does -- key presses with timing and velocity, plus the sustain pedal.

A performance is a list of `PerformedNote` (seconds, MIDI pitch, MIDI velocity) and a list of
`PedalEvent`. This module converts it to and from MIDI files and to the frame-level piano roll
that the synthesizer and the transcriber work on.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi

PIANO_LOW = 21  # A0
PIANO_HIGH = 108  # C8
N_KEYS = PIANO_HIGH - PIANO_LOW + 1  # 88


@dataclass(frozen=True)
class PerformedNote:
    pitch: int  # MIDI pitch, 21..108
    onset: float  # seconds
    offset: float  # seconds (key release; the pedal may sustain the sound longer)
    velocity: int  # MIDI velocity, 1..127


@dataclass(frozen=True)
class PedalEvent:
    time: float  # seconds
    down: bool


@dataclass
class Performance:
    notes: list[PerformedNote]
    pedal: list[PedalEvent] = field(default_factory=list)

    @property
    def duration(self) -> float:
        ends = [n.offset for n in self.notes] + [p.time for p in self.pedal]
        return max(ends, default=0.0)

    def to_dict(self) -> dict:
        return {
            "notes": [[n.pitch, round(n.onset, 5), round(n.offset, 5), n.velocity] for n in self.notes],
            "pedal": [[round(p.time, 5), int(p.down)] for p in self.pedal],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Performance:
        return cls(
            notes=[PerformedNote(int(p), float(on), float(off), int(v)) for p, on, off, v in d["notes"]],
            pedal=[PedalEvent(float(t), bool(down)) for t, down in d.get("pedal", [])],
        )

    def sounding_offsets(self) -> np.ndarray:
        """Offset of each note's *sound*: key release, or the next pedal release if the pedal is down then."""
        offsets = np.array([n.offset for n in self.notes], dtype=float)
        if not self.pedal:
            return offsets
        intervals = _pedal_intervals(self.pedal, end=self.duration + 1.0)
        for i, off in enumerate(offsets):
            for down, up in intervals:
                if down <= off < up:
                    offsets[i] = up
                    break
        return offsets


def _pedal_intervals(pedal: list[PedalEvent], end: float) -> list[tuple[float, float]]:
    intervals, start = [], None
    for ev in sorted(pedal, key=lambda e: e.time):
        if ev.down and start is None:
            start = ev.time
        elif not ev.down and start is not None:
            intervals.append((start, ev.time))
            start = None
    if start is not None:
        intervals.append((start, end))
    return intervals


def write_midi(perf: Performance, path: str | Path) -> None:
    """Write a performance as a one-track piano MIDI file (pedal as CC64)."""

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name="piano")
    for n in perf.notes:
        piano.notes.append(pretty_midi.Note(velocity=int(n.velocity), pitch=int(n.pitch), start=n.onset, end=n.offset))
    for ev in perf.pedal:
        piano.control_changes.append(pretty_midi.ControlChange(number=64, value=127 if ev.down else 0, time=ev.time))
    pm.instruments.append(piano)
    pm.write(str(path))


def read_midi(path: str | Path) -> Performance:
    """Read every non-drum note of a MIDI file as one performance (pedal from CC64 >= 64)."""

    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many different types on corrupt files
        raise ValueError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {exc})") from exc
    notes, pedal = [], []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        notes += [PerformedNote(n.pitch, float(n.start), float(n.end), n.velocity) for n in inst.notes]
        pedal += [PedalEvent(float(c.time), c.value >= 64) for c in inst.control_changes if c.number == 64]
    notes.sort(key=lambda n: (n.onset, n.pitch))
    pedal.sort(key=lambda e: e.time)
    return Performance(notes=notes, pedal=pedal)


def to_roll(perf: Performance, fps: float, n_frames: int | None = None) -> dict[str, np.ndarray]:
    """Frame-level piano roll, each array (88, n_frames) float32 in [0, 1].

    onset: 1 at the frame holding a key press; frame: 1 while the key is held (key-down, not pedal);
    velocity: velocity/127 on onset frames; sustain: 1 while the key is held or the pedal prolongs it.
    Pitches outside the piano range are dropped.
    """
    if n_frames is None:
        n_frames = int(np.ceil(perf.duration * fps)) + 1
    roll = {k: np.zeros((N_KEYS, n_frames), np.float32) for k in ("onset", "frame", "velocity", "sustain")}
    sounding = perf.sounding_offsets()
    for note, sound_off in zip(perf.notes, sounding):
        if not PIANO_LOW <= note.pitch <= PIANO_HIGH:
            continue
        k = note.pitch - PIANO_LOW
        on = int(round(note.onset * fps))
        if on >= n_frames:
            continue
        off = max(on + 1, int(round(note.offset * fps)))
        s_off = max(off, int(round(sound_off * fps)))
        roll["onset"][k, on] = 1.0
        roll["velocity"][k, on] = note.velocity / 127.0
        roll["frame"][k, on:off] = 1.0
        roll["sustain"][k, on:s_off] = 1.0
    return roll


def from_roll(
    onset: np.ndarray,
    frame: np.ndarray,
    fps: float,
    velocity: np.ndarray | None = None,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.5,
    min_frames: int = 1,
    key_down_threshold: float = 0.0,
) -> Performance:
    """Decode (88, T) onset/frame probabilities into notes: a note starts at a local onset peak above
    threshold and lasts while the frame probability stays above its threshold, until a new rising onset.
    A note shorter than min_frames is lengthened to it. key_down_threshold > 0: an onset peak whose key's frame
    probability stays below it on the onset frame and the min_frames frames after it makes no note at all (noise and
    reverberation fire the onset head alone: 339 of the 358 unexplained extra notes of a supervised K=16 h on
    T_noisy were such 40-ms blips); 0 keeps every onset peak.

    Vectorized over frames (an hour of audio is 180,000 frames x 88 keys): numpy finds each key's candidate
    peaks and stop frames, and Python only walks the candidates.
    """
    notes = []
    onset, frame = np.asarray(onset), np.asarray(frame)
    n_keys, n_frames = onset.shape
    above = onset >= onset_threshold
    rising = np.ones_like(above)
    rising[:, 1:] = onset[:, 1:] >= onset[:, :-1]
    not_falling_next = np.ones_like(above)
    not_falling_next[:, :-1] = onset[:, :-1] >= onset[:, 1:]
    peak = above & rising & not_falling_next
    reonset = above & rising
    released = frame < frame_threshold
    for k in np.flatnonzero(peak.any(axis=1)):
        low, again = np.flatnonzero(released[k]).tolist(), np.flatnonzero(reonset[k]).tolist()
        free_from = 0  # frames before this belong to the previous note of the key
        for t in np.flatnonzero(peak[k]).tolist():
            if t < free_from:
                continue
            if key_down_threshold > 0 and not (frame[k, t:t + max(1, min_frames) + 1] >= key_down_threshold).any():
                continue
            i, j = bisect_left(low, t + 1), bisect_left(again, t + 2)
            end = min(low[i] if i < len(low) else n_frames, again[j] if j < len(again) else n_frames)
            end = max(end, t + min_frames)
            vel = 64 if velocity is None else int(np.clip(round(float(velocity[k, t]) * 127), 1, 127))
            notes.append(PerformedNote(int(k) + PIANO_LOW, t / fps, end / fps, vel))
            free_from = end
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return Performance(notes=notes)


def as_arrays(perf: Performance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intervals (n, 2) seconds, pitches in Hz, velocities) -- the form mir_eval expects."""
    if not perf.notes:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    intervals = np.array([[n.onset, max(n.offset, n.onset + 1e-3)] for n in perf.notes])
    hz = 440.0 * 2.0 ** ((np.array([n.pitch for n in perf.notes]) - 69) / 12.0)
    vel = np.array([n.velocity for n in perf.notes], dtype=float)
    return intervals, hz, vel


__all__ = [
    "PIANO_LOW", "PIANO_HIGH", "N_KEYS", "PerformedNote", "PedalEvent", "Performance",
    "write_midi", "read_midi", "to_roll", "from_roll", "as_arrays", "asdict",
]
