"""Deprecated alias: `python -m lmm_utils.params` still works; the module is now `lmm_utils.core.params`."""
import sys

from lmm_utils.core.params import main

if __name__ == "__main__":
    print("note: `python -m lmm_utils.params` is now `python -m lmm_utils.core.params`", file=sys.stderr)
    main()
