"""Threads for a stage run beside its siblings (pipeline.stage --each): its share of the cores.

A 2-thread k-means beside a busy sibling waits on the core the sibling holds: LM^A's data preparation took 111 s
instead of 11 s when LM^V trained beside it. --each sets THREADS_ENV for its runs; thread_share caps by it.
"""
from __future__ import annotations

import os

from lmm_utils.core.parallel import usable_cores

THREADS_ENV = "LMM_STAGE_THREADS"


def thread_share(threads: int) -> int:
    """`threads`, capped by the share --each gave this run (LMM_STAGE_THREADS); unchanged outside --each. Under
    --each, 0 (torch's default: every core) becomes the share too."""
    cap = os.environ.get(THREADS_ENV)
    if not cap:
        return threads
    return max(1, min(int(threads), int(cap))) if threads else max(1, int(cap))


def share_env(n_runs: int) -> dict[str, str]:
    """The environment of one of `n_runs` runs started at once: the cores shared out, at least one each."""
    return {**os.environ, THREADS_ENV: str(max(1, usable_cores() // max(1, n_runs)))}


__all__ = ["THREADS_ENV", "share_env", "thread_share"]
