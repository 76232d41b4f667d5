"""Deprecated alias: `python -m lmm_utils.stage` still works; the module is now `lmm_utils.pipeline.stage`."""
import sys

from lmm_utils.pipeline.stage import main

if __name__ == "__main__":
    print("note: `python -m lmm_utils.stage` is now `python -m lmm_utils.pipeline.stage`", file=sys.stderr)
    main()
