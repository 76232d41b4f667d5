"""Fill lmm_utils/app/shipped/ from a trained sweep: h and g of the run picked by shipping.RULE (the most pairs, lmm
before supervised, the lowest seed; no score is read: every score is on the test pools), their checkpoints (+ the
frozen LMs they read) and provenance.json.

    .venv/bin/python scripts/ship_models.py --runs data/runs --profile paper
    .venv/bin/python scripts/ship_models.py --runs data/runs --profile paper --dry-run        # only print the picks
    .venv/bin/python scripts/ship_models.py --runs data/runs --profile paper --methods supervised

Run it from the project root after `dvc repro` (stage map); then commit lmm_utils/app/shipped/.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmm_utils.app import shipping
from lmm_utils.evaluation.scoring import discover_runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("data/runs"), help="the sweep's run folders (default data/runs)")
    p.add_argument("--profile", required=True, help="the params profile the sweep ran with (recorded in provenance)")
    p.add_argument("--root", type=Path, default=Path("."), help="project root: the runs' LM folders and git HEAD")
    p.add_argument("--out", type=Path, default=shipping.SHIPPED_DIR, help="default: the package's shipped folder")
    p.add_argument("--methods", nargs="+", default=list(shipping.SHIP_METHODS),
                   help="the methods preferred, in order, among the runs with the most pairs (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the picks, write nothing")
    args = p.parse_args(argv)
    methods = tuple(args.methods)
    try:
        if args.dry_run:
            runs = discover_runs(args.runs)
            for kind in shipping.MODELS:
                chosen = shipping.pick(runs, kind, methods)
                print(f"{kind}: {chosen.run.name} at {chosen.run.path}")
            return 0
        prov = shipping.ship(args.runs, args.profile, args.out, args.root, methods)
    except shipping.ShippingError as exc:
        print(f"ship_models: error: {exc}", file=sys.stderr)
        return 1
    for kind in shipping.MODELS:
        print(f"{kind}: {shipping.describe(prov, kind)}")
    print(json.dumps({k: prov[k] for k in ("profile", "date", "git_commit", "git_dirty")}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
