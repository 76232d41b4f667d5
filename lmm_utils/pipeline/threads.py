"""Threads for a stage run beside its siblings (pipeline.stage --each): its share of the cores.

A 2-thread k-means beside a busy sibling waits on the core the sibling holds: LM^A's data preparation took 111 s
instead of ~15 s when LM^V trained beside it. --each sets THREADS_ENV for its runs; thread_share caps by it.
"""
from __future__ import annotations

import os

THREADS_ENV = "LMM_STAGE_THREADS"


def thread_share(threads: int) -> int:
    """`threads`, capped by the share --each gave this run (LMM_STAGE_THREADS); unchanged outside --each (and 0,
    torch's default, stays 0)."""
    cap = os.environ.get(THREADS_ENV)
    return max(1, min(int(threads), int(cap))) if cap and threads else threads


def share_env(n_runs: int) -> dict[str, str]:
    """The environment of one of `n_runs` runs started at once: the cores shared out, at least one each."""
    return {**os.environ, THREADS_ENV: str(max(1, (os.cpu_count() or 1) // max(1, n_runs)))}


__all__ = ["THREADS_ENV", "share_env", "thread_share"]
