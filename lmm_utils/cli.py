"""Deprecated alias: `python -m lmm_utils.cli` still works; the module is now `lmm_utils.app.cli`."""
import sys

from lmm_utils.app.cli import main

if __name__ == "__main__":
    print("note: `python -m lmm_utils.cli` is now `python -m lmm_utils.app.cli`", file=sys.stderr)
    sys.exit(main())
