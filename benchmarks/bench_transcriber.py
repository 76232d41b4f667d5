"""Training throughput of h (models/transcriber.py) on CPU, and its parameter count.

One training step = forward on a batch of log-mel excerpts, transcription_loss against random sparse
target rolls, backward, AdamW. Reports the median over rounds (load from other processes on a shared
machine inflates single measurements), for the default config and any others asked for. Also times
decoding one excerpt (motion.from_roll's Python loop).

    .venv/bin/python benchmarks/bench_transcriber.py                          # batch 8 x 10 s, 1 thread
    .venv/bin/python benchmarks/bench_transcriber.py --seconds 2 --bps 1 3 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.models.transcriber import Transcriber, TranscriberConfig, decode, n_parameters, transcription_loss


def random_targets(batch: int, n_frames: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    onset = (torch.rand(batch, 88, n_frames, generator=g) < 0.002).float()
    frame = torch.clamp(sum(torch.roll(onset, k, dims=-1) for k in range(10)), max=1.0)
    return {"onset": onset, "frame": frame, "velocity": onset * torch.rand(batch, 88, n_frames, generator=g)}


def bench(cfg: TranscriberConfig, batch: int, seconds: float, steps: int, rounds: int) -> dict:
    feat = FeatureConfig()
    n_frames = int(seconds * feat.fps)
    g = torch.Generator().manual_seed(0)
    model = Transcriber(cfg, feat)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, feat.n_mels, n_frames, generator=g) - 4.0
    y = random_targets(batch, n_frames, g)

    def step() -> None:
        loss = transcription_loss(model(x), y)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, first-call overheads)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - t0))
    model.eval()
    with torch.no_grad():
        out = model(x[:1])
    t0 = time.perf_counter()
    decode({k: v[0] for k, v in out.items()}, feat.fps)
    decode_s = time.perf_counter() - t0
    return {"params": n_parameters(model), "steps_per_s": statistics.median(rates),
            "excerpt_seconds_per_s": statistics.median(rates) * batch * seconds, "decode_s": decode_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="excerpt length")
    ap.add_argument("--steps", type=int, default=3, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bps", type=int, nargs="+", default=[1], help="bins per semitone to compare (odd)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch} x {args.seconds:g} s, {args.threads} thread(s), torch {torch.__version__}")
    for bps in args.bps:
        r = bench(TranscriberConfig(bins_per_semitone=bps), args.batch, args.seconds, args.steps, args.rounds)
        print(f"bps={bps}: {r['params']:,} parameters, {r['steps_per_s']:.2f} steps/s "
              f"({r['excerpt_seconds_per_s']:.0f} s of audio/s), decode {1000 * r['decode_s']:.0f} ms/excerpt")


if __name__ == "__main__":
    main()
