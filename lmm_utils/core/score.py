"""The symbolic score (V) of one excerpt: what a sight-reader sees, in plain data.

Times are in *beats* = quarter notes from the excerpt's first barline, whatever the meter.
The tempo mark is quarter notes per minute. Each excerpt carries a metronome mark and dynamics
markings (taken from the source where it has them, sampled otherwise), so tempo and loudness are
in principle readable from the score alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DYNAMICS = ("pp", "p", "mp", "mf", "f", "ff")


@dataclass(frozen=True)
class ScoreNote:
    pitch: int  # MIDI pitch
    onset: float  # beats from the excerpt start
    duration: float  # beats
    voice: int = 0  # 0 = top part / melody


@dataclass
class ScoreExcerpt:
    id: str  # "<piece_id>-e<index>", file-system safe
    piece_id: str
    collection: str
    meter: str  # e.g. "3/4"
    key: str  # e.g. "G major", "e minor"
    key_fifths: int  # sharps (>0) or flats (<0) of the key signature
    n_bars: int
    bar_beats: float  # beats (quarters) per bar; an excerpt starts on a barline and keeps one meter
    tempo_bpm: float  # metronome mark, quarter notes per minute
    tempo_from_source: bool
    dynamics: list[tuple[float, str]]  # (beat, mark) with mark in DYNAMICS, sorted, first at beat 0
    dynamics_from_source: bool
    notes: list[ScoreNote] = field(default_factory=list)

    @property
    def length_beats(self) -> float:
        return self.n_bars * self.bar_beats

    @property
    def n_voices(self) -> int:
        return 1 + max((n.voice for n in self.notes), default=0)

    def dynamic_at(self, beat: float) -> str:
        mark = self.dynamics[0][1] if self.dynamics else "mf"
        for b, m in self.dynamics:
            if b <= beat + 1e-9:
                mark = m
        return mark

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "notes"}
        d["dynamics"] = [[round(b, 4), m] for b, m in self.dynamics]
        d["notes"] = [[n.pitch, round(n.onset, 4), round(n.duration, 4), n.voice] for n in self.notes]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ScoreExcerpt:
        d = dict(d)
        notes = [ScoreNote(int(p), float(o), float(du), int(v)) for p, o, du, v in d.pop("notes")]
        d["dynamics"] = [(float(b), str(m)) for b, m in d["dynamics"]]
        return cls(notes=notes, **d)
