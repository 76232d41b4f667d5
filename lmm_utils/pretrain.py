"""Deprecated alias: `python -m lmm_utils.pretrain` still works; the module is now `lmm_utils.lm.pretrain`."""
import sys

from lmm_utils.lm.pretrain import main

if __name__ == "__main__":
    print("note: `python -m lmm_utils.pretrain` is now `python -m lmm_utils.lm.pretrain`", file=sys.stderr)
    sys.exit(main())
