"""Drop the flat per-run metrics of runs the sweep no longer holds.

A map stage's flat copies (reports/metrics/map/<method>/<run>.json, `core.paths.run_metrics_path`) sit in an output
DVC persists, like the run folders, so that adding a K or a seed re-runs only the new runs. Taking a K or a seed out
of params.yaml leaves the old runs' copies behind: committed beside the current ones, read by anyone who lists the
folder, hashed into dvc.lock. The run folders under data/runs stay (the grid reuses them when the K comes back, and
its flat copy is written again then); only the flat copies of runs outside this stage's grid go.

Pipeline code, outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lmm_utils.core.paths import parse_run_name


def prune_flat_metrics(metrics_dir: str | Path, method: str, grid: Iterable[tuple[int, int]]) -> list[Path]:
    """Delete metrics_dir/<method>/<run>.json for each run of `method` whose (K, seed) is not in `grid`; files that
    are not a run's flat copy (another name, another method) are kept. -> the deleted paths, sorted."""
    keep = {(int(K), int(seed)) for K, seed in grid}
    folder = Path(metrics_dir) / method
    gone = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        parsed = parse_run_name(path.stem)
        if parsed and parsed[0] == method and (parsed[1], parsed[2]) not in keep:
            path.unlink()
            gone.append(path)
    return gone


__all__ = ["prune_flat_metrics"]
