"""How good are the K pairs' pseudo-motion velocities? A diagnostic (issue 15 item 2): prints figures, asserts nothing.

    .venv/bin/python benchmarks/pseudo_velocity.py --n 30
    .venv/bin/python benchmarks/pseudo_velocity.py --root /path/to/a/checkout --synth data/synth/S.pt --n 30

For P's first --n excerpts (P: the pool the K pairs are drawn from), aligns each (score, recording) pair with S
(methods.alignment.align_pair) under each velocity mode, and scores the pseudo-motion's velocities against P's TRUE
motion, read through lmm_utils.data.evaluation.EvaluationData (evaluation only: method code never reads it) on the
notes matched within 100 ms: velocity MAE (MIDI units) and per-note Pearson r (mean over excerpts, as g's
velocity_r is averaged), and r pooled over all notes. Seconds per pair are a ratio within this one run.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from lmm_utils.core.features import FeatureConfig
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.evaluation.metrics import expressive_scores, match_notes
from lmm_utils.mapping.run import load_frozen_synth
from lmm_utils.methods.alignment import AlignConfig, align_pair

MODES = {  # name -> AlignConfig overrides
    "dynamics (marks)": {"velocity_mode": "dynamics"},
    "energy w=0.5": {"velocity_mode": "energy", "velocity_energy_weight": 0.5},
    "energy w=1": {"velocity_mode": "energy", "velocity_energy_weight": 1.0},
    "invert S w=0.5": {"velocity_mode": "invert", "velocity_energy_weight": 0.5},
    "invert S w=1": {"velocity_mode": "invert", "velocity_energy_weight": 1.0},
    "invert S w=0.5, 6-level grid": {"velocity_mode": "invert", "velocity_energy_weight": 0.5,
                                     "velocity_grid": (16, 28, 48, 72, 100, 127)},
    "invert S w=0.5, 4-level grid": {"velocity_mode": "invert", "velocity_energy_weight": 0.5,
                                     "velocity_grid": (20, 40, 80, 127)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="project root holding data/ (scores, audio, motion of P)")
    ap.add_argument("--synth", default="data/synth/S.pt", help="S's checkpoint, relative to --root")
    ap.add_argument("--n", type=int, default=30, help="P excerpts (the first n with a recording, by id)")
    ap.add_argument("--modes", nargs="*", default=list(MODES), help=f"of {list(MODES)}")
    args = ap.parse_args()

    feat = FeatureConfig()
    ev = EvaluationData(args.root)
    synth = load_frozen_synth(f"{args.root}/{args.synth}")
    scores, truth = ev.scores("P"), ev.motion("P")
    ids = [i for i in ev.audio_ids("P") if i in scores and i in truth][: args.n]
    logmels = {i: ev.logmel("P", i, feat) for i in ids}
    print(f"P excerpts: {len(ids)}; truth velocity sd within an excerpt: "
          f"{np.mean([np.std([n.velocity for n in truth[i].notes]) for i in ids]):.2f}")
    print("| mode | velocity MAE | velocity r (mean over excerpts) | r pooled | notes matched | s / pair |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.modes:
        cfg = dataclasses.replace(AlignConfig(), **MODES[name])
        maes, rs, ref_v, est_v, n_match = [], [], [], [], 0
        t0 = time.perf_counter()
        for i in ids:
            pseudo = align_pair(scores[i], logmels[i], synth, cfg, feat)
            pairs = match_notes(truth[i], pseudo, onset_tolerance=0.1)
            if not pairs:
                continue
            a = np.array([truth[i].notes[r].velocity for r, _ in pairs], float)
            b = np.array([pseudo.notes[e].velocity for _, e in pairs], float)
            maes.append(float(np.mean(np.abs(a - b))))
            rs.append(expressive_scores(truth[i], pseudo, pairs)["velocity_r"])
            ref_v += a.tolist()
            est_v += b.tolist()
            n_match += len(pairs)
        secs = (time.perf_counter() - t0) / max(len(ids), 1)
        pooled = float(np.corrcoef(ref_v, est_v)[0, 1]) if np.std(est_v) > 0 else 0.0
        print(f"| {name} | {np.mean(maes):.2f} | {np.nanmean(rs):.3f} | {pooled:.3f} | {n_match} | {secs:.2f} |")


if __name__ == "__main__":
    main()
