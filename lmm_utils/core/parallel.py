"""One helper to map work over processes with a progress bar (results in input order), and the cores there are."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from multiprocessing import get_context

from tqdm import tqdm


def usable_cores() -> int:
    """The cores this process may run on (an affinity mask or a container's cpuset counts, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def parallel_map(fn: Callable, items: list, workers: int, desc: str, unit: str = "item",
                 start_method: str = "fork", in_process_ok: bool = True) -> Iterable:
    """Map over items on `workers` processes (0 = all cores) with a progress bar; yields results in order.

    `start_method="forkserver"` with `in_process_ok=False` is for work that holds native threads
    (FluidSynth): such state must never be created in the caller and then inherited by a fork.
    """
    workers = min(workers or os.cpu_count() or 1, max(1, len(items)))
    if workers == 1 and in_process_ok:
        yield from tqdm(map(fn, items), total=len(items), desc=desc, unit=unit)
        return
    with get_context(start_method).Pool(workers) as pool:
        yield from tqdm(pool.imap(fn, items, chunksize=2), total=len(items), desc=desc, unit=unit)
