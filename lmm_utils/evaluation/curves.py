"""Sample-efficiency curves from the evaluation's long table: quality against K per method, the band over
seeds, the area under each curve, and the effective-data multiplier (how many pairs a reference method
needs to match another method's quality). Pure functions of the table; nothing here reads files.

x is always log2(K + 1): K = 0 sits at 0, and each doubling of the pairs is one unit.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lmm_utils.data.corpus import FAMILIES

CURVE_METRICS = {
    "h": ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"),
    "h_timbre": ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"),
    "g": ("note_f1", "aligned_note_f1", "tempo_log_error", "velocity_mae"),
}
LOWER_IS_BETTER = frozenset({"tempo_log_error", "velocity_mae"})
SUBSETS = ("all", *FAMILIES)
METRIC_LABELS = {
    "note_f1": "note F1", "note_offset_f1": "note F1 with offsets",
    "note_offset_velocity_f1": "note F1 with offsets + velocity", "frame_f1": "frame F1",
    "aligned_note_f1": "DTW-aligned note F1", "tempo_log_error": "tempo error |ln ratio|",
    "velocity_mae": "velocity error (MIDI units)",
}
SYSTEM_LABELS = {"h": "h on T", "h_timbre": "h on T_timbre (unheard piano)", "g": "g on T"}


# --- curves -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    system: str
    metric: str
    subset: str = "all"

    @property
    def key(self) -> str:
        return f"{self.system}-{self.metric}-{self.subset}"

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    @property
    def label(self) -> str:
        return f"{SYSTEM_LABELS.get(self.system, self.system)}: {METRIC_LABELS.get(self.metric, self.metric)} ({self.subset})"

    @classmethod
    def parse(cls, key: str) -> Curve:
        system, metric, subset = key.split("-")
        return cls(system, metric, subset)


def all_curves() -> list[Curve]:
    return [Curve(s, m, sub) for s, ms in CURVE_METRICS.items() for m in ms for sub in SUBSETS]


def band(values: Iterable[float], confidence: float = 0.95, kind: str = "t") -> dict:
    """Mean and band over seeds. n >= 3: mean +- q * std/sqrt(n) (q: Student t with n-1 dof for kind "t",
    the normal quantile for kind "normal" -- 1.96 at 95 %); n < 3: the min-max range (a CI from two seeds is
    meaningless)."""
    from scipy import stats  # deferred: ~1.3 s to import, and only the band needs it

    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "lo": float("nan"), "hi": float("nan"), "band": "none"}
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    if n >= 3:
        p = 1.0 - (1.0 - confidence) / 2.0
        q = float(stats.t.ppf(p, n - 1)) if kind == "t" else float(stats.norm.ppf(p))
        half = q * std / math.sqrt(n)
        return {"n": n, "mean": mean, "std": std, "lo": mean - half, "hi": mean + half, "band": f"{kind}{confidence:g}"}
    return {"n": n, "mean": mean, "std": std, "lo": float(v.min()), "hi": float(v.max()), "band": "minmax"}


def curve_points(table: list[dict], curve: Curve, confidence: float = 0.95, kind: str = "t") -> list[dict]:
    """[{method, K, x = log2(K + 1), n, mean, std, lo, hi, band, runs}] sorted by method then K."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in table:
        if (r["system"], r["metric"], r["subset"]) == (curve.system, curve.metric, curve.subset) and r["K"] is not None:
            groups.setdefault((r["method"], int(r["K"])), []).append(r)
    out = []
    for (method, K), rs in sorted(groups.items()):
        b = band([r["value"] for r in rs], confidence, kind)
        out.append({"method": method, "K": K, "x": math.log2(K + 1), **b, "runs": len(rs)})
    return out


def peer_value(peer_table: list[dict], peer: str, curve: Curve) -> float | None:
    for r in peer_table:
        if (r["method"], r["system"], r["metric"], r["subset"]) == (peer, curve.system, curve.metric, curve.subset):
            return float(r["value"])
    return None


def by_method(points: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in points:
        out.setdefault(p["method"], []).append(p)
    return {m: sorted(ps, key=lambda p: p["K"]) for m, ps in out.items()}


def auc(points: list[dict], common_grid: bool = True) -> dict[str, dict]:
    """Area under each method's mean curve, trapezoid over x = log2(K + 1).

    With common_grid, on the K values every method has (so areas compare); a method that shares fewer than
    two K values with the others is integrated on its own grid (grid says which). `auc_mean` = area /
    x-span: the curve's average height, in the metric's own units.
    """
    per = {m: {p["K"]: p["mean"] for p in ps if np.isfinite(p["mean"])} for m, ps in by_method(points).items()}
    common = sorted(set.intersection(*(set(v) for v in per.values()))) if per else []
    out = {}
    for m, vals in per.items():
        grid = common if common_grid and len(common) >= 2 else sorted(vals)
        if not grid:
            continue
        x = np.log2(np.array(grid, float) + 1.0)
        y = np.array([vals[k] for k in grid])
        area = float(np.trapezoid(y, x)) if len(grid) > 1 else 0.0
        span = float(x[-1] - x[0])
        out[m] = {"auc": area, "auc_mean": area / span if span > 0 else float(y[0]), "K_min": grid[0],
                  "K_max": grid[-1], "n_K": len(grid), "grid": "common" if grid is common else "own"}
    return out


# --- effective-data multiplier ----------------------------------------------------------------------------

def equivalent_k(ref: list[dict], value: float, higher_is_better: bool = True) -> tuple[float | None, str]:
    """How many pairs the reference method needs to reach `value`: the first crossing of its mean curve,
    interpolated linearly in x = log2(K + 1). -> (K', bound) with bound "exact", "below_min" (reached
    already at its smallest K; K' = that K is an upper bound) or "above_max" (never reached; K' = None)."""
    pts = [(p["K"], p["mean"]) for p in sorted(ref, key=lambda p: p["K"]) if np.isfinite(p["mean"])]
    if not pts:
        return None, "no_reference"
    sign = 1.0 if higher_is_better else -1.0
    reached = lambda y: sign * y >= sign * value  # noqa: E731
    if reached(pts[0][1]):
        return float(pts[0][0]), "below_min"
    for (k0, y0), (k1, y1) in zip(pts, pts[1:]):
        if reached(y1):
            x0, x1 = math.log2(k0 + 1), math.log2(k1 + 1)
            t = (value - y0) / (y1 - y0) if y1 != y0 else 1.0
            return float(2.0 ** (x0 + t * (x1 - x0)) - 1.0), "exact"
    return None, "above_max"


def multiplier(points: list[dict], target: str = "lmm", reference: str = "supervised",
               higher_is_better: bool = True) -> list[dict]:
    """For each K of `target`: the reference's equivalent number of pairs K' and the multiplier K'/K.

    multiplier > 1: target with K pairs is worth K'/K times as many pairs for the reference; < 1: the target
    is worse than the reference at the same K. display spells out bounds: "> 8x" when the reference never
    gets there within its largest K, "<= 0.5x" when the reference is already there at its smallest K.
    """
    methods = by_method(points)
    if target not in methods or reference not in methods:
        return []
    ref = methods[reference]
    k_max = max(p["K"] for p in ref)
    out = []
    for p in methods[target]:
        K, y = p["K"], p["mean"]
        k_eq, bound = equivalent_k(ref, y, higher_is_better)
        row = {"K": K, target: y, "equivalent_K": k_eq, "bound": bound, "multiplier": None}
        ref_same = [q["mean"] for q in ref if q["K"] == K]
        row[f"{reference}_at_K"] = ref_same[0] if ref_same else None
        if bound == "above_max":
            row["display"] = f"> {k_max / K:.3g}x" if K > 0 else f"> {k_max} pairs"
            row["equivalent_K_display"] = f"> {k_max}"
        elif K == 0:
            row["display"] = ("<= " if bound == "below_min" else "") + f"{k_eq:.3g} pairs"
            row["equivalent_K_display"] = row["display"].replace(" pairs", "")
        else:
            row["multiplier"] = k_eq / K
            row["display"] = ("<= " if bound == "below_min" else "") + f"{k_eq / K:.3g}x"
            row["equivalent_K_display"] = ("<= " if bound == "below_min" else "") + f"{k_eq:.3g}"
        out.append(row)
    return out


# --- best runs --------------------------------------------------------------------------------------------

def best_runs(table: list[dict], system: str = "h", metric: str = "note_f1", subset: str = "all") -> dict[str, dict]:
    """Per method, the run with the highest value of (system, metric, subset): what `lmm` (the CLI) uses."""
    best: dict[str, dict] = {}
    for r in table:
        if (r["system"], r["metric"], r["subset"]) != (system, metric, subset) or r["K"] is None:
            continue
        if not np.isfinite(r["value"]):
            continue
        cur = best.get(r["method"])
        if cur is None or r["value"] > cur[f"{system}_{metric}"]:
            best[r["method"]] = {"run": r["run"], "K": r["K"], "seed": r["seed"], f"{system}_{metric}": r["value"]}
    return best


def method_k_table(table: list[dict], curve: Curve, confidence: float = 0.95, kind: str = "t") -> dict[str, dict[int, str]]:
    """{method: {K: "mean ± std (n)"}} for notebook tables."""
    out: dict[str, dict[int, str]] = {}
    for p in curve_points(table, curve, confidence, kind):
        out.setdefault(p["method"], {})[p["K"]] = f"{p['mean']:.3f} ± {p['std']:.3f} ({p['n']})"
    return out
