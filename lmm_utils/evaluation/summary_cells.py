"""summary.json's cells as the README's Results section reads them: (method, K) -> cell, a cell's mean and sd over
seeds, and the seed band the curves draw (rebuilt from mean, sd and n). Shared by results_md and ablations_md.
"""
from __future__ import annotations

import math


def cells(summary: dict) -> dict[tuple[str, int], dict]:
    """{(method, K): summary cell}; keys are "<method>-K<K>" and a method may itself hold dashes (lmm-no_lmA)."""
    out = {}
    for key, cell in summary.items():
        method, _, k = key.rpartition("-K")
        if method and k.isdigit():
            out[(method, int(k))] = cell
    return out


def mean_sd(cell: dict, label: str) -> tuple[float | None, float | None, int]:
    mean, sd = cell.get("h", {}).get(label), cell.get("h_std", {}).get(label)
    return mean, sd, int(cell.get("n_seeds", 0))


def fmt_mean_sd(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def seed_band(mean: float, sd: float | None, n: int, confidence: float = 0.95, kind: str = "t") -> tuple[float, float] | None:
    """The curves' band (curves.band) rebuilt from summary.json's mean, sample sd and n, so that the verdict speaks of
    the band the figures draw: n >= 3: mean +- q sd / sqrt(n); n = 2: the min-max range, which is mean +- sd / sqrt(2)
    for two values; n < 2: no band (None)."""
    from scipy import stats  # deferred: ~1.3 s to import, and only the verdict needs it

    if n < 2 or sd is None or not math.isfinite(sd):
        return None
    if n == 2:
        half = sd / math.sqrt(2)
    else:
        p = 1.0 - (1.0 - confidence) / 2.0
        q = float(stats.t.ppf(p, n - 1)) if kind == "t" else float(stats.norm.ppf(p))
        half = q * sd / math.sqrt(n)
    return mean - half, mean + half



__all__ = ["cells", "mean_sd", "fmt_mean_sd", "seed_band"]
