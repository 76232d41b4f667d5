"""Paired differences between methods at equal K: each seed's runs of every method share one pair draw.

The multiplier and the seed bands in the README's Results resample or spread each method's seeds on their own. But
a run's seed sets its pairs (`mapping.draws.draw_pairs(pool, K, seed)` does not depend on the method), and at small
K the draw is most of the spread (`benchmarks/stratified_draw.py --draws fixed:S`: 0.08 between two draws of four
pairs, 0.01-0.02 within one). So target minus reference on the same seed removes the draw from the comparison. Per
(method, K): the per-seed differences of h note F1, their mean, a Student-t interval over seeds, and how many seeds
favour each side (the interval is the Results' seed band, `curves.band`: Student t for 3 or more seeds).
Read from the archived runs' own metrics.json (committed), on T, T_timbre and T_noisy.

    .venv/bin/python benchmarks/paired_differences.py --archive runs_archive/paper --reference supervised \
        --out benchmarks/results/paired_differences_paper.json

Figures only, nothing asserted; nothing here feeds back into any method.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POOLS = ("T", "T_timbre", "T_noisy")


def run_scores(archive: Path) -> dict[tuple[str, int, int], dict[str, float]]:
    """{(method, K, seed): {pool: h note F1 over all T excerpts}} of every archived run (scoring.discover_runs)."""
    from lmm_utils.evaluation.scoring import discover_runs

    out = {}
    for run in discover_runs(archive):
        try:
            h = json.loads((run.path / "metrics.json").read_text()).get("h") or {}
        except (OSError, ValueError):
            continue
        scores = {pool: h[pool]["all"]["note_f1"] for pool in POOLS if pool in h and "all" in h[pool]}
        if scores:
            out[(run.method, run.K, run.seed)] = scores
    return out


def paired(scores: dict, target: str, reference: str, confidence: float = 0.95) -> list[dict]:
    """One row per K where both methods have runs on at least two common seeds."""
    from lmm_utils.evaluation.curves import band  # the seed band of the Results (Student t for n >= 3)

    rows = []
    ks = sorted({k for (m, k, _) in scores if m == target})
    for K in ks:
        seeds = sorted(s for (m, k, s) in scores if m == target and k == K and (reference, K, s) in scores)
        if len(seeds) < 2:
            continue
        row = {"target": target, "reference": reference, "K": K, "seeds": seeds}
        for pool in POOLS:
            d = np.array([scores[(target, K, s)][pool] - scores[(reference, K, s)][pool] for s in seeds
                          if pool in scores[(target, K, s)] and pool in scores[(reference, K, s)]])
            if len(d) < 2:
                continue
            b = band(d, confidence)
            row[pool] = {"differences": [round(float(x), 4) for x in d], "mean": round(b["mean"], 4),
                         "lo": round(b["lo"], 4), "hi": round(b["hi"], 4), "band": b["band"],
                         "target_ahead": int((d > 0).sum()), "reference_ahead": int((d < 0).sum())}
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=Path("runs_archive/paper"))
    ap.add_argument("--reference", default="supervised")
    ap.add_argument("--targets", nargs="*", default=None, help="default: every other method of the archive")
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    scores = run_scores(args.archive)
    if not scores:
        sys.exit(f"no archived run with h scores under {args.archive}")
    targets = args.targets or sorted({m for (m, _, _) in scores} - {args.reference})
    rows = [r for t in targets for r in paired(scores, t, args.reference, args.confidence)]
    for r in rows:
        cells = []
        for pool in POOLS:
            if pool in r:
                p = r[pool]
                cells.append(f"{pool} {p['mean']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}] ({p['target_ahead']}:{p['reference_ahead']})")
        print(f"{r['target']:>32} K={r['K']:<3} " + "  ".join(cells))
    if args.out:
        args.out.write_text(json.dumps({"what": __doc__.splitlines()[0], "command": " ".join(sys.argv),
                                        "confidence": args.confidence, "metric": "h note F1, all T excerpts",
                                        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
