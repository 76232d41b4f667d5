"""Copy a finished sweep's results into a committed folder (lmm_utils.evaluation.results_folder).

    .venv/bin/python scripts/collect_results.py --out reports/default --profile default
    .venv/bin/python scripts/write_results.py --results reports/default --readme README.md
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmm_utils.evaluation.results_folder import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
