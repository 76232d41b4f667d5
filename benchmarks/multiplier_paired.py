"""The effective-data multiplier's interval with seeds resampled together (paired) or apart, from archived runs.

A seed sets a run's pair draw whatever the method (`mapping.draws.draw_pairs(pool, K, seed)`), and at small K the
draw is most of the spread (`benchmarks/stratified_draw.py`), so the curves of lmm and supervised move together with
the draw; resampling their seeds apart counts that spread twice. `curves.multiplier(..., paired=True)` resamples one
set of seeds for both; the evaluate stage does so since 57d82fe (`evaluation.multiplier_resampling: paired`), and
resampled them apart before. This script builds the curve points from the archived runs' own metrics.json (h note F1
on all excerpts of T, T_timbre and T_noisy, the values the evaluate stage scores), checks that the interval of the
kind an evaluate.json's rows name (their "resampling"; none: independent) reproduces it where it has the curve, and
writes both kinds.

    .venv/bin/python benchmarks/multiplier_paired.py --archive runs_archive/paper \
        --evaluate reports/paper/evaluate.json --out benchmarks/results/multiplier_paired_paper.json

Figures only, nothing asserted; nothing here feeds back into any method. With 3 seeds a bootstrap has 10 distinct
resamples of the seed set: either interval is coarse.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paired_differences import POOLS, run_scores  # noqa: E402  (the archived runs' h note F1, read one way)

CURVE_OF_POOL = {"T": "h-note_f1-all", "T_timbre": "h_timbre-note_f1-all", "T_noisy": "h_noisy-note_f1-all"}


def points(scores: dict, pool: str, methods: tuple[str, ...]) -> list[dict]:
    """The curve points the evaluate stage makes (curves.curve_points), from one score per run."""
    from lmm_utils.evaluation.curves import Curve, curve_points  # deferred: after sys.path holds the checkout

    table = [{"system": "h", "metric": "note_f1", "subset": "all", "method": m, "K": K, "seed": seed, "value": s[pool]}
             for (m, K, seed), s in scores.items() if m in methods and pool in s]
    return curve_points(table, Curve("h", "note_f1", "all"))


def main() -> None:
    from lmm_utils.evaluation.curves import multiplier  # deferred: after sys.path holds the checkout

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=Path("runs_archive/paper"))
    ap.add_argument("--evaluate", type=Path, default=Path("reports/paper/evaluate.json"),
                    help="the committed evaluate.json whose intervals this must reproduce")
    ap.add_argument("--target", default="lmm")
    ap.add_argument("--reference", default="supervised")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    scores = run_scores(args.archive)
    if not scores:
        sys.exit(f"no archived run with h scores under {args.archive}")
    committed = json.loads(args.evaluate.read_text()).get("multiplier", {}) if args.evaluate.is_file() else {}
    out = {"what": __doc__.splitlines()[0], "command": " ".join(sys.argv), "target": args.target,
           "reference": args.reference, "metric": "h note F1, all excerpts", "pools": {}}
    mismatches, compared = [], 0
    for pool in POOLS:
        pts = points(scores, pool, (args.target, args.reference))
        apart = {r["K"]: r for r in multiplier(pts, args.target, args.reference)}
        paired = {r["K"]: r for r in multiplier(pts, args.target, args.reference, paired=True)}
        ref_rows = committed.get(CURVE_OF_POOL[pool], {})
        rows = []
        for K in sorted(apart):
            a, p = apart[K], paired[K]
            c = ref_rows.get(f"K={K}", {})
            if c:
                compared += 1
                mine = p if c.get("resampling") == "paired by seed" else a  # the kind evaluate.json's row made
                if c.get("display") != mine["display"]:
                    mismatches.append(f"{pool} K={K}: evaluate.json {c.get('display')!r}, here {mine['display']!r}")
            rows.append({"K": K, "point": a["point_display"], "independent": a["interval_display"],
                         "paired": p["interval_display"], "resampling": p.get("resampling"),
                         "evaluate_json": c.get("display"), "evaluate_json_resampling": c.get("resampling")})
            print(f"{pool:>8} K={K:<3} {a['point_display']:>12}  independent {a['interval_display']:<22} "
                  f"paired {p['interval_display']}")
        out["pools"][pool] = rows
    out["n_compared_with_evaluate_json"] = compared
    out["reproduces_evaluate_json"] = (not mismatches) if compared else None  # None: nothing to compare with
    out["mismatches"] = mismatches
    for m in mismatches:
        print("MISMATCH", m)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
