"""V as a picture: ScoreExcerpt -> MusicXML (music21) -> SVG (verovio) -> one PNG system + per-note boxes.

The PNG has a fixed height and a width that follows the music, so an image model can read it left to
right. Each box says which score note (index into `ScoreExcerpt.notes`) a notehead belongs to.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import ScoreExcerpt

_SVG_SIZE = re.compile(r'<svg width="([\d.]+)px" height="([\d.]+)px"')
_VIEWBOX = re.compile(r'class="definition-scale"[^>]*viewBox="0 0 ([\d.]+) ([\d.]+)"')
_NOTE_BOX = re.compile(r'<g id="bbox-([^"]+)" class="note bounding-box">\s*<rect x="(-?[\d.]+)" y="(-?[\d.]+)" height="([\d.]+)" width="([\d.]+)"')


@dataclass(frozen=True)
class EngraveConfig:
    height: int = 160  # PNG height in pixels; width follows the music
    scale: int = 40  # verovio zoom; only the relative size of music to margins matters after resizing

    @classmethod
    def from_params(cls, section: dict) -> EngraveConfig:
        # workers: the stage's pool size; pools: which pools it engraves -- neither changes an engraving
        return dataclass_from(cls, {k: v for k, v in section.items() if k not in ("workers", "pools")}, "engrave")


def _exact(beats: float) -> Fraction:
    return Fraction(beats).limit_denominator(48)


def excerpt_to_stream(ex: ScoreExcerpt):
    """A music21 Score: one part per voice, with meter, key, metronome mark and dynamics."""
    # deferred: music21 takes about a second to import; only score parsing needs it
    from music21 import chord, clef, dynamics, key, meter, note, stream, tempo

    score = stream.Score()
    for voice in range(ex.n_voices):
        part = stream.Part()
        part.insert(0, meter.TimeSignature(ex.meter))
        part.insert(0, key.KeySignature(ex.key_fifths))
        voice_notes = sorted((n for n in ex.notes if n.voice == voice), key=lambda n: (n.onset, n.pitch))
        pitches = [n.pitch for n in voice_notes] or [60]
        part.insert(0, clef.TrebleClef() if sum(pitches) / len(pitches) >= 57 else clef.BassClef())
        if voice == 0:
            # Plain text, not a <metronome> glyph: the SMuFL note glyph does not rasterize without its font.
            mark = tempo.TempoText(f"\u2669 = {ex.tempo_bpm:g}")
            mark.placement = "above"
            part.insert(0, mark)
            for beat, value in ex.dynamics:
                part.insert(_exact(beat), dynamics.Dynamic(value))
        # Notes sharing an onset become a chord; an overlap otherwise is cut at the next onset.
        groups: dict[float, list] = {}
        for n in voice_notes:
            groups.setdefault(n.onset, []).append(n)
        onsets = sorted(groups)
        for i, onset in enumerate(onsets):
            group = groups[onset]
            duration = min(n.duration for n in group)
            if i + 1 < len(onsets):
                duration = min(duration, onsets[i + 1] - onset)
            names = [spell(n.pitch, ex.key_fifths, ex.key) for n in group]
            obj = note.Note(names[0]) if len(group) == 1 else chord.Chord(names)
            # Scores store beats rounded to 4 decimals; music21 needs exact tuplet fractions to export them.
            obj.quarterLength = _exact(duration)
            part.insert(_exact(onset), obj)
        score.insert(0, part)
    return score.makeNotation()


def to_musicxml(ex: ScoreExcerpt) -> str:
    # deferred: music21 takes about a second to import; only score parsing needs it
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(excerpt_to_stream(ex)).parse().decode("utf-8")


_SHARPS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")


def spell(midi: int, key_fifths: int, key_name: str = "") -> str:
    """Pitch name for a MIDI number in a key: sharps in sharp keys, flats in flat keys, and a sharp
    leading tone in minor keys (the source's own spelling is not kept in ScoreExcerpt)."""
    pc = midi % 12
    names = _SHARPS if key_fifths >= 0 else _FLATS
    tonic_pc = (7 * key_fifths + (9 if "minor" in key_name else 0)) % 12
    if "minor" in key_name and pc == (tonic_pc - 1) % 12:
        names = _SHARPS
    name = names[pc]
    octave = midi // 12 - 1
    return f"{name}{octave}"


_toolkit = None


def _verovio():
    global _toolkit
    if _toolkit is None:
        import verovio  # deferred: the engraving toolchain loads only where scores are engraved

        verovio.enableLog(verovio.LOG_OFF) if hasattr(verovio, "enableLog") else None
        _toolkit = verovio.toolkit()
    return _toolkit


def engrave(ex: ScoreExcerpt, cfg: EngraveConfig, musicxml: str | None = None) -> tuple[bytes, list[dict], str]:
    """Render one system. Returns (png bytes, note boxes in PNG pixels, the MusicXML used).
    A note split across a barline has one box per notehead, all pointing at the same note."""
    import cairosvg  # deferred: cairosvg loads libcairo at import; only engraving needs it

    xml = musicxml or to_musicxml(ex)
    tk = _verovio()
    tk.setOptions({
        "breaks": "none", "adjustPageHeight": True, "adjustPageWidth": True, "header": "none",
        "footer": "none", "scale": cfg.scale, "svgBoundingBoxes": True, "pageMarginTop": 30,
        "pageMarginBottom": 30, "pageMarginLeft": 30, "pageMarginRight": 30,
    })
    if not tk.loadData(xml):
        raise ValueError(f"verovio could not read the MusicXML of {ex.id}")
    svg = tk.renderToSVG(1)
    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_height=cfg.height)
    return png, _note_boxes(ex, tk, svg, cfg.height), xml


def _note_boxes(ex: ScoreExcerpt, tk, svg: str, height: int) -> list[dict]:
    width_px, height_px = map(float, _SVG_SIZE.search(svg).groups())
    vb_w, vb_h = map(float, _VIEWBOX.search(svg).groups())
    sx = (width_px / vb_w) * (height / height_px)
    sy = (height_px / vb_h) * (height / height_px)
    onset_of = {}
    for event in tk.renderToTimemap():
        for note_id in event.get("on", []):
            onset_of[note_id] = float(event["qstamp"])
    index = {(round(n.onset, 3), n.pitch): i for i, n in enumerate(ex.notes)}
    boxes = []
    for note_id, x, y, h, w in _NOTE_BOX.findall(svg):
        pitch = tk.getMIDIValuesForElement(note_id).get("pitch")
        onset = onset_of.get(note_id)
        idx = index.get((round(onset, 3), pitch)) if onset is not None else None
        if idx is None and onset is not None:  # a tied continuation: the note that is still sounding
            idx = next((i for i, n in enumerate(ex.notes)
                        if n.pitch == pitch and n.onset < onset - 1e-3 < n.onset + n.duration), None)
        x, y, h, w = float(x), float(y), float(h), float(w)
        boxes.append({
            "note": idx, "pitch": pitch, "onset": onset,
            "x0": round(x * sx, 1), "y0": round(y * sy, 1), "x1": round((x + w) * sx, 1), "y1": round((y + h) * sy, 1),
        })
    return sorted(boxes, key=lambda b: (b["x0"], b["y0"]))
