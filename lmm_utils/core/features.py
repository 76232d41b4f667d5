"""Audio (A) -> frames. One definition of the audio representation, in numpy and in torch.

Everything downstream (the synthesizer S, LM^A's tokenizer, the transcriber h) uses log-mel frames
computed here, so S(m) and a recording are compared in the same space. The torch path uses the same
mel filterbank as the numpy path (librosa's), so the two agree to float precision.
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


@lru_cache(maxsize=8)
def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    import librosa  # deferred: librosa's first import compiles with numba (seconds); only this path needs it

    return librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax
    ).astype(np.float32)


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
    import librosa  # deferred: librosa's first import compiles with numba (seconds); only this path needs it

    return librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]
