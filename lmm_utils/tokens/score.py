"""V tokens: a score excerpt as a REMI-like symbolic sequence.

    <bos> num:3 den:4 ks:1 key:G mode:major tempo:96
    bar pos:0 dyn:p p:67 d:12 voice:1 p:43 d:36   pos:12 voice:0 p:71 d:6 ...
    bar ...
    <eos>

Quantization (the round trip is exact up to it, see `quantize`):
  * onsets, durations and dynamics positions on a grid of 1/`ticks_per_beat` beat (default 1/48:
    64th notes and 8th/16th triplets are exact -- every onset and duration of the corpus's excerpts
    is; 1/12 would move the 0.7% of notes that are 32nds or 64ths); a duration longer than
    `max_dur_ticks` (default 4 beats) is written as several `d:` tokens that add up;
  * tempo mark rounded to an integer quarter-note bpm in [tempo_min, tempo_max];
  * bar length comes from the meter (num * 4 / den quarters), at most `max_bar_beats`.
Not tokenized (metadata, not what a reader sees): id, piece_id, collection, *_from_source flags.
Voices: `voice:v` is written only when the voice changes from the previous note's voice (state starts
at 0), which keeps sequences ~25% shorter than a voice token per note.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from lmm_utils.core.score import DYNAMICS, ScoreExcerpt, ScoreNote
from lmm_utils.tokens import Tokenizer

MODES = ("major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "aeolian", "locrian")
DENOMINATORS = (1, 2, 4, 8, 16, 32)
TONICS = tuple(f"{letter}{a}" for letter in "CDEFGAB" for a in ("", "#", "-", "##", "--"))
# Key-signature fifths -> major / minor tonic (music21 spelling), used when the key name is unparsable.
_MAJOR_BY_FIFTHS = dict(zip(range(-7, 8), "C- G- D- A- E- B- F C G D A E B F# C#".split()))
_MINOR_BY_FIFTHS = dict(zip(range(-7, 8), "A- E- B- F C G D A E B F# C# G# D# A#".split()))


class ScoreTokenizer(Tokenizer):
    modality = "V"

    def __init__(
        self,
        ticks_per_beat: int = 48,
        max_bar_beats: int = 12,
        max_dur_ticks: int = 192,
        tempo_min: int = 20,
        tempo_max: int = 300,
        max_voices: int = 8,
        max_numerator: int = 16,
    ):
        self.tpb = int(ticks_per_beat)
        self.max_bar_beats = int(max_bar_beats)
        self.max_dur_ticks = int(max_dur_ticks)
        self.tempo_min, self.tempo_max = int(tempo_min), int(tempo_max)
        self.max_voices = int(max_voices)
        self.max_numerator = int(max_numerator)
        names = (
            [f"num:{n}" for n in range(1, self.max_numerator + 1)]
            + [f"den:{d}" for d in DENOMINATORS]
            + [f"ks:{f}" for f in range(-7, 8)]
            + [f"key:{t}" for t in TONICS] + ["key:?"]
            + [f"mode:{m}" for m in MODES]
            + [f"tempo:{t}" for t in range(self.tempo_min, self.tempo_max + 1)]
            + ["bar"]
            + [f"pos:{i}" for i in range(self.max_bar_beats * self.tpb)]
            + [f"dyn:{m}" for m in DYNAMICS]
            + [f"voice:{v}" for v in range(self.max_voices)]
            + [f"p:{p}" for p in range(128)]
            + [f"d:{i}" for i in range(self.max_dur_ticks + 1)]
        )
        super().__init__(names)

    def config(self) -> dict:
        return dict(
            ticks_per_beat=self.tpb, max_bar_beats=self.max_bar_beats, max_dur_ticks=self.max_dur_ticks,
            tempo_min=self.tempo_min, tempo_max=self.tempo_max, max_voices=self.max_voices,
            max_numerator=self.max_numerator,
        )

    # -- helpers ------------------------------------------------------------------------------
    def _tick(self, beats: float) -> int:
        return int(round(beats * self.tpb))

    def _tempo(self, bpm: float) -> int:
        return min(self.tempo_max, max(self.tempo_min, int(round(bpm))))

    @staticmethod
    def _meter(meter: str) -> tuple[int, int]:
        num, den = meter.split("/")
        return int(num), int(den)

    @staticmethod
    def _parse_key(key: str) -> tuple[str, str]:
        """'G major' -> ('G', 'major'); 'F# minor' -> ('F#', 'minor'); unparsable -> ('?', 'major').
        The tonic's case is not kept: keys are written as music21's `tonic.name` (upper case)."""
        m = re.fullmatch(r"\s*([A-Ga-g])([#-]{0,2})\s+(\w+)\s*", key or "")
        if not m or m.group(3).lower() not in MODES:
            return "?", "major"
        return m.group(1).upper() + m.group(2), m.group(3).lower()

    @staticmethod
    def _key_name(tonic: str, mode: str, fifths: int) -> str:
        """The corpus's spelling: f"{music21 tonic.name} {mode}", e.g. 'B- major', 'E minor'."""
        if tonic == "?":
            tonic = (_MINOR_BY_FIFTHS if mode == "minor" else _MAJOR_BY_FIFTHS).get(fifths, "C")
        return f"{tonic} {mode}"

    # -- the quantization the round trip is exact up to ----------------------------------------
    def quantize(self, s: ScoreExcerpt) -> ScoreExcerpt:
        num, den = self._meter(s.meter)
        bar_beats = num * 4 / den
        tonic, mode = self._parse_key(s.key)
        notes = [ScoreNote(n.pitch, self._tick(n.onset) / self.tpb, self._tick(n.duration) / self.tpb, n.voice)
                 for n in s.notes]
        bar_ticks = self._tick(bar_beats)
        last_bar = max((self._tick(n.onset) // bar_ticks + 1 for n in notes), default=0)
        return replace(
            s, id="decoded", piece_id="", collection="", meter=f"{num}/{den}",
            key=self._key_name(tonic, mode, s.key_fifths), bar_beats=bar_beats,
            n_bars=max(s.n_bars, last_bar), tempo_bpm=float(self._tempo(s.tempo_bpm)), tempo_from_source=False,
            dynamics=[(self._tick(b) / self.tpb, m) for b, m in s.dynamics], dynamics_from_source=False,
            notes=sorted(notes, key=_note_order),
        )

    # -- encode / decode ----------------------------------------------------------------------
    def encode(self, s: ScoreExcerpt) -> list[int]:
        num, den = self._meter(s.meter)
        bar_ticks = self._tick(num * 4 / den)
        if not 1 <= num <= self.max_numerator or den not in DENOMINATORS:
            raise ValueError(f"meter {s.meter} outside the vocabulary")
        if bar_ticks > self.max_bar_beats * self.tpb or bar_ticks <= 0:
            raise ValueError(f"bar of {num * 4 / den} beats exceeds max_bar_beats={self.max_bar_beats}")
        tonic, mode = self._parse_key(s.key)
        out = ["<bos>", f"num:{num}", f"den:{den}", f"ks:{s.key_fifths}", f"key:{tonic}", f"mode:{mode}",
               f"tempo:{self._tempo(s.tempo_bpm)}"]

        # (tick, kind, payload): kind 0 = dynamics mark (before notes at the same position), 1 = note.
        events = [(self._tick(b), 0, m) for b, m in s.dynamics]
        events += [(self._tick(n.onset), 1, n) for n in s.notes]
        events.sort(key=lambda e: (e[0], e[1]) + ((e[2].voice, -e[2].pitch, e[2].duration) if e[1] else (0, 0, 0)))
        n_bars = max([s.n_bars] + [t // bar_ticks + 1 for t, _, _ in events])

        voice, i = 0, 0
        for bar in range(n_bars):
            out.append("bar")
            pos = None
            while i < len(events) and events[i][0] // bar_ticks == bar:
                tick, kind, x = events[i]
                if tick - bar * bar_ticks != pos:
                    pos = tick - bar * bar_ticks
                    out.append(f"pos:{pos}")
                if kind == 0:
                    out.append(f"dyn:{x}")
                else:
                    if x.voice != voice:
                        if not 0 <= x.voice < self.max_voices:
                            raise ValueError(f"voice {x.voice} >= max_voices={self.max_voices}")
                        voice = x.voice
                        out.append(f"voice:{voice}")
                    out.append(f"p:{x.pitch}")
                    out += [f"d:{d}" for d in self._split_duration(self._tick(x.duration))]
                i += 1
        out.append("<eos>")
        return self.ids(out)

    def _split_duration(self, ticks: int) -> list[int]:
        if ticks <= 0:
            return [0]
        parts = [self.max_dur_ticks] * (ticks // self.max_dur_ticks)
        if ticks % self.max_dur_ticks:
            parts.append(ticks % self.max_dur_ticks)
        return parts

    def decode(self, ids: Sequence[int]) -> ScoreExcerpt:
        """Tokens -> excerpt. Tolerant: tokens out of place are skipped, missing header fields get
        defaults (4/4, C major, 120 bpm), a pitch without duration lasts one beat."""
        head = {"num": 4, "den": 4, "ks": 0, "key": "?", "mode": "major", "tempo": 120}
        notes: list[list] = []  # [pitch, onset_tick, dur_ticks or None, voice]
        dynamics: list[tuple[float, str]] = []
        bar, pos, voice = -1, 0, 0
        bar_ticks = None
        last = None  # the note that following d: tokens extend
        for name in self.names(self.strip(ids)):
            kind, _, val = name.partition(":")
            if bar < 0 and kind in head:
                head[kind] = val if kind in ("key", "mode") else int(val)
                continue
            if bar_ticks is None:
                bar_ticks = self._tick(head["num"] * 4 / head["den"])
            if kind == "bar":
                bar, pos, last = bar + 1, 0, None
            elif kind == "pos":
                pos, last = int(val), None
            elif kind == "dyn":
                dynamics.append((max(bar, 0) * bar_ticks + pos, val))
            elif kind == "voice":
                voice = int(val)
            elif kind == "p":
                last = [int(val), max(bar, 0) * bar_ticks + pos, None, voice]
                notes.append(last)
            elif kind == "d" and last is not None:
                last[2] = (last[2] or 0) + int(val)
        tpb = self.tpb
        return ScoreExcerpt(
            id="decoded", piece_id="", collection="", meter=f"{head['num']}/{head['den']}",
            key=self._key_name(head["key"], head["mode"], head["ks"]), key_fifths=head["ks"],
            n_bars=max(bar + 1, 0), bar_beats=head["num"] * 4 / head["den"], tempo_bpm=float(head["tempo"]),
            tempo_from_source=False, dynamics=[(t / tpb, m) for t, m in dynamics], dynamics_from_source=False,
            notes=sorted((ScoreNote(p, on / tpb, (tpb if d is None else d) / tpb, v) for p, on, d, v in notes),
                         key=_note_order),
        )


def _note_order(n: ScoreNote) -> tuple:
    return (n.onset, n.voice, -n.pitch, n.duration)
