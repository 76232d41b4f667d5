"""Speed of the data stages on this machine: parsing (works/s), engraving (excerpts/s) and rendering
(audio seconds per wall second, per core) with a kept-alive pyfluidsynth synth vs the fluidsynth CLI.

    .venv/bin/python benchmarks/bench_data.py [--works 40] [--renders 40]

Prints figures; asserts nothing. Run on an idle machine for stable numbers.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--works", type=int, default=40)
    ap.add_argument("--renders", type=int, default=40)
    args = ap.parse_args()

    from lmm_utils.core.motion import write_midi
    from lmm_utils.data.corpus import CHORALES, FOLK, list_works, parse_works
    from lmm_utils.data.engrave import EngraveConfig, engrave
    from lmm_utils.data.excerpts import ExcerptConfig, make_excerpts
    from lmm_utils.data.music21_compat import add_bundle_iteration
    from lmm_utils.data.pianist import PianistConfig, perform
    from lmm_utils.data.render import FluidRenderer, RecordingConditions, find_soundfont

    add_bundle_iteration()  # as the corpus stage does: linear, not quadratic, walk of music21's catalogue
    works = list_works(list(FOLK) + [CHORALES], args.works // 5, seed=0)
    t = time.perf_counter()
    pieces, _ = parse_works(works, workers=1)
    dt = time.perf_counter() - t
    print(f"parse (1 core): {len(works) / dt:.1f} works/s ({len(works)} works, {dt:.1f} s)")

    excerpts = [e for p in pieces for e in make_excerpts(p, ExcerptConfig(), 0)][: args.renders]
    t = time.perf_counter()
    for e in excerpts:
        engrave(e, EngraveConfig())
    dt = time.perf_counter() - t
    print(f"engrave (1 core): {len(excerpts) / dt:.1f} excerpts/s")

    perfs = [perform(e, PianistConfig(), np.random.default_rng(i)) for i, e in enumerate(excerpts)]
    audio_seconds = sum(p.duration + 1.0 for p in perfs)
    renderer = FluidRenderer(16000)
    for sf in ("FluidR3_GM.sf2", "TimGM6mb.sf2"):
        renderer.render(perfs[0], RecordingConditions(sf))  # load the soundfont outside the timing
        t = time.perf_counter()
        for p in perfs:
            renderer.render(p, RecordingConditions(sf, reverb_level=0.3, eq_tilt_db=2.0, noise_snr_db=30.0))
        dt = time.perf_counter() - t
        print(f"render pyfluidsynth, a fresh synth per render, {sf} (1 core): {audio_seconds / dt:.0f}x real time "
              f"({audio_seconds / len(perfs):.1f} s per excerpt)")

    cli = shutil.which("fluidsynth")
    if cli:
        n = min(10, len(perfs))
        with tempfile.TemporaryDirectory() as tmp:
            for i, p in enumerate(perfs[:n]):
                write_midi(p, Path(tmp) / f"{i}.mid")
            sf_path = str(find_soundfont("FluidR3_GM.sf2"))
            t = time.perf_counter()
            for i in range(n):
                subprocess.run([cli, "-ni", "-q", "-r", "16000", "-F", f"{tmp}/{i}.wav", sf_path, f"{tmp}/{i}.mid"],
                               check=True, capture_output=True)
            dt = time.perf_counter() - t
        secs = sum(p.duration + 1.0 for p in perfs[:n])
        print(f"render fluidsynth CLI per call, FluidR3_GM (1 core): {secs / dt:.0f}x real time")


if __name__ == "__main__":
    main()
