"""Using trained h and g on files from outside the benchmark: what the `lmm` command line runs.

- `AudioReader`: any sample rate, mono or stereo (mixed down), read window by window (bounded memory),
  resampled to the features' rate (librosa / soxr). soundfile first; librosa/audioread as a fallback for
  formats libsndfile lacks.
- `transcribe_file`: h over windows of `chunk` seconds plus `margin` seconds of context either side; a
  window keeps the notes whose onset lies in its core, and a note still held at its window's right edge
  takes its release from the next window (same key, onset within 2 frames). Windows exist because h
  peak-normalises its input and sees a whole excerpt at once: memory stays bounded by the window, and
  each note is decoded away from the artificial start/end of a window.
- `score_from_file`: MusicXML / MIDI / ABC / kern -> music21 -> corpus.extract_piece -> one whole-piece
  ScoreExcerpt (the score's tempo mark or a default, its dynamics or mf), which g can perform.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.filecheck import DEFAULT_MAX_MB, ScoreFileError, check_score_file
from lmm_utils.core.motion import PIANO_HIGH, PIANO_LOW, Performance, PerformedNote, read_midi
from lmm_utils.core.score import ScoreExcerpt, ScoreNote
from lmm_utils.data.corpus import WorkRef, extract_piece
from lmm_utils.data.excerpts import nominal_bar_length
from lmm_utils.models.harmonics import suppress_harmonics
from lmm_utils.models.transcriber import DecodeConfig, decode

SILENCE_PEAK = 1e-4  # -80 dBFS: h peak-normalises its input, so digital silence would read as full-scale noise
CLIP_LEVEL = 0.999  # |sample| at which a recording counts as clipped (float scale, 1.0 = full scale)
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".mid", ".midi", ".abc", ".krn")


class InputError(ValueError):
    """A file that cannot be used (unreadable, unsupported, empty); the message names the file."""


# --- audio ------------------------------------------------------------------------------------------------

class AudioReader:
    """Windowed reads of one audio file as mono float32 at `target_sr`."""

    def __init__(self, path: str | Path, target_sr: int = 16000):

        self.path, self.target_sr = Path(path), int(target_sr)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        try:
            info = sf.info(str(self.path))
            self.backend, self.sr, self.duration = "soundfile", int(info.samplerate), float(info.duration)
        except Exception:  # not a libsndfile format: try librosa's audioread fallback (mp3, m4a...)
            self.backend = "librosa"
            try:

                # deferred: librosa's first import compiles with numba (seconds); only this path needs it
                import librosa

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.sr = int(librosa.get_samplerate(str(self.path)))
                    self.duration = float(librosa.get_duration(path=str(self.path)))
            except Exception as exc:
                raise InputError(f"{self.path}: not a readable audio file ({type(exc).__name__}: {exc})") from None
        if self.duration <= 0:
            raise InputError(f"{self.path}: audio file holds no samples")
        self.clipped_samples = self.samples_read = 0

    def _count_clipping(self, peak_per_sample: np.ndarray) -> None:
        # at or next to full scale, before any resampling (overlapping windows count twice, in both terms)
        self.clipped_samples += int(np.count_nonzero(peak_per_sample >= CLIP_LEVEL))
        self.samples_read += len(peak_per_sample)

    def read(self, start: float, duration: float) -> np.ndarray:
        """Mono float32 samples of [start, start + duration) seconds at target_sr."""
        import librosa  # deferred: librosa's first import compiles with numba (seconds); only this path needs it

        if self.backend == "soundfile":

            with sf.SoundFile(str(self.path)) as f:
                f.seek(int(round(start * self.sr)))
                x = f.read(int(round(duration * self.sr)), dtype="float32", always_2d=True)
            self._count_clipping(np.abs(x).max(axis=1) if len(x) else x[:, 0])
            mono = x.mean(axis=1)
        else:

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mono, _ = librosa.load(str(self.path), sr=None, mono=True, offset=start, duration=duration)
            self._count_clipping(np.abs(mono))
        if self.sr != self.target_sr and len(mono):
            mono = librosa.resample(mono, orig_sr=self.sr, target_sr=self.target_sr)
        return np.asarray(mono, np.float32)


@dataclass(frozen=True)
class ChunkConfig:
    chunk: float = 20.0  # seconds of each window whose notes are kept
    margin: float = 2.0  # seconds of context either side, decoded but not kept


def windows(duration: float, cfg: ChunkConfig) -> list[tuple[float, float, float, float]]:
    """(read start, read end, core start, core end) per window, covering [0, duration)."""
    out, core = [], 0.0
    while core < duration:
        core_end = min(core + cfg.chunk, duration)
        out.append((max(0.0, core - cfg.margin), min(duration, core_end + cfg.margin), core, core_end))
        core = core_end
    return out


def transcribe_file(h, path: str | Path, cfg: ChunkConfig = ChunkConfig(), decode_cfg=None,
                    progress: bool = False, stats: dict | None = None) -> Performance:
    """h (methods.wrappers.HModel: .feat, .logits(logmel)) over a recording of any length -> one Performance.

    A note kept from one window that is still held at the window's right edge is extended through the next
    window's frame posterior for its key (while key-down stays above threshold and no new onset peaks),
    not by matching decoded notes: the next window sees the note without its attack. Each window's onset posterior
    goes through models.harmonics.suppress_harmonics (decode_cfg.harmonic_ratio) once, before both uses of it.
    """


    dc = decode_cfg or DecodeConfig()
    feat: FeatureConfig = h.feat
    reader = AudioReader(path, feat.sample_rate)
    notes: list[PerformedNote] = []
    open_idx: list[int] = []  # notes still held at the right edge of the previous window
    wins = windows(reader.duration, cfg)
    bar = tqdm(wins, desc=Path(path).name, disable=not progress or len(wins) < 3, leave=False)
    for w, (start, end, core0, core1) in enumerate(bar):
        last = w == len(wins) - 1
        audio = reader.read(start, end - start)
        if len(audio) == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
            open_idx = []  # silence ends every held note
            continue
        out = h.logits(log_mel(audio, feat))
        frame = torch.sigmoid(out["frame"]).reshape(-1, out["frame"].shape[-1]).numpy()
        onset = torch.sigmoid(out["onset"]).reshape(frame.shape).numpy()
        if dc.harmonic_ratio > 0:  # onsets of partials heard as notes dropped, here for the held-note rule too
            onset = suppress_harmonics(onset, dc.harmonic_ratio)
            out = {**out, "onset": torch.logit(torch.from_numpy(np.clip(onset, 1e-7, 1 - 1e-7)))}
        n_frames = frame.shape[1]
        still_open = []
        for i in open_idx:
            n = notes[i]
            k, j0 = n.pitch - PIANO_LOW, int(round((n.offset - start) * feat.fps))
            j = max(j0, 0)
            while j < n_frames and frame[k, j] >= dc.frame_threshold and not (
                    j > j0 and onset[k, j] >= dc.onset_threshold and onset[k, j] >= onset[k, j - 1]):
                j += 1
            notes[i] = PerformedNote(n.pitch, n.onset, max(n.offset, start + j / feat.fps), n.velocity)
            if j >= n_frames and not last:
                still_open.append(i)
        for m in decode(out, feat.fps, replace(dc, harmonic_ratio=0.0)).notes:  # suppressed above
            on, off = m.onset + start, m.offset + start
            if core0 <= on < core1:
                notes.append(PerformedNote(m.pitch, on, off, m.velocity))
                if m.offset * feat.fps >= n_frames - 1 and not last:  # decoded up to the window's end
                    still_open.append(len(notes) - 1)
        open_idx = still_open
    notes.sort(key=lambda n: (n.onset, n.pitch))
    if stats is not None:
        stats.update(duration=reader.duration, sample_rate=reader.sr,
                     clipped_fraction=reader.clipped_samples / max(reader.samples_read, 1))
    return Performance(notes=notes)


# --- scores -----------------------------------------------------------------------------------------------

def score_from_file(path: str | Path, tempo_bpm: float | None = None, default_tempo: float = 100.0,
                    default_dynamic: str = "mf", max_mb: float | None = DEFAULT_MAX_MB):
    """A score file -> one whole-piece ScoreExcerpt (+ a list of notes on what was assumed).

    Tempo: `tempo_bpm` if given, else the score's first metronome mark, else `default_tempo` (quarter notes
    per minute). Dynamics: the score's marks, with `default_dynamic` from the start until the first one.
    Meter: the first bar's (g reads metrical position from it; later meter changes are not followed).
    """
    # deferred: music21 takes about a second to import; only score parsing needs it
    from music21 import converter, stream


    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() not in SCORE_SUFFIXES:
        raise InputError(f"{path}: unsupported score format {path.suffix!r} (use one of {', '.join(SCORE_SUFFIXES)})")
    try:
        check_score_file(path, max_mb)
    except ScoreFileError as exc:
        raise InputError(f"{path}: {exc}") from None
    notes_out: list[str] = []
    try:
        obj = converter.parse(str(path))
        if isinstance(obj, stream.Opus):
            if not len(obj.scores):
                raise ValueError("opus holds no score")
            if len(obj.scores) > 1:
                notes_out.append(f"the file holds {len(obj.scores)} pieces; performing the first")
            obj = obj.scores[0]
        piece = extract_piece(WorkRef("cli", str(path.resolve()), None, user=True), obj)
    except InputError:
        raise
    except Exception as exc:  # music21 raises many exception types on bad input
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(f"{path}: not a readable score ({type(exc).__name__}: {msg})") from None
    start = float(piece.bars[0][0])
    meter = piece.bars[0][2]
    notes = [ScoreNote(int(p), round(on - start, 4), round(d, 4), int(v)) for p, on, d, v in piece.notes
             if PIANO_LOW <= p <= PIANO_HIGH and on >= start - 1e-6]
    if len(notes) < len(piece.notes):
        notes_out.append(f"{len(piece.notes) - len(notes)} notes outside the piano's range were dropped")
    if not notes:
        raise InputError(f"{path}: no playable notes")
    text_bpm = None if piece.tempo_bpm else tempo_from_text(obj)
    if tempo_bpm is not None:
        bpm, from_source = float(tempo_bpm), False
    elif piece.tempo_bpm:
        bpm, from_source = float(piece.tempo_bpm), True
    elif text_bpm:
        bpm, from_source = text_bpm, True
        notes_out.append(f"tempo {bpm:g} read from the text mark in the score")
    else:
        bpm, from_source = float(default_tempo), False
        notes_out.append(f"no tempo mark: {bpm:g} quarter notes per minute (set one with --tempo)")
    dyn = [(round(o - start, 4), m) for o, m in piece.dynamics if o - start >= -1e-6]
    if not dyn or dyn[0][0] > 1e-6:
        dyn = [(0.0, default_dynamic)] + dyn
        if len(dyn) == 1:
            notes_out.append(f"no dynamics marks: {default_dynamic} throughout")
    slug = re.sub(r"[^A-Za-z0-9]+", "_", path.stem).strip("_") or "score"
    score = ScoreExcerpt(id=slug, piece_id=slug, collection="cli", meter=meter, key=piece.key,
                         key_fifths=piece.key_fifths, n_bars=len(piece.bars), bar_beats=nominal_bar_length(meter),
                         tempo_bpm=bpm, tempo_from_source=from_source, dynamics=dyn,
                         dynamics_from_source=bool(piece.dynamics), notes=notes)
    return score, notes_out


_TEMPO_TEXT = re.compile(r"(?:\u2669|q|quarter)\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def tempo_from_text(score) -> float | None:
    """A metronome mark written as text ("\u2669 = 96", as the project's engravings write it): quarter bpm."""
    # deferred: music21 takes about a second to import; only score parsing needs it
    from music21 import expressions, tempo

    for el in score.recurse().getElementsByClass((expressions.TextExpression, tempo.TempoText)):
        m = _TEMPO_TEXT.search(str(getattr(el, "content", None) or getattr(el, "text", "") or ""))
        if m and 20.0 <= float(m.group(1)) <= 400.0:
            return float(m.group(1))
    return None


# --- note lists for `lmm evaluate` ------------------------------------------------------------------------

def read_notes(path: str | Path, pitch_unit: str = "auto") -> Performance:
    """A MIDI file, or a TSV/CSV/TXT of onset offset pitch [velocity] (seconds; an optional header line;
    # comments). pitch_unit: midi, hz, or auto (MIDI when every pitch is an integer in 0..127, else Hz)."""

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".mid", ".midi"):
        try:
            return read_midi(path)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if suffix not in (".tsv", ".txt", ".csv"):
        raise InputError(f"{path}: unsupported note file {suffix!r} (MIDI, or .tsv/.csv/.txt: onset offset pitch [velocity])")
    rows = []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None
    for k, line in enumerate(text.splitlines()):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in re.split(r"[\t,; ]+", line) if p]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            if not rows:
                continue  # header lines before the first row of numbers
            raise InputError(f"{path}:{k + 1}: not numbers: {line!r}") from None
        if len(vals) < 3:
            raise InputError(f"{path}:{k + 1}: need onset offset pitch [velocity], got {line!r}")
        rows.append(vals[:4])
    pitches = np.array([r[2] for r in rows], float)
    if pitch_unit == "auto":
        pitch_unit = "midi" if len(pitches) == 0 or (np.all(pitches == np.round(pitches)) and np.all((pitches >= 0) & (pitches <= 127))) else "hz"
    if pitch_unit == "hz":
        if np.any(pitches <= 0):
            raise InputError(f"{path}: pitches in Hz must be > 0")
        pitches = np.round(69 + 12 * np.log2(pitches / 440.0))
    notes = [PerformedNote(int(p), float(r[0]), float(max(r[1], r[0])), int(np.clip(round(r[3]), 1, 127)) if len(r) > 3 else 64)
             for r, p in zip(rows, pitches)]
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return Performance(notes=notes)


__all__ = ["InputError", "AudioReader", "ChunkConfig", "windows", "transcribe_file", "score_from_file", "read_notes",
           "SILENCE_PEAK"]
