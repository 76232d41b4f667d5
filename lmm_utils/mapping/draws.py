"""The sweep and its pair draws: which (method, K, seed) runs there are, and which K pairs of P each run gets.

Draws are seeded and *nested*: the K pairs of seed s are the first K of one seeded permutation of the pair
pool, so K=1's pair is the first of K=4's, and a draw does not depend on which Ks are in the sweep.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from lmm_utils.core.paths import sweep_runs
from lmm_utils.data.excerpts import stable_seed
from lmm_utils.data.pools import TrainingData


def sweep(map_params: dict) -> list[tuple[str, int, int]]:
    """(method, K, seed) of every run of the sweep params.yaml defines (each method x its Ks x seeds)."""
    return sweep_runs(map_params)


def pair_pool(root: str | Path = ".") -> list[str]:
    """P's excerpts usable as pairs (a score with notes and a recording), sorted."""
    data = TrainingData(Path(root))
    with_audio = set(data.audio_ids("P"))
    return sorted(s.id for s in data.scores("P") if s.notes and s.id in with_audio)


def draw_pairs(pool: list[str], K: int, seed: int) -> list[str]:
    """The K pairs of seed `seed`: the first K of one seeded permutation of the pool, so draws are nested
    (K=1's pair is the first of K=4's) and do not depend on which Ks are in the sweep."""
    pool = sorted(pool)
    if K > len(pool):
        raise ValueError(f"K={K} pairs asked for, but the pair pool P holds {len(pool)} usable excerpts")
    if K < 0:
        raise ValueError(f"K must be >= 0, got {K}")
    order = np.random.default_rng(stable_seed("pairs", seed)).permutation(len(pool))
    return [pool[i] for i in order[:K]]


def run_params(map_params: dict, seed: int) -> dict:
    """The mapping section as a method sees it: method.seed = the run's seed, method.device = mapping.device."""
    p = copy.deepcopy(map_params or {})
    p.setdefault("method", {})
    p["method"]["seed"] = int(seed)
    p["method"].setdefault("device", p.get("device", "auto"))
    return p


__all__ = ["sweep", "pair_pool", "draw_pairs", "run_params"]
