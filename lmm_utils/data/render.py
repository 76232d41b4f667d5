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
    # Timbre variety (perform.conditions.timbre_variety; defaults = the soundfont's own piano, unchanged). The
    # generator offsets are SoundFont units added to every voice of the preset (fluid_synth_set_gen, NRPN-style).
    filter_fc_cents: float = 0.0  # low-pass cutoff offset (negative: a darker, duller piano)
    filter_q_cb: float = 0.0  # low-pass resonance offset, centibels
    attack_tc: float = 0.0  # volume-envelope offsets, timecents (+1200 doubles the time)
    decay_tc: float = 0.0
    release_tc: float = 0.0
    detune_cents: float = 0.0  # the whole piano slightly out of concert pitch
    chorus_level: float = 0.0  # FluidSynth chorus, 0 = off
    velocity_gamma: float = 1.0  # velocity curve: v -> 127 (v/127)^gamma (a softer or harder action)
    eq_bands_db: tuple[float, ...] = ()  # a random EQ curve: gains at log-spaced centres 50 Hz..Nyquist
    compress_ratio: float = 1.0  # a mild compressor (1 = none) ...
    compress_threshold_db: float = 6.0  # ... acting above the excerpt's RMS + this many dB

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


# SoundFont 2.01 generator numbers (spec 8.1.3) that fluid_synth_set_gen offsets
GEN_FILTER_FC, GEN_FILTER_Q, GEN_CHORUS_SEND = 8, 9, 15
GEN_ATTACK, GEN_DECAY, GEN_RELEASE, GEN_FINE_TUNE = 34, 36, 38, 52


@functools.cache
def _set_gen():
    """libfluidsynth's fluid_synth_set_gen (pyfluidsynth does not wrap it)."""
    # deferred: pyfluidsynth loads libfluidsynth at import; only rendering needs it (and says how to install it)
    import fluidsynth

    return fluidsynth.cfunc("fluid_synth_set_gen", ctypes.c_int, ("synth", ctypes.c_void_p, 1),
                            ("chan", ctypes.c_int, 1), ("param", ctypes.c_int, 1), ("value", ctypes.c_float, 1))


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
        fs.setting("synth.chorus.active", int(cond.chorus_level > 0))
        fs.setting("synth.dynamic-sample-loading", 1)
        sfid = fs.sfload(str(path))
        if sfid < 0:
            fs.delete()
            raise ValueError(f"FluidSynth could not load soundfont {path} (corrupt or not a soundfont?)")
        if fs.program_select(0, sfid, cond.bank, cond.preset) != 0:
            fs.delete()
            raise ValueError(f"Soundfont {cond.soundfont!r} has no preset {cond.bank}:{cond.preset}")
        fs.set_reverb(roomsize=cond.reverb_room, damping=0.3, width=0.8, level=cond.reverb_level)
        if cond.chorus_level > 0:
            fs.set_chorus(nr=3, level=cond.chorus_level, speed=0.4, depth=4.0, type=0)  # type 0: sine
            fs.cc(0, 93, 127)  # the channel's chorus send (General MIDI's default is none)
        gens = ((GEN_FILTER_FC, cond.filter_fc_cents), (GEN_FILTER_Q, cond.filter_q_cb), (GEN_ATTACK, cond.attack_tc),
                (GEN_DECAY, cond.decay_tc), (GEN_RELEASE, cond.release_tc), (GEN_FINE_TUNE, cond.detune_cents))
        for gen, value in gens:
            if value and _set_gen()(fs.synth, 0, gen, float(value)) != 0:
                fs.delete()
                raise RuntimeError(f"FluidSynth refused generator {gen} = {value}")
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
                events.append((int(round(n.onset * sr)), 1, "on", n.pitch, curved_velocity(n.velocity, cond.velocity_gamma)))
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


def curved_velocity(velocity: int, gamma: float) -> int:
    """The velocity curve of a softer (gamma > 1) or harder (gamma < 1) action, kept within 1..127."""
    if gamma == 1.0:
        return int(velocity)
    return int(np.clip(round(127.0 * (max(int(velocity), 1) / 127.0) ** gamma), 1, 127))


def eq_gains_db(freqs: np.ndarray, cond: RecordingConditions, sample_rate: int) -> np.ndarray:
    """The EQ in dB at `freqs`: the tilt (linear in log frequency between 50 Hz and Nyquist, pivoting at 1 kHz)
    plus the random curve through eq_bands_db at log-spaced centres (interpolated in log frequency)."""
    clipped = np.clip(freqs, 50.0, None)
    octaves = np.log2(clipped / 1000.0) / np.log2(sample_rate / 2 / 50.0)  # as before the curve: T's audio unchanged
    gains = cond.eq_tilt_db * octaves
    if len(cond.eq_bands_db):
        logf = np.log2(clipped)
        centres = np.linspace(np.log2(50.0), np.log2(sample_rate / 2), len(cond.eq_bands_db))
        gains = gains + np.interp(logf, centres, np.asarray(cond.eq_bands_db, float))
    return gains


def compress(audio: np.ndarray, ratio: float, threshold_db: float, sample_rate: int) -> np.ndarray:
    """A feed-forward RMS compressor (10 ms attack, 150 ms release of the gain) acting above the excerpt's RMS +
    threshold_db; no make-up gain (the recording's level is gain_db's business)."""
    if ratio <= 1.0 or not len(audio):
        return audio
    power = audio.astype(np.float64) ** 2
    mean_db = 10 * np.log10(float(np.mean(power)) + 1e-12)
    env = lfilter([1 - np.exp(-1 / (0.02 * sample_rate))], [1, -np.exp(-1 / (0.02 * sample_rate))], power)
    over = np.maximum(10 * np.log10(env + 1e-12) - (mean_db + threshold_db), 0.0)
    reduction = over * (1.0 - 1.0 / ratio)  # dB
    # gain smoothing: fast when the reduction grows (attack), slow when it falls (release)
    att, rel = np.exp(-1 / (0.01 * sample_rate)), np.exp(-1 / (0.15 * sample_rate))
    smooth = np.maximum(lfilter([1 - rel], [1, -rel], reduction), lfilter([1 - att], [1, -att], reduction))
    return (audio * 10.0 ** (-smooth / 20.0)).astype(np.float32)


def apply_conditions(audio: np.ndarray, cond: RecordingConditions, sample_rate: int) -> np.ndarray:
    """Post-synthesis part of the recording conditions: EQ (tilt and curve), compression, level, background noise."""
    out = audio.astype(np.float32)
    if cond.eq_tilt_db or len(cond.eq_bands_db):
        spec = np.fft.rfft(out)
        spec *= 10.0 ** (eq_gains_db(np.fft.rfftfreq(len(out), 1.0 / sample_rate), cond, sample_rate) / 20.0)
        out = np.fft.irfft(spec, n=len(out)).astype(np.float32)
    out = compress(out, cond.compress_ratio, cond.compress_threshold_db, sample_rate)
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
