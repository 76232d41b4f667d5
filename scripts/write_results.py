"""Write the README's Results section from a committed results folder (lmm_utils.evaluation.results_md).

    .venv/bin/python scripts/write_results.py --results reports/paper --readme README.md
    .venv/bin/python scripts/write_results.py --default reports/default      # only the default run's checks

The folder holds params.yaml, summary.json (reports/metrics/summary.json), evaluate.json
(reports/metrics/evaluate.json) and the figures. Only the text between <!-- results:start --> and
<!-- results:end --> changes; a missing folder, file or marker stops with a message and changes nothing. With
--default, the default run's "meaningful" checks (lmm_utils.evaluation.default_checks) go between
<!-- default-checks:start --> and <!-- default-checks:end -->.
"""
from __future__ import annotations

import argparse
import sys

from lmm_utils.evaluation.default_checks import write_checks_section
from lmm_utils.evaluation.results_md import ResultsError, write_readme


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="reports/paper", help="the results folder (default: reports/paper)")
    ap.add_argument("--readme", default="README.md", help="the README with the markers (default: README.md)")
    ap.add_argument("--default", default=None, metavar="FOLDER",
                    help="write only the default run's checks from FOLDER/summary.json (e.g. reports/default)")
    args = ap.parse_args(argv)
    if args.default:
        try:
            write_checks_section(args.default, args.readme)
        except (OSError, ValueError) as e:
            print(f"write_results: error: {e}", file=sys.stderr)
            return 2
        print(f"wrote the default run's checks into {args.readme} from {args.default}")
        return 0
    try:
        write_readme(args.results, args.readme)
    except ResultsError as e:
        print(f"write_results: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote the Results section of {args.readme} from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
