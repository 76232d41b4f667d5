"""Re-decode a restored sweep's runs at this checkout's code when only h's decoding changed (lmm_utils.pipeline.redecode).

    .venv/bin/python scripts/redecode_runs.py --root . --trained-by c4302ae                          # shows the diff
    .venv/bin/python scripts/redecode_runs.py --root . --trained-by c4302ae --only-decoding-changed  # re-decodes
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmm_utils.pipeline.redecode import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
