"""Speed of the differentiable piano S: prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_synth.py                 # both kinds, default configs, torch's threads
    .venv/bin/python benchmarks/bench_synth.py --threads 1 --batch 16 --seconds 10
    .venv/bin/python benchmarks/bench_synth.py --fit           # + fitting throughput on FluidSynth data

Forward without gradients (frames/s, real-time factor), forward + backward with gradients to the roll
(the play-listen-correct loop, dense over all keys), and a fitting step (no input gradients: S then
skips keys that are never struck). --fit also renders random excerpts and times the whole default fit.
"""
from __future__ import annotations

import argparse
import time

import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.models.synth import KINDS, make_synth
from lmm_utils.synth.fit import logmel_l1_loss
from lmm_utils.synth.judge import measure_speed
from lmm_utils.synth.pairs import make_random_pairs
from lmm_utils.synth.random_motion import RandomMotionConfig


def fit_step_seconds(model, batch: tuple, repeats: int = 3) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    best = float("inf")
    for _ in range(repeats + 1):  # first = warm-up
        t0 = time.perf_counter()
        loss = logmel_l1_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--fit", action="store_true", help="also render random data and time fitting steps")
    ap.add_argument("--n-random", type=int, default=64, help="excerpts rendered for --fit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    feat = FeatureConfig()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch} x {args.seconds} s "
          f"= {args.batch * (int(args.seconds * feat.fps) + 1)} frames")
    kinds = [k for k in args.kinds.split(",") if k]
    for kind in kinds:
        torch.manual_seed(0)
        model = make_synth(kind, feat=feat)
        n_params = sum(p.numel() for p in model.parameters())
        r = measure_speed(model, batch=args.batch, seconds=args.seconds, repeats=args.repeats)
        print(f"{kind:9s} {n_params:7d} params | forward {r['forward_s'] * 1e3:7.1f} ms "
              f"= {r['forward_frames_per_s']:9.0f} frames/s, real-time x{r['real_time_factor']:6.0f} | "
              f"forward+backward (grad to roll) {r['forward_backward_s'] * 1e3:7.1f} ms")
    if not args.fit:
        return
    pianos = [("FluidR3_GM.sf2", 0), ("FluidR3_GM.sf2", 1), ("TimGM6mb.sf2", 0), ("TimGM6mb.sf2", 1)]
    t0 = time.perf_counter()
    pairs = make_random_pairs(args.n_random, 0, pianos, feat, RandomMotionConfig(seconds=args.seconds), workers=0)
    dt = time.perf_counter() - t0
    print(f"rendered {args.n_random} random excerpts of {args.seconds} s in {dt:.1f} s "
          f"({args.n_random * args.seconds / dt:.0f} s of audio per s, incl. soundfont loading)")
    batch = pairs.batch(list(range(min(args.batch, len(pairs)))))
    for kind in kinds:
        torch.manual_seed(0)
        model = make_synth(kind, feat=feat)
        s = fit_step_seconds(model, batch, args.repeats)
        print(f"{kind:9s} fitting step (batch {len(batch[0])}, struck keys only): {s * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
