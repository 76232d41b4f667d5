"""Audio (A) -> frames. One definition of the audio representation, in numpy and in torch.

Everything downstream (the synthesizer S, LM^A's tokenizer, the transcriber h) uses log-mel frames
computed here, so S(m) and a recording are compared in the same space. The torch path uses the same
mel filterbank as the numpy path (Slaney's, as librosa's default), so the two agree to float precision.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from lmm_utils.core.params import dataclass_from


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    hop_length: int = 320  # 20 ms -> 50 frames per second
    n_fft: int = 2048
    n_mels: int = 128
    fmin: float = 27.5  # A0
    fmax: float = 8000.0
    log_floor: float = 1e-5  # log(power + floor): silence maps to log(floor), not -inf

    @property
    def fps(self) -> float:
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length + 1

    @classmethod
    def from_params(cls, section: dict) -> FeatureConfig:
        return dataclass_from(cls, section, "features")


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above. Written out here so
# that a mapping run never imports librosa just for a filterbank (its import compiles with numba: ~1.8 s a process).
_MEL_F_SP = 200.0 / 3  # Hz per mel below the break
_MEL_BREAK_HZ = 1000.0
_MEL_BREAK = _MEL_BREAK_HZ / _MEL_F_SP  # 15 mels
_MEL_LOGSTEP = np.log(6.4) / 27.0  # log-spaced steps above the break


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _MEL_F_SP
    high = hz >= _MEL_BREAK_HZ
    return np.where(high, _MEL_BREAK + np.log(np.maximum(hz, 1e-10) / _MEL_BREAK_HZ) / _MEL_LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    high = mel >= _MEL_BREAK
    return np.where(high, _MEL_BREAK_HZ * np.exp(_MEL_LOGSTEP * (mel - _MEL_BREAK)), _MEL_F_SP * mel)


def _mel_edges(cfg: FeatureConfig) -> np.ndarray:
    """n_mels + 2 band edges in Hz, equally spaced in mel between fmin and fmax."""
    return mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))


@lru_cache(maxsize=8)
def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, area-normalized (Slaney): equal to librosa.filters.mel's
    defaults to float32 precision (tests/core compares them)."""
    edges = _mel_edges(cfg)
    fft_hz = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    # Rounded to float32 before and after the normalization, as librosa does, so the two agree bit for bit (h's
    # and S's numbers stay what they were when librosa made the filterbank).
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def log_mel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(n_samples,) float audio at cfg.sample_rate -> (n_mels, n_frames) float32 log-mel power."""
    return log_mel_torch(torch.from_numpy(np.asarray(audio, np.float32)), cfg).numpy()


def log_mel_torch(audio: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """(..., n_samples) -> (..., n_mels, n_frames); differentiable (used on S's waveform output)."""
    window = torch.hann_window(cfg.n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(
        audio.reshape(-1, audio.shape[-1]), n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        window=window, center=True, pad_mode="constant", return_complex=True,
    )
    power = spec.real**2 + spec.imag**2
    fb = torch.from_numpy(mel_filterbank(cfg)).to(audio.device, audio.dtype)
    mel = torch.matmul(fb, power)
    out = torch.log(mel + cfg.log_floor)
    return out.reshape(*audio.shape[:-1], cfg.n_mels, out.shape[-1])


def mel_frequencies(cfg: FeatureConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band."""
    return _mel_edges(cfg)[1:-1]
