"""h: A -> M, a Basic-Pitch-shaped transcriber (~16k parameters) on top of our log-mel frames.

Why log-mel in and not a CQT of the waveform: the synthesizer S outputs log-mel frames, and
synth-pairs trains h on S's output, so h must read exactly what S writes. Below ~1 kHz the mel
bins are ~23 Hz apart -- coarser than a semitone -- so a low note's fundamental is not resolved.
Its upper harmonics are (the 8th harmonic of A2 sits where bins are 1/3 semitone apart), which
is why the input is *harmonic-stacked*: a fixed linear map resamples the log-mel at h * f(pitch)
for h in `harmonics`, one channel per h, on a grid of `bins_per_semitone` bins per semitone. A
note then looks like a vertical line across channels at its own pitch row, which a small conv net
picks up (Bittner et al., "A lightweight instrument-agnostic model for polyphonic note
transcription", ICASSP 2022).

Outputs are logits (B, 88, T) at the input frame rate (50 fps): onset, frame (key down), velocity
(sigmoid = velocity / 127, meaningful on onset frames). `decode` turns one excerpt's outputs into a
Performance with thresholds fixed here, never tuned on the test pool.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.features import FeatureConfig, mel_frequencies
from lmm_utils.core.motion import N_KEYS, PIANO_LOW, Performance, from_roll
from lmm_utils.core.params import dataclass_from
from lmm_utils.models.harmonics import HARMONIC_RATIO, suppress_harmonics


@dataclass(frozen=True)
class TranscriberConfig:
    bins_per_semitone: int = 1  # odd; 3 resolves mistuning but costs ~5x the time for little gain on mel input
    harmonics: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    # ln(1e4): keep 40 dB of log-power below the excerpt's peak. Not 80: the log-mel has an absolute floor
    # (FeatureConfig.log_floor), so an 80-dB window reached it in quiet takes (T averages -38 dBFS RMS) and the same
    # recording read differently at -45 and -6 dBFS; 40 dB stays above the floor at every ordinary level
    # (tests/models: level invariance), and scored the same on a validation part of P (README "Level").
    dynamic_range: float = 9.21
    contour_channels: int = 16
    contour_out_channels: int = 8
    context_semitones: int = 13  # frequency extent of the second contour conv (an octave + 1)
    note_channels: int = 16
    onset_channels: int = 8
    time_kernel: int = 5  # frames; odd
    onset_flux: bool = True  # the onset branch also sees the positive time-difference of the stacked input

    @classmethod
    def from_params(cls, section: dict | None) -> TranscriberConfig:
        cfg = dataclass_from(cls, section, "mapping.transcriber")
        return replace(cfg, harmonics=tuple(float(h) for h in cfg.harmonics))

    @classmethod
    def tiny(cls) -> TranscriberConfig:
        """Debug size for tests: same graph, a few thousand parameters."""
        return cls(bins_per_semitone=1, harmonics=(0.5, 1.0, 2.0, 3.0), contour_channels=8,
                   contour_out_channels=4, note_channels=4, onset_channels=4, time_kernel=3)


def harmonic_resampling_matrix(cfg: TranscriberConfig, feat: FeatureConfig) -> np.ndarray:
    """(H, 88 * bps, n_mels) linear-interpolation weights from mel bins to h * f(pitch).

    Row (h, k) reads the mel spectrum at frequency h * f(k), interpolating between the two nearest
    mel band centres; frequencies outside [fmin, fmax] get an all-zero row (= silence after
    normalization), so the 0.5 and 7th-harmonic channels fade out at the keyboard's ends.
    """
    bps = cfg.bins_per_semitone
    centres = mel_frequencies(feat)
    # Pitch of fine bin j: bin bps*k + bps//2 is exactly key k.
    pitches = PIANO_LOW + (np.arange(N_KEYS * bps) - bps // 2) / bps
    f0 = 440.0 * 2.0 ** ((pitches - 69.0) / 12.0)
    w = np.zeros((len(cfg.harmonics), len(f0), feat.n_mels), np.float32)
    idx = np.arange(feat.n_mels)
    for hi, h in enumerate(cfg.harmonics):
        f = h * f0
        pos = np.interp(f, centres, idx)  # fractional mel index, clamped at the ends
        lo = np.floor(pos).astype(int)
        hi_idx = np.minimum(lo + 1, feat.n_mels - 1)
        frac = (pos - lo).astype(np.float32)
        rows = np.arange(len(f))
        w[hi, rows, lo] += 1.0 - frac
        w[hi, rows, hi_idx] += frac
        w[hi, (f < feat.fmin) | (f > feat.fmax)] = 0.0
    return w


class HarmonicFrontend(nn.Module):
    """(B, n_mels, T) log-mel -> (B, H, 88 * bps, T) in [0, 1], 0 = dynamic_range (40 dB) below the excerpt's peak.

    Peak normalization makes h blind to recording gain (which varies across recordings); the peak is
    detached so gradients through S's output (synth-pairs, cycle) only flow through the spectrum shape.
    """

    def __init__(self, cfg: TranscriberConfig, feat: FeatureConfig):
        super().__init__()
        self.dynamic_range = cfg.dynamic_range
        self.register_buffer("weights", torch.from_numpy(harmonic_resampling_matrix(cfg, feat)), persistent=False)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        peak = logmel.amax(dim=(-2, -1), keepdim=True).detach()
        x = (logmel - peak).clamp(min=-self.dynamic_range) / self.dynamic_range + 1.0
        return torch.einsum("hfm,bmt->bhft", self.weights.to(x.dtype), x)


def _conv_bn_relu(c_in: int, c_out: int, kernel: tuple[int, int], stride=(1, 1), padding=(0, 0)) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class Transcriber(nn.Module):
    """Basic Pitch's graph: contour convs at bps bins/semitone, a strided conv down to 88 keys for
    frames, a separate onset branch from the stacked input that also sees the frame posterior."""

    def __init__(self, cfg: TranscriberConfig, feat: FeatureConfig | None = None):
        super().__init__()
        assert cfg.bins_per_semitone % 2 == 1 and cfg.time_kernel % 2 == 1
        self.cfg, self.feat = cfg, feat or FeatureConfig()
        bps, kt, n_h = cfg.bins_per_semitone, cfg.time_kernel, len(cfg.harmonics)
        pt = kt // 2
        self.frontend = HarmonicFrontend(cfg, self.feat)
        self.input_norm = nn.BatchNorm2d(n_h)
        kf_ctx = cfg.context_semitones * bps
        self.contour = nn.Sequential(
            _conv_bn_relu(n_h, cfg.contour_channels, (5, kt), padding=(2, pt)),
            _conv_bn_relu(cfg.contour_channels, cfg.contour_out_channels, (kf_ctx, 3), padding=(kf_ctx // 2, 1)),
        )
        # Strided convs pool bps fine bins into one key: kernel kf with padding kf//2 - bps//2 centres
        # output k on fine bin bps*k + bps//2, i.e. exactly on the key.
        kf_note = 2 * bps + 5
        self.note = nn.Sequential(
            nn.Conv2d(cfg.contour_out_channels, cfg.note_channels, (kf_note, kt), (bps, 1),
                      (kf_note // 2 - bps // 2, pt)),
            nn.ReLU(),
            nn.Conv2d(cfg.note_channels, 1, (7, 3), padding=(3, 1)),
        )
        kf_on = 3 * bps + 2 if bps > 1 else 5
        n_on_in = 2 * n_h if cfg.onset_flux else n_h
        self.onset_pre = _conv_bn_relu(n_on_in, cfg.onset_channels, (kf_on, kt), (bps, 1), (kf_on // 2 - bps // 2, pt))
        self.onset_out = nn.Conv2d(cfg.onset_channels + 1, 1, (3, 3), padding=(1, 1))
        self.velocity_out = nn.Conv2d(cfg.onset_channels + 1, 1, (3, 3), padding=(1, 1))
        # Conv weights stored channels-last: oneDNN's NHWC kernels are ~25 % faster here on CPU, in training and in
        # inference, with the same outputs (benchmarks/bench_transcriber.py --layout). load_state_dict copies into
        # these tensors, so checkpoints stay layout-free.
        self.to(memory_format=torch.channels_last)

    def forward(self, logmel: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, n_mels, T) log-mel -> {"onset", "frame", "velocity"} logits, each (B, 88, T)."""
        stacked = self.frontend(logmel)
        x = self.input_norm(stacked)
        frame = self.note(self.contour(x))  # (B, 1, 88, T)
        on_in = x
        if self.cfg.onset_flux:
            # An explicit "energy just rose" cue: a tiny net learns onsets far faster from it than from levels.
            flux = F.relu(stacked - F.pad(stacked, (1, 0))[..., :-1])
            on_in = torch.cat([x, flux * 4.0], dim=1)
        z = torch.cat([self.onset_pre(on_in), torch.sigmoid(frame)], dim=1)
        return {
            "onset": self.onset_out(z).squeeze(1),
            "frame": frame.squeeze(1),
            "velocity": self.velocity_out(z).squeeze(1),
        }


def build_transcriber(params: dict | None = None, feat: FeatureConfig | None = None) -> Transcriber:
    """Builder from a params.yaml section (e.g. params["transcriber"]); missing keys take the defaults."""
    return Transcriber(TranscriberConfig.from_params(params), feat)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- training loss and decoding ---------------------------------------------------------------------------

def transcription_loss(
    out: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    onset_pos_weight: float = 20.0,
    onset_neighbor_label: float = 0.5,
    velocity_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Onset + frame BCE and onset-masked velocity MSE; targets are (B, 88, T) rolls as in motion.to_roll.

    onset_pos_weight counters the sparsity of onsets (~1 cell in 1000). onset_neighbor_label > 0 also
    labels the frames either side of an onset (soft), which tolerates the +-1-frame jitter of pseudo-motion
    from alignment. Returns the parts and their sum under "loss".
    """
    on_t = target["onset"]
    if onset_neighbor_label > 0:
        neighbours = F.max_pool1d(on_t, 3, stride=1, padding=1)
        on_t = torch.maximum(on_t, onset_neighbor_label * neighbours)
    pw = torch.tensor(onset_pos_weight, dtype=out["onset"].dtype)
    l_on = F.binary_cross_entropy_with_logits(out["onset"], on_t, pos_weight=pw)
    l_fr = F.binary_cross_entropy_with_logits(out["frame"], target["frame"])
    mask = target["onset"]
    l_vel = ((torch.sigmoid(out["velocity"]) - target["velocity"]) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
    return {"loss": l_on + l_fr + velocity_weight * l_vel, "onset": l_on, "frame": l_fr, "velocity": l_vel}


@dataclass(frozen=True)
class DecodeConfig:
    """Fixed a priori (0.5 = the posterior's midpoint); never tuned on the test pool."""
    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    min_frames: int = 2  # 40 ms: a note needs a key-down of at least two frames
    # > 0: an onset whose key's frame probability stays below this on the onset frame and the min_frames frames
    # after it makes no note (motion.from_roll); 0 = off
    key_down_threshold: float = 0.0
    # > 0: an onset an octave, a twelfth or two octaves above an onset stronger than it / ratio is dropped before
    # thresholding (models/harmonics: a piano note's partials heard as notes); 0 = off
    harmonic_ratio: float = HARMONIC_RATIO

    @classmethod
    def from_params(cls, section: dict | None) -> DecodeConfig:
        return dataclass_from(cls, section, "decode")


@torch.no_grad()
def probabilities(out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: torch.sigmoid(v).float().cpu().numpy() for k, v in out.items()}


def decode(out: dict[str, torch.Tensor], fps: float, cfg: DecodeConfig = DecodeConfig()) -> Performance:
    """One excerpt's logits ((88, T) or (1, 88, T)) -> Performance via motion.from_roll."""
    p = probabilities({k: v.reshape(N_KEYS, -1) for k, v in out.items()})
    p["onset"] = suppress_harmonics(p["onset"], cfg.harmonic_ratio)
    return from_roll(p["onset"], p["frame"], fps, velocity=p["velocity"], onset_threshold=cfg.onset_threshold,
                     frame_threshold=cfg.frame_threshold, min_frames=cfg.min_frames,
                     key_down_threshold=cfg.key_down_threshold)


@torch.no_grad()
def transcribe(model: Transcriber, logmel: np.ndarray | torch.Tensor, cfg: DecodeConfig = DecodeConfig()) -> Performance:
    """(n_mels, T) log-mel of one recording -> Performance (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    x = torch.as_tensor(np.asarray(logmel, np.float32))[None]
    perf = decode({k: v[0] for k, v in model(x).items()}, model.feat.fps, cfg)
    model.train(was_training)
    return perf
