"""Keep a long sweep's finished runs in git, so it resumes on another machine (lmm_utils.pipeline.run_archive).

    .venv/bin/python scripts/run_archive.py restore --archive runs_archive/paper   # before dvc repro
    .venv/bin/python scripts/run_archive.py check   --archive runs_archive/paper   # after the stages before map
    .venv/bin/python scripts/run_archive.py save    --archive runs_archive/paper   # after it (or while it runs)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmm_utils.pipeline.run_archive import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
