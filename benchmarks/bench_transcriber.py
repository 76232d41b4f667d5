"""Training throughput of h (models/transcriber.py) on CPU, and its parameter count.

One training step = forward on a batch of log-mel excerpts, transcription_loss against random sparse
target rolls, backward, AdamW. Reports the median over rounds (load from other processes on a shared
machine inflates single measurements), for the default config and any others asked for. Also times
decoding one excerpt (motion.from_roll's Python loop). --layout also times the same weights stored contiguous
(NCHW, the layout before the transcriber kept its conv weights channels-last): training steps, inference on one
excerpt, and the largest output difference between the two, measured in one run.

    .venv/bin/python benchmarks/bench_transcriber.py                          # batch 8 x 10 s, 1 thread
    .venv/bin/python benchmarks/bench_transcriber.py --layout --batch 4 --seconds 1.28   # a mapping step's h batch
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


def bench(cfg: TranscriberConfig, batch: int, seconds: float, steps: int, rounds: int,
          layout: torch.memory_format = torch.channels_last) -> dict:
    feat = FeatureConfig()
    n_frames = int(seconds * feat.fps)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = Transcriber(cfg, feat).to(memory_format=layout)
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
        infer = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(steps):
                model(x[:1])
            infer.append((time.perf_counter() - t0) / steps)
    t0 = time.perf_counter()
    decode({k: v[0] for k, v in out.items()}, feat.fps)
    decode_s = time.perf_counter() - t0
    return {"params": n_parameters(model), "steps_per_s": statistics.median(rates),
            "excerpt_seconds_per_s": statistics.median(rates) * batch * seconds, "decode_s": decode_s,
            "infer_s": statistics.median(infer), "out": out}


def compare_layouts(cfg: TranscriberConfig, args: argparse.Namespace) -> None:
    """The same seeded weights stored channels-last (as built) and contiguous, timed one after the other."""
    runs = {name: bench(cfg, args.batch, args.seconds, args.steps, args.rounds, fmt)
            for name, fmt in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format))}
    for name, r in runs.items():
        print(f"  {name:>13}: {r['steps_per_s']:.2f} steps/s, inference {1000 * r['infer_s']:.1f} ms/excerpt")
    a, b = runs["channels_last"], runs["contiguous"]
    diff = max(float((a["out"][k] - b["out"][k]).abs().max()) for k in a["out"])
    print(f"  channels_last / contiguous: training x{a['steps_per_s'] / b['steps_per_s']:.2f} steps/s, "
          f"inference x{b['infer_s'] / a['infer_s']:.2f} faster; largest output difference after the same steps "
          f"{diff:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="excerpt length")
    ap.add_argument("--steps", type=int, default=3, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bps", type=int, nargs="+", default=[1], help="bins per semitone to compare (odd)")
    ap.add_argument("--layout", action="store_true", help="also time the contiguous (NCHW) weight layout")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch} x {args.seconds:g} s, {args.threads} thread(s), torch {torch.__version__}")
    for bps in args.bps:
        r = bench(TranscriberConfig(bins_per_semitone=bps), args.batch, args.seconds, args.steps, args.rounds)
        print(f"bps={bps}: {r['params']:,} parameters, {r['steps_per_s']:.2f} steps/s "
              f"({r['excerpt_seconds_per_s']:.0f} s of audio/s), decode {1000 * r['decode_s']:.0f} ms/excerpt")
        if args.layout:
            compare_layouts(TranscriberConfig(bins_per_semitone=bps), args)


if __name__ == "__main__":
    main()
