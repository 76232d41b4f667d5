"""How many of h's false positives on T are harmonics heard as notes: an extra note (matched to no true note, onset
50 ms + pitch) that sits 12, 19 or 24 semitones (octave, twelfth, two octaves) from a true note sounding at its onset.

    .venv/bin/python benchmarks/octave_errors.py --project . --runs supervised/supervised-K16-s0 \\
        --label bc8462d --out benchmarks/results/octave_errors.json --add

Reads a project's stored run predictions (system h: T as recorded) and T's true motion through EvaluationData
(evaluation code: nothing here feeds back into a method).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HARMONIC_INTERVALS = (12, 19, 24)
EARLY_S = 0.05  # a true note counts as sounding from 50 ms before its onset (the matching tolerance) to its release


def octave_errors(truth: dict, estimates: dict) -> dict:
    from lmm_utils.evaluation.metrics import match_notes

    n_ref = n_est = n_fp = n_harmonic = 0
    for i, est in estimates.items():
        ref = truth[i]
        n_ref, n_est = n_ref + len(ref.notes), n_est + len(est.notes)
        hit = {e for _, e in match_notes(ref, est)}
        for j, n in enumerate(est.notes):
            if j in hit:
                continue
            n_fp += 1
            n_harmonic += any(abs(r.pitch - n.pitch) in HARMONIC_INTERVALS and r.onset - EARLY_S <= n.onset <= r.offset
                              for r in ref.notes)
    return {"true_notes": n_ref, "estimated_notes": n_est, "false_positives": n_fp, "harmonic_false_positives": n_harmonic,
            "harmonic_share": round(n_harmonic / max(n_fp, 1), 4), "excerpts": len(estimates)}


def main() -> None:
    from lmm_utils.data.evaluation import EvaluationData
    from lmm_utils.evaluation.predictions import read_predictions

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, default=ROOT)
    p.add_argument("--runs", nargs="+", required=True, help="run folders under <project>/data/runs")
    p.add_argument("--label", default="", help="prefix of the rows (e.g. the project's commit)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--add", action="store_true", help="merge into --out's rows")
    args = p.parse_args()
    truth = EvaluationData(args.project).motion("T")
    rows = {f"{args.label} {run}".strip(): octave_errors(truth, read_predictions(
        args.project / "data/runs" / run / "predictions.json.gz")["h"]) for run in args.runs}
    print(json.dumps(rows, indent=1))
    if args.out:
        before = json.loads(args.out.read_text())["rows"] if args.add and args.out.is_file() else {}
        args.out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "rows": {**before, **rows}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
