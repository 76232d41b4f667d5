"""LM^A's features in h, on T: lmm with `mapping.lmm.lmA: true` against the paper table's lmm (off), paired by seed.

The paper profile has no run with LM^A's features in h: lmm keeps them off (`mapping.lmm.lmA: false`, chosen on a
validation part of P at K = 0, README "LM^A's features in h, again"), so lmm-no_lmV and lmm-no_lmA_prior leave its h
unchanged and the ablation table cannot say what LM^A does for h. This reads a set of lmm runs made with the paper's
params and `lmA: true` (benchmarks/results/lmm_lmA_on, made by `dvc repro map@lmm` with those three keys changed on
data whose fingerprint equals the archive's: `scripts/run_archive.py check`) beside the archived paper runs of lmm
at the same K and seed -- the same pairs (checked), the same data -- and gives the per-seed difference of h note F1
on all of T, T_timbre and T_noisy with the Results' seed band (`curves.band`) and how many seeds favour each side.
Nothing is chosen from it: the switch stays as the validation set it.

    .venv/bin/python benchmarks/lmA_in_h.py --runs benchmarks/results/lmm_lmA_on --archive runs_archive/paper \
        --out benchmarks/results/lmA_in_h_paper.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paired_differences import POOLS, paired  # noqa: E402  (the same-seed differences, computed one way)


def lmm_runs(folder: Path) -> dict[tuple[int, int], dict]:
    """{(K, seed): metrics.json} of the plain lmm runs under folder (scoring.discover_runs)."""
    from lmm_utils.evaluation.scoring import discover_runs  # deferred: after sys.path holds the checkout

    out = {}
    for run in discover_runs(folder):
        if run.method == "lmm" and (run.path / "metrics.json").is_file():
            out[(run.K, run.seed)] = json.loads((run.path / "metrics.json").read_text())
    return out


ON = "lmm, LM^A in h"  # the label of the runs with lmA true beside the archive's "lmm" in paired()'s scores


def compare(on: dict, off: dict, confidence: float = 0.95) -> list[dict]:
    """paired_differences.paired over the two sets (the same draws checked first), with each side's values."""
    import numpy as np  # deferred: --help reads the docstring only

    for (K, s), m in on.items():
        if (K, s) not in off:
            print(f"K={K}: seed {s} has no archived run to pair with: left out", file=sys.stderr)
        elif m.get("pairs") != off[(K, s)].get("pairs"):
            sys.exit(f"K={K}: seed {s} drew other pairs in the two sets: not a paired comparison")
    f1 = lambda m: {p: m["h"][p]["all"]["note_f1"] for p in POOLS if p in m["h"]}  # noqa: E731
    scores = {**{(ON, K, s): f1(m) for (K, s), m in on.items()}, **{("lmm", K, s): f1(m) for (K, s), m in off.items()}}
    rows = paired(scores, ON, "lmm", confidence)
    for r in rows:
        for pool in POOLS:
            if pool in r:
                on_f1 = [scores[(ON, r["K"], s)][pool] for s in r["seeds"]]
                off_f1 = [scores[("lmm", r["K"], s)][pool] for s in r["seeds"]]
                r[pool].update({"lmA_on": [round(x, 4) for x in on_f1], "lmA_off": [round(x, 4) for x in off_f1],
                                "mean_on": round(float(np.mean(on_f1)), 4), "mean_off": round(float(np.mean(off_f1)), 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("benchmarks/results/lmm_lmA_on"))
    ap.add_argument("--archive", type=Path, default=Path("runs_archive/paper"))
    ap.add_argument("--baseline_check", type=Path, default=None,
                    help="lmm runs with LM^A off re-made where --runs were made: how close they come to the archive's")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    on, off = lmm_runs(args.runs), lmm_runs(args.archive)
    if not on:
        sys.exit(f"no lmm run under {args.runs}")
    rows = compare(on, off)
    check = []
    for (K, seed), m in sorted(lmm_runs(args.baseline_check).items() if args.baseline_check else []):
        a = off.get((K, seed))
        if a is not None:
            check.append({"K": K, "seed": seed, "same_fingerprint": m.get("fingerprint") == a.get("fingerprint"),
                          **{p: {"here": round(m["h"][p]["all"]["note_f1"], 4), "archive": round(a["h"][p]["all"]["note_f1"], 4)}
                             for p in POOLS if p in m["h"] and p in a["h"]}})
            print(f"baseline check K={K} seed={seed}: fingerprint {'equal' if check[-1]['same_fingerprint'] else 'DIFFERS'}; "
                  + ", ".join(f"{p} {check[-1][p]['here']:.4f} here, {check[-1][p]['archive']:.4f} archived" for p in POOLS if p in check[-1]))
    for r in rows:
        cells = [f"{p} {r[p]['mean_off']:.3f} -> {r[p]['mean_on']:.3f} ({r[p]['mean']:+.3f} "
                 f"[{r[p]['lo']:+.3f}, {r[p]['hi']:+.3f}], {r[p]['target_ahead']}:{r[p]['reference_ahead']})" for p in POOLS if p in r]
        print(f"K={r['K']:<3} " + "  ".join(cells))
    if args.out:
        args.out.write_text(json.dumps({"what": __doc__.splitlines()[0], "command": " ".join(sys.argv),
                                        "metric": "h note F1, all T excerpts", "rows": rows, "baseline_check": check},
                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
