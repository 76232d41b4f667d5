"""Motion -> audio with FluidSynth, under randomized recording conditions.

One `FluidRenderer` per worker process keeps its synthesizer and soundfonts loaded, so a render
costs only the synthesis itself (the fluidsynth command line reloads the soundfont at every call,
~0.2 s). Events are scheduled sample-accurately by rendering the gaps between them.
"""
from __future__ import annotations

import ctypes.util
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from .motion import Performance

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


class FluidRenderer:
    """A FluidSynth instance with soundfonts loaded once; renders performances to mono float32."""

    def __init__(self, sample_rate: int = 16000):
        check_fluidsynth()
        import fluidsynth

        self.sample_rate = int(sample_rate)
        self._synth = fluidsynth.Synth(samplerate=float(self.sample_rate), gain=1.0)
        self._synth.setting("synth.chorus.active", 0)
        self._sfids: dict[Path, int] = {}
        self._samples_done = 0  # FluidSynth works in 64-sample blocks; renders start on a block boundary

    def _samples(self, n: int) -> np.ndarray:
        self._samples_done += n
        return self._synth.get_samples(n)

    def _sfid(self, soundfont: str) -> int:
        path = find_soundfont(soundfont)
        if path not in self._sfids:
            sfid = self._synth.sfload(str(path))
            if sfid < 0:
                raise ValueError(f"FluidSynth could not load soundfont {path} (corrupt or not a soundfont?)")
            self._sfids[path] = sfid
        return self._sfids[path]

    def render(self, perf: Performance, cond: RecordingConditions, tail: float = 1.0) -> np.ndarray:
        """Render `perf` and return mono float32 audio of length (duration + tail) seconds."""
        fs, sr = self._synth, self.sample_rate
        sfid = self._sfid(cond.soundfont)
        fs.system_reset()  # voices, controllers, reverb state: each render starts from the same synth state
        self._samples(-self._samples_done % 64)  # and on a 64-sample block boundary
        if fs.program_select(0, sfid, cond.bank, cond.preset) != 0:
            raise ValueError(f"Soundfont {cond.soundfont!r} has no preset {cond.bank}:{cond.preset}")
        fs.set_reverb(roomsize=cond.reverb_room, damping=0.3, width=0.8, level=cond.reverb_level)

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
                chunks.append(self._samples(sample - cursor))
                cursor = sample
            if kind == "on":
                fs.noteon(0, a, b)
            elif kind == "off":
                fs.noteoff(0, a)
            else:
                fs.cc(0, a, b)
        if total > cursor:
            chunks.append(self._samples(total - cursor))
        # Silence the synth so the next render starts clean (reverb tail included).
        fs.cc(0, 64, 0)
        fs.cc(0, 123, 0)
        self._samples(sr // 2)
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
