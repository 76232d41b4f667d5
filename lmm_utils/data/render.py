"""Motion -> audio with FluidSynth, under randomized recording conditions.

Every render gets a fresh FluidSynth instance, so an excerpt's audio is a function of its performance and
conditions alone, bit for bit. Measured: a reused synth renders the same excerpt differently (by up to 5 %
of peak) after a render with another preset or with reverb, since neither system_reset nor silence clears
that state; and FluidSynth's 16-bit output adds dither whose phase depends on every sample rendered before.
With dynamic sample loading (only the selected preset's samples are read) a fresh synth costs 10-30 ms,
against ~0.2 s for the fluidsynth command line. Events are scheduled sample-accurately by rendering the
gaps between them, and the audio is read as float (no dither).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from lmm_utils.core.io import write_jsonl
from lmm_utils.core.motion import Performance

SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/share/sounds/sf3")
APT_PACKAGES = "fluidsynth fluid-soundfont-gm timgm6mb-soundfont csound-soundfont"
INSTALL_HINT = (
    f"Install them with `sudo apt-get install {APT_PACKAGES}` (Debian/Ubuntu), or with conda: "
    "`conda env create -f environment.yml` (fluidsynth from conda-forge) and put .sf2 files in a folder "
    "listed in LMM_SOUNDFONT_PATH."
)


class MissingSystemDependency(RuntimeError):
    """A system library or data file that pip cannot install is missing."""


@dataclass(frozen=True)
class RecordingConditions:
    soundfont: str  # file name (looked up in the soundfont folders) or a path
    preset: int = 0  # General MIDI program; 0 = acoustic grand
    bank: int = 0
    reverb_room: float = 0.2  # FluidSynth reverb room size, 0..1
    reverb_level: float = 0.0  # FluidSynth reverb wet level, 0..1
    gain_db: float = 0.0  # level change applied after synthesis
    eq_tilt_db: float = 0.0  # spectral tilt: dB at the top of the band relative to the bottom
    noise_snr_db: float | None = None  # background noise (None: none)
    noise_seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def find_soundfont(name: str) -> Path:
    """Resolve a soundfont file name to a path, with an installation hint when it is missing."""
    if os.path.sep in name and Path(name).is_file():
        return Path(name)
    dirs = [d for d in os.environ.get("LMM_SOUNDFONT_PATH", "").split(os.pathsep) if d] + list(SOUNDFONT_DIRS)
    for d in dirs:
        candidate = Path(d) / name
        if candidate.is_file():
            return candidate
    raise MissingSystemDependency(f"Soundfont {name!r} not found in {dirs}. {INSTALL_HINT}")


def check_fluidsynth() -> None:
    """Fail early, with the fix, if the FluidSynth shared library is not installed."""
    if ctypes.util.find_library("fluidsynth") is None and shutil.which("fluidsynth") is None:
        raise MissingSystemDependency(f"The FluidSynth library (libfluidsynth) is not installed. {INSTALL_HINT}")
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; loads libfluidsynth at import)
    except ImportError as exc:
        raise MissingSystemDependency(f"pyfluidsynth could not load libfluidsynth ({exc}). {INSTALL_HINT}") from exc


@functools.cache
def _float_writer():
    """libfluidsynth's fluid_synth_write_float (pyfluidsynth wraps only the dithered 16-bit writer)."""
    # deferred: pyfluidsynth loads libfluidsynth at import; only rendering needs it (and says how to install it)
    import fluidsynth

    return fluidsynth.cfunc("fluid_synth_write_float", ctypes.c_int, ("synth", ctypes.c_void_p, 1),
                            ("len", ctypes.c_int, 1), ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                            ("lincr", ctypes.c_int, 1), ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1),
                            ("rincr", ctypes.c_int, 1))


class FluidRenderer:
    """Renders performances to mono float32 through FluidSynth, a fresh synth per render (see above)."""

    def __init__(self, sample_rate: int = 16000):
        check_fluidsynth()
        self.sample_rate = int(sample_rate)

    def _new_synth(self, cond: RecordingConditions):
        # deferred: pyfluidsynth loads libfluidsynth at import; only rendering needs it (and says how to install it)
        import fluidsynth

        path = find_soundfont(cond.soundfont)
        fs = fluidsynth.Synth(samplerate=float(self.sample_rate), gain=1.0)
        fs.setting("synth.chorus.active", 0)
        fs.setting("synth.dynamic-sample-loading", 1)
        sfid = fs.sfload(str(path))
        if sfid < 0:
            fs.delete()
            raise ValueError(f"FluidSynth could not load soundfont {path} (corrupt or not a soundfont?)")
        if fs.program_select(0, sfid, cond.bank, cond.preset) != 0:
            fs.delete()
            raise ValueError(f"Soundfont {cond.soundfont!r} has no preset {cond.bank}:{cond.preset}")
        fs.set_reverb(roomsize=cond.reverb_room, damping=0.3, width=0.8, level=cond.reverb_level)
        return fs

    @staticmethod
    def _samples(fs, n: int) -> np.ndarray:
        """n stereo frames, interleaved, on the int16 scale the conditions expect."""
        buf = np.zeros(2 * n, np.float32)
        _float_writer()(fs.synth, n, buf.ctypes.data, 0, 2, buf.ctypes.data, 1, 2)
        return buf * 32768.0

    def render(self, perf: Performance, cond: RecordingConditions, tail: float = 1.0) -> np.ndarray:
        """Render `perf` and return mono float32 audio of length (duration + tail) seconds."""
        sr = self.sample_rate
        fs = self._new_synth(cond)
        try:
            events = []  # (sample, order, kind, a, b); note-offs sort before note-ons at the same time
            for n in perf.notes:
                events.append((int(round(n.onset * sr)), 1, "on", n.pitch, n.velocity))
                events.append((int(round(n.offset * sr)), 0, "off", n.pitch, 0))
            for p in perf.pedal:
                events.append((int(round(p.time * sr)), 0, "cc", 64, 127 if p.down else 0))
            events.sort()
            total = int(round((perf.duration + tail) * sr))
            chunks, cursor = [], 0
            for sample, _, kind, a, b in events:
                if sample > cursor:
                    chunks.append(self._samples(fs, sample - cursor))
                    cursor = sample
                if kind == "on":
                    fs.noteon(0, a, b)
                elif kind == "off":
                    fs.noteoff(0, a)
                else:
                    fs.cc(0, a, b)
            if total > cursor:
                chunks.append(self._samples(fs, total - cursor))
        finally:
            fs.delete()
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
        audio = stereo.mean(axis=1)
        return apply_conditions(audio, cond, sr)


def apply_conditions(audio: np.ndarray, cond: RecordingConditions, sample_rate: int) -> np.ndarray:
    """Post-synthesis part of the recording conditions: EQ tilt, level, background noise."""
    out = audio.astype(np.float32)
    if cond.eq_tilt_db:
        spec = np.fft.rfft(out)
        freqs = np.fft.rfftfreq(len(out), 1.0 / sample_rate)
        # Linear-in-log-frequency tilt between 50 Hz and Nyquist, pivoting at 1 kHz.
        octaves = np.log2(np.clip(freqs, 50.0, None) / 1000.0) / np.log2(sample_rate / 2 / 50.0)
        spec *= 10.0 ** (cond.eq_tilt_db * octaves / 20.0)
        out = np.fft.irfft(spec, n=len(out)).astype(np.float32)
    out *= 10.0 ** (cond.gain_db / 20.0)
    if cond.noise_snr_db is not None and len(out):
        rng = np.random.default_rng(cond.noise_seed)
        signal_power = float(np.mean(out**2)) + 1e-12
        noise = rng.standard_normal(len(out)).astype(np.float32)
        noise = noise + 4.0 * lfilter([0.02], [1.0, -0.98], noise)  # add low-frequency rumble to the hiss
        noise *= np.sqrt(signal_power / (np.mean(noise**2) * 10.0 ** (cond.noise_snr_db / 10.0)))
        out = out + noise.astype(np.float32)
    peak = float(np.max(np.abs(out), initial=0.0))
    if peak > 0.999:  # the recorder's limiter: never write clipped int16
        out *= 0.999 / peak
    return out


def record_audio_results(pool: str, results: list[tuple[str, float, str | None]], conditions: Iterable[tuple[str, dict]],
                         audio_dir: Path, summary: dict, failed: list[dict]) -> None:
    """Bookkeeping after a pool's audio is written: failures with reasons, conditions.jsonl for the
    excerpts that succeeded (the list training code reads), hours and counts for the data card."""
    ok = {i for i, _, err in results if err is None}
    failed += [{"id": i, "pool": pool, "reason": err} for i, _, err in results if err]
    write_jsonl(({"id": i, "conditions": c} for i, c in conditions if i in ok), audio_dir / "conditions.jsonl")
    summary[f"{pool}_audio_hours"] = round(sum(s for _, s, _ in results) / 3600, 4)
    summary[f"{pool}_rendered"] = len(ok)
