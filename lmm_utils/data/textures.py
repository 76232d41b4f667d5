"""Keyboard textures: how a pianist plays an ensemble score, and how dense the benchmark's scores are.

Folk melodies and four-part chorales have no broken-chord accompaniment. A pianist playing an ensemble piece at
the keyboard turns the lower parts' held chords into moving figures. `arpeggiate` does that on the score
itself (so V says what M plays): at each onset where two or more lower-part notes start together and are held
for at least two figure steps, the chord is replaced by an Alberti-style figure of `step`-beat notes through
its pitches (low, high, middle, high, ...), written in the voice of the chord's lowest note; the top part (voice 0) is kept
as it is. Rolled (spread) chords and pedalling are the pianist's (data/pianist.py).

Voices sit in the middle of the keyboard: the corpus's notes span MIDI 38-91 (D2-G6), 62 % of them within C3-B4,
where piano writing uses all 88 keys (the outside check's keyboard works: 7 % below C3, 30 % above B4; 55c8016's supervised h
finds 16-38 % of the notes in C2-B2 and 8-20 % of those from C6 up there, README "The benchmark data"). `keyboard_register`
plays an excerpt where a pianist's hands go: the lowest part doubled an octave below (left-hand octaves), the top
part doubled an octave above (right-hand octaves), or the whole excerpt moved one or two octaves, each as likely,
always within the keyboard (A0-C8).

`texture_stats` measures what the data card reports per collection: notes per second at the excerpt's tempo mark
and the polyphony at each note onset (the notes sounding then, the new one included).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from lmm_utils.core.motion import PIANO_HIGH, PIANO_LOW
from lmm_utils.core.score import ScoreExcerpt, ScoreNote

MIN_VOICES = 3  # a melody over a chord of at least two lower parts: what an accompaniment figure needs
MAX_POLYPHONY_BIN = 8  # the histogram's last bin: 8 or more notes sounding
REGISTER_MODES = ("double_below", "double_above", "shift")
REGISTER_SHIFTS = (-24, -12, 12, 24)  # semitones: whole octaves, so the key signature stays


def figure_pitches(chord: list[int], n_steps: int) -> list[int]:
    """Alberti order through the chord's pitches: low, high, middle(s), high, ... (2 notes: low, high)."""
    chord = sorted(set(chord))
    if len(chord) == 1:
        return chord * n_steps
    cycle = [chord[0], chord[-1]] if len(chord) == 2 else [chord[0], chord[-1], *chord[1:-1], chord[-1]]
    return [cycle[i % len(cycle)] for i in range(n_steps)]


def arpeggiate(notes: list[ScoreNote], step: float) -> list[ScoreNote]:
    """The lower parts' held chords as figures of `step`-beat notes (see the module docstring); every other
    note unchanged. Deterministic: whether an excerpt gets it is the caller's draw."""
    if step <= 0:
        raise ValueError(f"split.excerpts.arpeggiate_step must be positive, got {step}")
    melody = [n for n in notes if n.voice == 0]
    lower: dict[float, list[ScoreNote]] = {}
    for n in notes:
        if n.voice > 0:
            lower.setdefault(n.onset, []).append(n)
    out = list(melody)
    for onset, group in sorted(lower.items()):
        span = min(n.duration for n in group)
        n_steps = int(np.floor(span / step + 1e-6))
        if len({n.pitch for n in group}) < 2 or n_steps < 2:
            out += group
            continue
        bass_voice = min(group, key=lambda n: n.pitch).voice
        for i, pitch in enumerate(figure_pitches([n.pitch for n in group], n_steps)):
            out.append(ScoreNote(pitch, round(onset + i * step, 4), round(step, 4), bass_voice))
        # what a chord note held beyond the figure's span would still sound is left out (a keyboard reduction)
    return _struck_once(out)  # a figure note doubling the melody is struck once


def _struck_once(notes: list[ScoreNote]) -> list[ScoreNote]:
    """In the project's note order (onset, voice, -pitch: tokens, corpus), one note per (pitch, onset)."""
    seen, unique = set(), []
    for n in sorted(notes, key=lambda n: (n.onset, n.voice, -n.pitch)):
        if (n.pitch, n.onset) not in seen:
            seen.add((n.pitch, n.onset))
            unique.append(n)
    return unique


def octave_doubled(notes: list[ScoreNote], voice: int, octaves: int) -> list[ScoreNote]:
    """`notes` plus each note of `voice` again `octaves` octaves away (in its voice), where the keyboard has the key
    and no note of the excerpt already starts on that key then. The excerpt's own notes stay as they are (a unison
    of two parts is kept, as in every other excerpt)."""
    taken = {(n.pitch, n.onset) for n in notes}
    doubles = []
    for n in notes:
        key = (n.pitch + 12 * octaves, n.onset)
        if n.voice == voice and PIANO_LOW <= key[0] <= PIANO_HIGH and key not in taken:
            taken.add(key)
            doubles.append(replace(n, pitch=key[0]))
    return sorted(list(notes) + doubles, key=lambda n: (n.onset, n.voice, -n.pitch))  # the project's note order


def _outer_voice(notes: list[ScoreNote], lowest: bool) -> int:
    """The part lowest (or highest) on average: the bass (or the top part); a single melody is both."""
    by_voice: dict[int, list[int]] = {}
    for n in notes:
        by_voice.setdefault(n.voice, []).append(n.pitch)
    sign = 1.0 if lowest else -1.0
    return min(by_voice, key=lambda v: (sign * float(np.mean(by_voice[v])), v))


def register_variant(notes: list[ScoreNote], mode: str, rng: np.random.Generator) -> list[ScoreNote]:
    """One of REGISTER_MODES applied to an excerpt's notes (the module docstring). "shift" draws its octaves from
    the shifts that keep every note on the keyboard (none: the notes unchanged)."""
    if mode == "double_below":
        return octave_doubled(notes, _outer_voice(notes, lowest=True), -1)
    if mode == "double_above":  # not always voice 0: in some madrigals and masses a middle part sits highest
        return octave_doubled(notes, _outer_voice(notes, lowest=False), 1)
    if mode == "shift":
        lo, hi = min(n.pitch for n in notes), max(n.pitch for n in notes)
        shifts = [s for s in REGISTER_SHIFTS if lo + s >= PIANO_LOW and hi + s <= PIANO_HIGH]
        if not shifts:
            return list(notes)
        shift = shifts[int(rng.integers(len(shifts)))]
        return [replace(n, pitch=n.pitch + shift) for n in notes]
    raise ValueError(f"register mode must be one of {REGISTER_MODES}, got {mode!r}")


def keyboard_register(excerpt: ScoreExcerpt, prob: float, rng: np.random.Generator) -> ScoreExcerpt:
    """`excerpt` in a pianist's register (one of REGISTER_MODES, each as likely) with probability `prob`.
    Draws one number from `rng` when prob > 0, and the mode (and a shift) only for an excerpt that gets one."""
    if prob <= 0 or not excerpt.notes or rng.random() >= prob:
        return excerpt
    mode = REGISTER_MODES[int(rng.integers(len(REGISTER_MODES)))]
    return replace(excerpt, notes=register_variant(excerpt.notes, mode, rng))


def keyboard_texture(excerpt: ScoreExcerpt, prob: float, step: float, rng: np.random.Generator) -> ScoreExcerpt:
    """`excerpt` with its lower parts arpeggiated, with probability `prob` where it has MIN_VOICES parts or more.
    Draws one number from `rng` only when prob > 0 and the excerpt qualifies."""
    if prob <= 0 or excerpt.n_voices < MIN_VOICES or rng.random() >= prob:
        return excerpt
    return replace(excerpt, notes=arpeggiate(excerpt.notes, step))


def texture_stats(excerpt: ScoreExcerpt) -> tuple[float, list[int]]:
    """(notes per second at the tempo mark, the polyphony at each note onset)."""
    seconds = excerpt.length_beats * 60.0 / excerpt.tempo_bpm
    notes = excerpt.notes
    onsets = np.array([n.onset for n in notes])
    ends = np.array([n.onset + n.duration for n in notes])
    polyphony = [int(np.sum((onsets <= t + 1e-6) & (ends > t + 1e-6))) for t in onsets]
    return len(notes) / seconds if seconds > 0 else 0.0, polyphony


def collection_textures(excerpts: list[ScoreExcerpt]) -> dict[str, dict]:
    """Per collection: excerpts, notes/s (mean, median, 90th percentile, histogram in 2-notes/s bins) and the
    polyphony histogram at note onsets (bins 1..MAX_POLYPHONY_BIN, the last = that many or more)."""
    by_collection: dict[str, list[ScoreExcerpt]] = {}
    for e in excerpts:
        by_collection.setdefault(e.collection, []).append(e)
    out = {}
    for collection, group in sorted(by_collection.items()):
        rates, poly = [], []
        for e in group:
            rate, p = texture_stats(e)
            rates.append(rate)
            poly += p
        rates_arr = np.array(rates)
        poly_arr = np.clip(np.array(poly, int), 1, MAX_POLYPHONY_BIN)
        rate_bins = np.clip((rates_arr // 2).astype(int) * 2, 0, 30)
        out[collection] = {
            "excerpts": len(group),
            "notes_per_s": {"mean": round(float(rates_arr.mean()), 3), "median": round(float(np.median(rates_arr)), 3),
                            "p90": round(float(np.percentile(rates_arr, 90)), 3)},
            "notes_per_s_hist": {str(int(b)): int(np.sum(rate_bins == b)) for b in sorted(set(rate_bins.tolist()))},
            "polyphony_mean": round(float(np.mean(poly)), 3) if poly else 0.0,
            "polyphony_hist": {str(k): int(np.sum(poly_arr == k)) for k in range(1, MAX_POLYPHONY_BIN + 1)},
        }
    return out
