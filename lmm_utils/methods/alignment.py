"""Pseudo-motion from a (score, audio) pair: the supervision the K pairs can give without motion capture.

The score is played plainly (metronome, dynamics-mark velocities), rendered to log-mel by a synthesizer
(the learner's S in the methods; a FluidSynth or template synth in tests), and aligned to the
recording's log-mel by DTW on normalized spectral + spectral-flux features (flux is what pins the
onsets: Ewert, Mueller & Grosche, "High resolution audio synchronization using chroma onset features",
ICASSP 2009). Each score note's onset and offset are carried through the warping path; its velocity
comes from how much louder or softer the recording is than the template around that note's partials,
anchored so the excerpt's median note plays at its dynamics-mark velocity.

Contract: `align_pair` returns one note per score note, in score order (note i performs score.notes[i]),
so the result doubles as per-note targets for g (models/performer.note_targets).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig, log_mel, mel_filterbank, mel_frequencies
from lmm_utils.core.motion import N_KEYS, PIANO_LOW, Performance, PerformedNote, from_roll, to_roll
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.models.performer import PlainConfig, plain_performance, release_before_repeat


class Synth(Protocol):
    """S (models/synth.py's call): (B, 88, T) onset, velocity (/127 on onset frames), sustain (key or pedal
    held) rolls at 50 fps -> (B, n_mels, T) log-mel."""

    def __call__(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class AlignConfig:
    dynamic_range: float = 18.42  # ln(1e8): features keep 80 dB below the excerpt's peak
    flux_weight: float = 0.25  # weight of the onset (spectral flux) cost against the spectral cost
    flux_smooth: int = 1  # frames of causal smoothing of the flux (0: none)
    level_weight: float = 0.03  # weight per nat of |frame loudness difference| (spectra are compared unit-norm): re-strikes
    band_rad: float = 0.5  # Sakoe-Chiba band, fraction of the longer sequence (generous: tempo may be off 2x)
    tail: float = 1.0  # seconds rendered after the plain performance's last release
    # "invert" (invert_velocities), "energy" (estimate_velocities) or "dynamics" (the mark's plain velocity). On P's
    # first 30 pairs against their true motion (benchmarks/pseudo_velocity.py): per-note velocity r 0.60 for invert
    # and energy against 0.17 for the marks, MAE 5.31 / 5.43 / 5.29; invert costs ~2x energy's alignment time.
    velocity_mode: str = "invert"
    velocity_energy_weight: float = 0.5  # shrink the energy / invert estimate toward the mark (MAE 5.3 at 0.5, 8 at 1)
    # "invert": S renders the score once per level; 4 levels ~ 11 levels (MAE 5.31 vs 5.21, r 0.599 vs 0.603)
    velocity_grid: tuple[int, ...] = (20, 40, 80, 127)
    db_per_velocity_doubling: float = 12.0  # level change when velocity doubles (MIDI's 40*log10(v) rule)
    velocity_window: int = 3  # frames after the onset in which each note's peak level is read
    refine_frames: int = 1  # search +- this many frames around DTW's onset for the best local match (0: off)
    refine_context: int = 7  # half-width (frames) of the template patch matched locally
    plain: PlainConfig = PlainConfig()


# --- synthesizers usable as S stand-ins -------------------------------------------------------------------

class TemplateSynth:
    """A crude piano in the mel domain, for tests and as a fallback S: each key is a comb of partials
    (amplitude 1/h) through the mel filterbank, struck with amplitude (velocity)^2, decaying
    exponentially while held and quickly after release. No learning, no FluidSynth."""

    def __init__(self, feat: FeatureConfig = FeatureConfig(), n_partials: int = 10, decay_s: float = 1.5,
                 release_s: float = 0.08, level: float = 20.0):
        self.feat = feat
        fb = mel_filterbank(feat)  # (n_mels, n_fft // 2 + 1)
        bin_hz = feat.sample_rate / feat.n_fft
        f0 = 440.0 * 2.0 ** ((np.arange(N_KEYS) + PIANO_LOW - 69) / 12.0)
        tpl = np.zeros((N_KEYS, feat.n_mels), np.float32)
        for h in range(1, n_partials + 1):
            pos = h * f0 / bin_hz
            ok = pos < fb.shape[1] - 1
            lo = np.floor(pos[ok]).astype(int)
            frac = pos[ok] - lo
            resp = fb[:, lo] * (1 - frac) + fb[:, lo + 1] * frac  # (n_mels, n_ok)
            tpl[ok] += (resp.T / h**2) * level  # power of partial h ~ (1/h)^2
        self.template = torch.from_numpy(tpl)
        self.decay = float(np.exp(-1.0 / (decay_s * feat.fps)))
        self.release = float(np.exp(-1.0 / (release_s * feat.fps)))
        # The STFT's Hann window (n_fft = 6.4 hops) sees an attack frames before its centre reaches it;
        # in log power even its tail is a jump from silence. Smear the frame powers with the squared
        # window at hop spacing so template attacks start where a recording's do.
        half = feat.n_fft // (2 * feat.hop_length)
        offsets = np.arange(-half, half + 1) * feat.hop_length
        w = np.hanning(feat.n_fft + 1)[offsets + feat.n_fft // 2] ** 2
        self.smear = torch.from_numpy((w / w.sum()).astype(np.float32))

    def __call__(self, onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor) -> torch.Tensor:
        frame = sustain
        amp = velocity.clamp(min=0) ** 2
        env = torch.zeros_like(onset[..., 0])
        envs = []
        for t in range(onset.shape[-1]):
            held = frame[..., t]
            decayed = env * (self.decay * held + self.release * (1 - held))
            env = torch.maximum(decayed, onset[..., t] * amp[..., t])
            envs.append(env)
        e = torch.stack(envs, dim=-1)  # (B, 88, T) amplitude
        power = torch.einsum("km,bkt->bmt", self.template.to(e.dtype), e**2)
        k = self.smear.to(power.dtype)
        b, m, n = power.shape
        power = torch.nn.functional.conv1d(power.reshape(b * m, 1, n), k.view(1, 1, -1), padding=len(k) // 2)
        return torch.log(power.reshape(b, m, n) + self.feat.log_floor)


def fluid_synth(renderer, conditions, feat: FeatureConfig = FeatureConfig()) -> Synth:
    """Diagnostics only (S stand-in for tests): decode the rolls to notes, render with FluidSynth."""

    def synth(onset: torch.Tensor, velocity: torch.Tensor, sustain: torch.Tensor) -> torch.Tensor:
        frame = sustain
        outs = []
        for b in range(onset.shape[0]):
            perf = from_roll(onset[b].numpy(), frame[b].numpy(), feat.fps, velocity=velocity[b].numpy())
            n = onset.shape[-1]
            audio = renderer.render(perf, conditions, tail=0.0)
            audio = np.pad(audio, (0, max(0, (n - 1) * feat.hop_length - len(audio))))[: (n - 1) * feat.hop_length]
            outs.append(torch.from_numpy(log_mel(audio, feat)[:, :n]))
        return torch.stack(outs)

    return synth


@torch.no_grad()
def render_logmel(perf: Performance, synth: Synth, fps: float, n_frames: int) -> np.ndarray:
    """Performance -> (n_mels, n_frames) log-mel through a roll-level synth."""
    roll = to_roll(perf, fps, n_frames)
    args = [torch.from_numpy(roll[k])[None] for k in ("onset", "velocity", "sustain")]
    return synth(*args)[0].float().cpu().numpy()


# --- DTW features -----------------------------------------------------------------------------------------

def _normalize(logmel: np.ndarray, dynamic_range: float) -> np.ndarray:
    """Peak-normalized log-mel in [0, 1] (0 = 80 dB below peak): blind to recording gain."""
    return np.clip(logmel - logmel.max(), -dynamic_range, None) / dynamic_range + 1.0


def _unit_columns(x: np.ndarray, eps: float) -> np.ndarray:
    """Frame-wise L2 normalization; eps (a constant added to every bin) makes all near-silent
    frames look alike instead of amplifying noise."""
    x = x + eps
    return x / np.linalg.norm(x, axis=0, keepdims=True)


def dtw_features(logmel: np.ndarray, cfg: AlignConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spectral, onset) feature matrices (n_mels, T), each frame unit-norm, and the frame level (T,)."""
    z = _normalize(logmel, cfg.dynamic_range)
    flux = np.maximum(np.diff(z, axis=1, prepend=z[:, :1]), 0.0)
    if cfg.flux_smooth > 0:  # a struck note's flux spreads over ~2 frames; smooth causally
        k = np.ones(cfg.flux_smooth + 1) / (cfg.flux_smooth + 1)
        flux = np.apply_along_axis(lambda r: np.convolve(r, k)[: len(r)], 1, flux)
    level = np.log(np.exp((z - 1.0) * cfg.dynamic_range).sum(axis=0))  # frame loudness, nats of power
    level = np.maximum(level - level.max(), -cfg.dynamic_range)
    return _unit_columns(z**2, 1e-2), _unit_columns(flux, 1e-3), level


def warping_path(template: np.ndarray, recording: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """DTW path (L, 2) of (template frame, recording frame), in increasing order."""
    import librosa  # deferred: a slow import (numba, ~1.7 s), needed only when a pair is aligned

    ts, to, tl = dtw_features(template, cfg)
    rs, ro, rl = dtw_features(recording, cfg)
    cost = (1.0 - ts.T @ rs) + cfg.flux_weight * (1.0 - to.T @ ro) + cfg.level_weight * np.abs(tl[:, None] - rl[None])
    _, path = librosa.sequence.dtw(C=cost.astype(np.float64), global_constraints=cfg.band_rad < 1.0,
                                   band_rad=cfg.band_rad)
    return path[::-1].copy()


def time_map(path: np.ndarray, fps: float) -> Callable[[np.ndarray], np.ndarray]:
    """Template seconds -> recording seconds: a template frame goes to the *first* recording frame it
    is matched with (so an onset lands where the recording's attack starts, whichever sequence is
    slower), linearly interpolated between frames."""
    n_t = int(path[:, 0].max()) + 1
    first = np.full(n_t, np.inf)
    np.minimum.at(first, path[:, 0], path[:, 1].astype(float))
    first = np.maximum.accumulate(first)  # monotone
    grid = np.arange(n_t)
    return lambda seconds: np.interp(np.asarray(seconds) * fps, grid, first) / fps


def refine_onsets(plain: Performance, template: np.ndarray, recording: np.ndarray, onsets_rec: np.ndarray,
                  cfg: AlignConfig, fps: float) -> np.ndarray:
    """Sharpen DTW's onsets per onset group: slide the template's patch (mel x +-context frames around
    the group's onset) over the recording within +-refine_frames of DTW's estimate and keep the shift
    of highest correlation (parabolic peak for sub-frame precision). DTW gets the global path right
    but its frame-level steps wander by a frame or two; a local patch match does not.
    Groups stay in order (a monotone pass afterwards)."""
    if cfg.refine_frames <= 0:
        return onsets_rec
    zt, zr = _normalize(template, cfg.dynamic_range), _normalize(recording, cfg.dynamic_range)
    c, r = cfg.refine_context, cfg.refine_frames
    zt = np.pad(zt, ((0, 0), (c, c)))
    zr = np.pad(zr, ((0, 0), (c + r + 1, c + r + 1)))
    plain_on = np.array([n.onset for n in plain.notes])
    out = onsets_rec.copy()
    groups: dict[float, list[int]] = {}
    for i, t in enumerate(plain_on):
        groups.setdefault(round(float(t), 4), []).append(i)
    for t_plain, members in sorted(groups.items()):
        i_t = int(round(t_plain * fps))
        patch = zt[:, i_t: i_t + 2 * c + 1]
        if patch.shape[1] < 2 * c + 1:
            continue
        patch = patch - patch.mean()
        est = float(np.mean(onsets_rec[members])) * fps
        j0 = int(round(est))
        scores = []
        for dj in range(-r, r + 1):
            j = j0 + dj + r + 1  # index into padded recording, where patch starts at j - c + c
            seg = zr[:, j: j + 2 * c + 1]
            if seg.shape[1] < 2 * c + 1:
                scores.append(-np.inf)
                continue
            seg = seg - seg.mean()
            scores.append(float((patch * seg).sum() / (np.linalg.norm(patch) * np.linalg.norm(seg) + 1e-9)))
        scores = np.array(scores)
        k = int(np.argmax(scores))
        frac = 0.0
        if 0 < k < len(scores) - 1 and np.isfinite(scores[k - 1: k + 2]).all():
            a_, b_, c_ = scores[k - 1], scores[k], scores[k + 1]
            denom = a_ - 2 * b_ + c_
            frac = 0.5 * (a_ - c_) / denom if denom < 0 else 0.0
        # The template's onset frame i_t matched recording frame j0 + (k - r) + frac.
        new = (j0 + (k - r) + frac) / fps
        out[members] = new
    # Keep onset groups in score order.
    order = sorted(groups)
    last = -np.inf
    for t_plain in order:
        members = groups[t_plain]
        v = max(float(out[members[0]]), last)
        out[members] = v
        last = v
    return out


# --- velocity ---------------------------------------------------------------------------------------------

def _partial_bins(pitch: int, feat: FeatureConfig) -> list[int]:
    """The mel bins nearest a note's first 4 partials (below fmax)."""
    centres = mel_frequencies(feat)
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    return sorted({int(np.argmin(np.abs(centres - h * f0))) for h in (1, 2, 3, 4) if h * f0 < feat.fmax})


def _note_level(z_logmel: np.ndarray, pitch: int, frame: int, feat: FeatureConfig, window: int) -> float:
    """Peak log-power summed over the mel bins of a note's first 4 partials in [frame, frame + window)."""
    return float(_note_levels(z_logmel[None], pitch, frame, feat, window)[0])


def _note_levels(z_logmels: np.ndarray, pitch: int, frame: int, feat: FeatureConfig, window: int) -> np.ndarray:
    """_note_level of one note in each of a stack (R, n_mels, T) of log-mels -> (R,) (nan where out of range)."""
    seg = z_logmels[:, _partial_bins(pitch, feat), max(frame, 0): max(frame, 0) + window]
    if seg.shape[-1] == 0:
        return np.full(len(z_logmels), np.nan)
    return np.log(np.exp(seg).sum(axis=1).max(axis=-1))


@torch.no_grad()
def velocity_response(plain: Performance, synth: Synth, grid: tuple[int, ...], n_frames: int,
                      feat: FeatureConfig, window: int) -> np.ndarray:
    """(notes, len(grid)) S's level of each note of `plain` (as _note_level reads it) when every note is played
    at grid[j]: S's own velocity response, note by note, in this score's context (neighbours, overlaps)."""
    rolls = [to_roll(Performance([PerformedNote(n.pitch, n.onset, n.offset, int(v)) for n in plain.notes],
                                 plain.pedal), feat.fps, n_frames) for v in grid]
    args = [torch.from_numpy(np.stack([r[k] for r in rolls])) for k in ("onset", "velocity", "sustain")]
    renders = synth(*args).float().cpu().numpy()
    return np.array([_note_levels(renders, n.pitch, int(round(n.onset * feat.fps)), feat, window)
                     for n in plain.notes])


def _invert(levels: np.ndarray, grid: np.ndarray, target: float) -> float:
    """The log velocity at which a note's level curve (over the grid) reaches `target`: piecewise-linear in log
    velocity, made monotone, clamped to the grid's ends."""
    mono = np.maximum.accumulate(levels)
    if not np.all(np.isfinite(mono)) or mono[-1] <= mono[0]:
        return float("nan")
    keep = np.concatenate([[True], np.diff(mono) > 1e-9])
    return float(np.interp(target, mono[keep], np.log(grid)[keep]))


def invert_velocities(plain: Performance, recording: np.ndarray, onsets_rec: np.ndarray, synth: Synth,
                      n_frames: int, cfg: AlignConfig, feat: FeatureConfig) -> np.ndarray:
    """Velocity per note by inverting S's velocity response: each note's onset level in the recording (its first
    partials' mel bins, at its aligned onset), less the recording's gain, read off S's level-vs-velocity curve
    for that note (velocity_response). The gain is unknown: it is set so that the median note's level is S's
    level at its plain (dynamics-mark) velocity. Then shrunk toward the mark by velocity_energy_weight (in log
    velocity). Notes whose level cannot be read keep the mark's velocity."""
    base = np.array([n.velocity for n in plain.notes], dtype=float)
    grid = np.array(cfg.velocity_grid, dtype=float)
    curves = velocity_response(plain, synth, cfg.velocity_grid, n_frames, feat, cfg.velocity_window)
    rec = np.array([_note_level(recording, n.pitch, int(round(on * feat.fps)), feat, cfg.velocity_window)
                    for n, on in zip(plain.notes, onsets_rec)])
    at_mark = np.array([np.interp(np.log(v), np.log(grid), c) for v, c in zip(base, curves)])
    ok = np.isfinite(rec) & np.isfinite(at_mark)
    if not ok.any():
        return base
    gain = float(np.median(rec[ok] - at_mark[ok]))
    log_v = np.array([_invert(c, grid, r - gain) if k else np.nan for c, r, k in zip(curves, rec, ok)])
    log_v = np.where(np.isfinite(log_v), log_v, np.log(base))
    w = cfg.velocity_energy_weight
    return np.clip(np.exp(w * log_v + (1.0 - w) * np.log(base)), 1, 127)


def estimate_velocities(score: ScoreExcerpt, plain: Performance, template: np.ndarray, recording: np.ndarray,
                        onsets_rec: np.ndarray, cfg: AlignConfig, feat: FeatureConfig) -> np.ndarray:
    """Velocity per score note ("energy"): the plain velocity scaled by the recording-vs-template level difference
    at the note's partials, with the excerpt's median difference removed (recording gain is unknown,
    so the dynamics marking sets the absolute level), assuming db_per_velocity_doubling. "invert" (S's measured
    response instead of that rule) is invert_velocities, which align_pair calls (it needs S)."""
    base = np.array([n.velocity for n in plain.notes], dtype=float)
    if cfg.velocity_mode == "dynamics" or not plain.notes:
        return base
    if cfg.velocity_mode != "energy":
        raise ValueError(f"velocity_mode must be 'energy', 'invert' or 'dynamics', got {cfg.velocity_mode!r}")
    diffs = np.array([
        _note_level(recording, n.pitch, int(round(on * feat.fps)), feat, cfg.velocity_window)
        - _note_level(template, n.pitch, int(round(n.onset * feat.fps)), feat, cfg.velocity_window)
        for n, on in zip(plain.notes, onsets_rec)
    ])
    db = 10.0 / np.log(10.0) * diffs  # natural-log power -> dB
    ok = np.isfinite(db)
    if not ok.any():
        return base
    db = np.where(ok, db - np.median(db[ok]), 0.0)
    return np.clip(base * 2.0 ** (cfg.velocity_energy_weight * db / cfg.db_per_velocity_doubling), 1, 127)


# --- the pair -> pseudo-motion ----------------------------------------------------------------------------

def align_pair(score: ScoreExcerpt, audio_logmel: np.ndarray, synth: Synth, cfg: AlignConfig = AlignConfig(),
               feat: FeatureConfig = FeatureConfig()) -> Performance:
    """Pseudo-motion for one (score, recording) pair: note i performs score.notes[i]."""
    plain = plain_performance(score, cfg.plain)
    if not plain.notes:
        return plain
    n_frames = int(np.ceil((plain.duration + cfg.tail) * feat.fps)) + 1
    template = render_logmel(plain, synth, feat.fps, n_frames)
    path = warping_path(template, audio_logmel, cfg)
    to_rec = time_map(path, feat.fps)
    onsets = refine_onsets(plain, template, audio_logmel, to_rec(np.array([n.onset for n in plain.notes])),
                           cfg, feat.fps)
    offsets = to_rec(np.array([n.offset for n in plain.notes]))
    offsets = release_before_repeat([n.pitch for n in plain.notes], onsets, np.maximum(offsets, onsets + 0.02),
                                    cfg.plain.release_gap)
    if cfg.velocity_mode == "invert":
        vel = invert_velocities(plain, audio_logmel, onsets, synth, n_frames, cfg, feat)
    else:
        vel = estimate_velocities(score, plain, template, audio_logmel, onsets, cfg, feat)
    return Performance(notes=[PerformedNote(n.pitch, float(a), float(b), int(round(v)))
                              for n, a, b, v in zip(plain.notes, onsets, offsets, vel)])
