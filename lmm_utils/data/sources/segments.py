"""Cutting real recordings into excerpts: performance MIDI segments (motion), audio segments, and the
score measures a stretch of performance plays (from ASAP's downbeats)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from lmm_utils.core.motion import PIANO_HIGH, PIANO_LOW, PedalEvent, Performance, PerformedNote
from lmm_utils.data.sources import AdapterError


def cut_performance(perf: Performance, start: float, end: float) -> Performance:
    """The key presses that start in [start, end), times shifted so the excerpt starts at 0.

    Key releases past the end are cut at the end (the audio segment stops there too). The sustain
    pedal keeps its state at `start` (pressed at 0 if it was down) and is released at the end if down,
    as the built-in pianist does; repeated CC64 values with no state change are dropped.
    """
    length = end - start
    notes = [PerformedNote(n.pitch, round(n.onset - start, 5), round(min(n.offset, end) - start, 5), n.velocity)
             for n in perf.notes if start <= n.onset < end and PIANO_LOW <= n.pitch <= PIANO_HIGH]
    down = False
    for ev in perf.pedal:  # the state when the excerpt starts
        if ev.time > start:
            break
        down = ev.down
    pedal = [PedalEvent(0.0, True)] if down else []
    for ev in perf.pedal:
        if start < ev.time < end and ev.down != down:
            pedal.append(PedalEvent(round(ev.time - start, 5), ev.down))
            down = ev.down
    if down:
        pedal.append(PedalEvent(round(length, 5), False))
    return Performance(notes=sorted(notes, key=lambda n: (n.onset, n.pitch)), pedal=pedal)


def read_audio_segment(path: str | Path, start: float, end: float, sample_rate: int) -> np.ndarray:
    """[start, end) seconds of an audio file, mixed to mono and resampled to `sample_rate` (float32).

    Polyphase resampling (scipy.signal.resample_poly, anti-aliased) at the exact rational ratio,
    e.g. 44.1 kHz -> 16 kHz = 160/441. A segment past the end of the file is an error, not padding:
    it means the metadata (ASAP start/end, annotations) does not fit this recording.
    """

    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"audio file {path} not found")
    info = sf.info(str(path))
    first, last = int(round(start * info.samplerate)), int(round(end * info.samplerate))
    if first < 0 or last > info.frames or last <= first:
        raise AdapterError(f"{path.name}: segment {start:.3f}-{end:.3f} s is outside the file "
                           f"(0-{info.frames / info.samplerate:.3f} s)")
    audio, sr = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != sample_rate:
        ratio = Fraction(sample_rate, sr)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.clip(mono, -1.0, 1.0)


def measure_map(downbeats: list[float], measures: list[int] | None, bars: list[list]) -> list[int] | None:
    """The score measure each downbeat starts, or None when it cannot be known.

    With ASAP's downbeats_score_map (`measures`) it is that map (repeats unfolded, so a measure may
    recur). With only the .txt annotations the downbeats are taken as the measures in order: one per
    measure, or one per measure after a pickup (a first measure shorter than the rest) -- any other
    count means repeats or cuts we cannot resolve without the map.
    """
    if measures is not None:
        return measures if len(measures) == len(downbeats) else None
    n = len(bars)
    if len(downbeats) == n:
        return list(range(n))
    pickup = n > 1 and bars[0][1] < bars[1][1] - 1e-6
    if pickup and len(downbeats) == n - 1:
        return list(range(1, n))
    return None


def aligned_windows(starts: list[int], downbeats: list[float], measures: list[int], n_bars: int) -> list[tuple[int, float, float]]:
    """(first measure, start s, end s) for each excerpt window (first measures `starts`) that the
    performance plays straight through: downbeats k..k+n_bars start measures m..m+n_bars (the last
    one is the downbeat after the window, which ends the excerpt). First occurrence if repeated."""
    out = []
    for m in starts:
        for k in range(len(measures) - n_bars):
            if all(measures[k + j] == m + j for j in range(n_bars + 1)) and downbeats[k + n_bars] > downbeats[k]:
                out.append((m, downbeats[k], downbeats[k + n_bars]))
                break
    return out


__all__ = ["cut_performance", "read_audio_segment", "measure_map", "aligned_windows"]
