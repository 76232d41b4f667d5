"""Memory and time of `lmm transcribe` on a long recording: h is run window by window, so the peak
should not grow with the file's length.

    python benchmarks/bench_long_audio.py [--minutes 60] [--sample-rate 44100]

Writes a noise-plus-tones recording of the given length (a minute at a time), then transcribes it with an
untrained default-size h (the weights do not change the cost) whose onset logits are shifted down, since an
untrained h fires on every key in every frame and its millions of notes would be what the memory measures.
Prints wall time and the growth of the process's peak resident memory over a warm-up run on a 10-second file.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def write_recording(path: Path, minutes: float, sr: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(sr * 60) / sr
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
        for m in range(int(np.ceil(minutes))):
            tone = 0.2 * np.sin(2 * np.pi * 220.0 * 2 ** ((m % 12) / 12) * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
            x = tone + 0.01 * rng.standard_normal(len(t))
            f.write(np.stack([x, 0.8 * x], axis=1).astype(np.float32))


class QuietH:
    """h with onset logits lowered by 8: as sparse in notes as a trained h, at the same cost."""

    def __init__(self, h):
        self.h, self.feat = h, h.feat

    def logits(self, logmel):
        out = dict(self.h.logits(logmel))
        out["onset"] = out["onset"] - 8.0
        return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from lmm_utils.app.inference import ChunkConfig, transcribe_file
    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.methods.wrappers import make_h
    from lmm_utils.models.transcriber import TranscriberConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--sample-rate", type=int, default=44100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    h = QuietH(make_h(TranscriberConfig(), FeatureConfig()))
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / "short.wav", Path(tmp) / "long.wav"
        write_recording(short, 10 / 60, args.sample_rate)
        write_recording(long, args.minutes, args.sample_rate)
        transcribe_file(h, short)  # imports, librosa's numba compilation, torch's first allocations
        base = peak_mib()
        start = time.perf_counter()
        stats: dict = {}
        perf = transcribe_file(h, long, ChunkConfig(), stats=stats)
        wall = time.perf_counter() - start
    size_mib = args.minutes * 60 * args.sample_rate * 2 * 2 / 2**20
    print(f"{args.minutes:g} min stereo at {args.sample_rate} Hz ({size_mib:.0f} MiB as 16-bit PCM): "
          f"{wall:.1f} s ({stats['duration'] / wall:.0f}x real time, 1 thread), {len(perf.notes)} notes")
    print(f"peak RSS {peak_mib():.0f} MiB, {peak_mib() - base:.0f} MiB above the 10-second warm-up "
          f"(the whole file as float32 at 16 kHz would be {args.minutes * 60 * 16000 * 4 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
