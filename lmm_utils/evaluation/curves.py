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
    "h_noisy": ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"),
    "g": ("velocity_r", "log_ioi_r", "articulation_r", "onset_dev_ms", "note_f1", "aligned_note_f1", "tempo_log_error",
          "velocity_mae", "pedal_f1"),
}
LOWER_IS_BETTER = frozenset({"tempo_log_error", "velocity_mae", "onset_dev_ms", "articulation_error"})
SUBSETS = ("all", *FAMILIES)
METRIC_LABELS = {
    "note_f1": "note F1", "note_offset_f1": "note F1 with offsets",
    "note_offset_velocity_f1": "note F1 with offsets + velocity", "frame_f1": "frame F1",
    "aligned_note_f1": "DTW-aligned note F1", "tempo_log_error": "tempo error |ln ratio|",
    "velocity_mae": "velocity error (MIDI units)", "velocity_r": "velocity r (per note)",
    "log_ioi_r": "log-IOI r (timing)", "articulation_r": "articulation r (log durations)",
    "onset_dev_ms": "onset deviation after a tempo fit (ms)", "articulation_error": "articulation error |ln ratio|",
    "pedal_f1": "pedal F1 (frames, pedalled excerpts)",
}
SYSTEM_LABELS = {"h": "h on T", "h_timbre": "h on T_timbre (unheard piano)",
                 "h_noisy": "h on T_noisy (reverb and noise, 5-15 dB SNR)", "g": "g on T"}


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
    """[{method, K, x = log2(K + 1), n, mean, std, lo, hi, band, runs, seed_values = {seed: value}}] sorted by
    method then K."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in table:
        if (r["system"], r["metric"], r["subset"]) == (curve.system, curve.metric, curve.subset) and r["K"] is not None:
            groups.setdefault((r["method"], int(r["K"])), []).append(r)
    out = []
    for (method, K), rs in sorted(groups.items()):
        b = band([r["value"] for r in rs], confidence, kind)
        # each seed's own value: the multiplier's interval resamples seeds, which the band's summary cannot give back
        seeds = {r.get("seed", r.get("run")): float(r["value"]) for r in rs
                 if r["value"] is not None and np.isfinite(r["value"])}
        out.append({"method": method, "K": K, "x": math.log2(K + 1), **b, "runs": len(rs), "seed_values": seeds})
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

# The multiplier's interval: a percentile bootstrap over seeds. Fixed here rather than in params.yaml so that the
# same runs always give the same interval (a new seed would only move it by bootstrap noise, not inform it).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# How the interval resamples the seeds of target and reference (evaluation.multiplier_resampling); the first is the
# default: a seed draws the same pairs whatever the method, so both curves are resampled by the same seeds.
RESAMPLING = ("paired", "independent")
# Below this many seeds the interval is reported as a rough range (few_seeds_caveat).
FEW_SEEDS = 5


def few_seeds_caveat(n: int) -> str:
    """Why a percentile bootstrap over n seeds is no 95 % guarantee: each method's seeds have only C(2n - 1, n)
    distinct resamples, too few for the percentiles to cover as they say."""
    return (f"With {n} seeds each method's seeds have only {math.comb(2 * n - 1, n)} distinct resamples: these "
            "intervals are a rough range and may cover less than their stated level; the t intervals of the paired "
            "differences (`benchmarks/paired_differences.py`) are the conservative reading.")


def resampled(row: dict) -> str:
    """", paired by seed" etc.: how a multiplier row's interval resampled the seeds, when the row says (rows written
    before evaluation.multiplier_resampling do not: those resampled each method's seeds independently)."""
    how = row.get("resampling")
    return f", {how}" if how else ""


def _crossing(pts: list[tuple[int, float]], value: float, higher_is_better: bool) -> tuple[float | None, str]:
    """equivalent_k on (K, mean) pairs sorted by K with finite means (shared by the point and every resample)."""
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


def equivalent_k(ref: list[dict], value: float, higher_is_better: bool = True) -> tuple[float | None, str]:
    """How many pairs the reference method needs to reach `value`: the first crossing of its mean curve,
    interpolated linearly in x = log2(K + 1). -> (K', bound) with bound "exact", "below_min" (reached
    already at its smallest K; K' = that K is an upper bound) or "above_max" (never reached; K' = None)."""
    pts = [(p["K"], p["mean"]) for p in sorted(ref, key=lambda p: p["K"]) if np.isfinite(p["mean"])]
    return _crossing(pts, value, higher_is_better)


def _seeds(ps: list[dict]) -> list:
    """The seeds of one method's points, in the order of _seed_matrix's rows."""
    return sorted({s for p in ps for s in p.get("seed_values", {})}, key=str)


def _seed_matrix(ps: list[dict]) -> np.ndarray | None:
    """values[seed, K] (NaN where a seed has no run at that K) of one method's points sorted by K; None when the
    points carry no per-seed values (built by hand rather than by curve_points)."""
    if not ps or any("seed_values" not in p for p in ps):
        return None
    seeds = _seeds(ps)
    m = np.full((len(seeds), len(ps)), np.nan)
    for j, p in enumerate(ps):
        for i, s in enumerate(seeds):
            if s in p["seed_values"]:
                m[i, j] = p["seed_values"][s]
    return m


def _resampled_means(m: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, K) mean curves, each over seeds drawn with replacement. A seed is drawn whole (all its K at once): one
    seed's runs share its pair draws, so resampling K by K would understate how far the curves move together."""
    return _means_over(m, rng.integers(0, m.shape[0], size=(n, m.shape[0])))


def _means_over(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n, K) mean curves of values[seed, K] over the seed rows idx[b] of each resample b."""
    sample = m[idx]
    counts = np.isfinite(sample).sum(axis=1)
    sums = np.where(np.isfinite(sample), sample, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a K no drawn seed has: NaN, skipped like a missing point
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _fmt_k(k: float, K: int) -> str:
    """An interval end in the point's unit: the multiplier K'/K, or pairs K' at K = 0 (no ratio there)."""
    return f"{k / K:.3g}" if K > 0 else f"{k:.3g}"


def _interval(draws: list[tuple[float | None, str]], K: int, k_min: int, k_max: int, confidence: float) -> dict:
    """Percentile interval of the resampled K' at the target's K. A resample the reference never matches counts as
    K' = +inf (so the upper end is then only a bound, "> k_max"); one matched already at the reference's smallest K
    sits at k_min, itself an upper bound, so a lower end there reads "<= ..."."""
    vals = np.array([np.inf if b == "above_max" else (np.nan if k is None else k) for k, b in draws], float)
    vals = vals[~np.isnan(vals)]
    n_above = sum(b == "above_max" for _, b in draws)
    n_below = sum(b == "below_min" for _, b in draws)
    out: dict = {"n_resamples": len(draws), "n_above_max": n_above, "n_below_min": n_below}
    if len(vals) == 0:
        return {**out, "equivalent_K_lo": None, "equivalent_K_hi": None, "multiplier_lo": None, "multiplier_hi": None,
                "interval_display": "no interval: the reference has no curve"}
    alpha = 1.0 - confidence
    # inverted_cdf: an order statistic, never an interpolation between a finite draw and +inf
    lo, hi = (float(q) for q in np.quantile(vals, [alpha / 2, 1 - alpha / 2], method="inverted_cdf"))
    lo_bound = n_below > 0 and lo <= k_min
    lo_text = ("<= " if lo_bound else "") + (_fmt_k(lo, K) if np.isfinite(lo) else f"> {_fmt_k(k_max, K)}")
    hi_text = _fmt_k(hi, K) if np.isfinite(hi) else f"> {_fmt_k(k_max, K)}"
    return {**out, "equivalent_K_lo": lo if np.isfinite(lo) else None, "equivalent_K_hi": hi if np.isfinite(hi) else None,
            "multiplier_lo": lo / K if K > 0 and np.isfinite(lo) else None,
            "multiplier_hi": hi / K if K > 0 and np.isfinite(hi) else None,
            "interval_bound": {"lo": "below_min" if lo_bound else ("above_max" if not np.isfinite(lo) else "exact"),
                               "hi": "above_max" if not np.isfinite(hi) else "exact"},
            "interval_display": f"[{lo_text}, {hi_text}]"}


def _point(k_eq: float | None, bound: str, K: int, k_max: int) -> dict:
    """The point estimate's multiplier and its text, read off the mean curves."""
    if bound == "above_max":
        return {"multiplier": None, "point_display": f"> {k_max / K:.3g}x" if K > 0 else f"> {k_max} pairs",
                "equivalent_K_display": f"> {k_max}"}
    if bound == "no_reference" or k_eq is None:
        return {"multiplier": None, "point_display": "no reference curve", "equivalent_K_display": "–"}
    le = "<= " if bound == "below_min" else ""
    if K == 0:
        return {"multiplier": None, "point_display": f"{le}{k_eq:.3g} pairs", "equivalent_K_display": f"{le}{k_eq:.3g}"}
    return {"multiplier": k_eq / K, "point_display": f"{le}{k_eq / K:.3g}x", "equivalent_K_display": f"{le}{k_eq:.3g}"}


def multiplier(points: list[dict], target: str = "lmm", reference: str = "supervised",
               higher_is_better: bool = True, confidence: float = 0.95,
               n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, paired: bool = False) -> list[dict]:
    """For each K of `target`: the reference's equivalent number of pairs K' and the multiplier K'/K, with a
    `confidence` interval over seeds.

    multiplier > 1: target with K pairs is worth K'/K times as many pairs for the reference; < 1: the target
    is worse than the reference at the same K. point_display spells out bounds: "> 8x" when the reference never
    gets there within its largest K, "<= 0.5x" when the reference is already there at its smallest K.

    The interval is a percentile bootstrap over seeds: the seeds of target and of reference are resampled
    independently with replacement (n_resamples times, numpy's generator seeded with `seed`), both mean curves
    recomputed, and K' read off again. It needs >= 2 seeds of each method with per-seed values (curve_points
    gives them); otherwise it is absent and display says why. paired=True resamples the seeds once for both
    methods when both ran the same seeds (a seed sets a run's pairs whatever the method, so the two curves share
    their draws; resampling them apart counts the draw's spread twice) and marks the rows "resampling": "paired by
    seed"; with other seed sets it falls back to independent resampling and says so. display = point_display + interval, e.g.
    "3.2x [1.4, 6]"; n_above_max / n_below_min count the resamples whose K' fell outside the reference's K range.
    """
    methods = by_method(points)
    if target not in methods or reference not in methods:
        return []
    ref, tgt = methods[reference], methods[target]
    ref_ks = [p["K"] for p in ref]
    k_min, k_max = min(ref_ks), max(ref_ks)
    m_ref, m_tgt = _seed_matrix(ref), _seed_matrix(tgt)
    n_ref = int(np.isfinite(m_ref).any(axis=1).sum()) if m_ref is not None else 0
    draws: list[list[tuple[float | None, str]]] = [[] for _ in tgt]
    if m_ref is not None and m_tgt is not None and n_ref >= 2 and m_tgt.shape[0] >= 2:
        rng = np.random.default_rng(seed)
        if paired and _seeds(ref) == _seeds(tgt):
            idx = rng.integers(0, m_ref.shape[0], size=(n_resamples, m_ref.shape[0]))
            ref_means, tgt_means = _means_over(m_ref, idx), _means_over(m_tgt, idx)
            resampling = "paired by seed"
        else:
            ref_means = _resampled_means(m_ref, rng, n_resamples)
            tgt_means = _resampled_means(m_tgt, rng, n_resamples)
            resampling = "independent" + (" (the two methods ran different seeds)" if paired else "")
        for b in range(n_resamples):
            pts = [(k, y) for k, y in zip(ref_ks, ref_means[b]) if np.isfinite(y)]
            for j in range(len(tgt)):
                y = tgt_means[b, j]
                draws[j].append(_crossing(pts, float(y), higher_is_better) if np.isfinite(y) else (None, "no_target"))
    out = []
    for j, p in enumerate(tgt):
        K, y = p["K"], p["mean"]
        k_eq, bound = equivalent_k(ref, y, higher_is_better)
        ref_same = [q["mean"] for q in ref if q["K"] == K]
        n_tgt = len(p.get("seed_values", {}))
        row = {"K": K, target: y, "equivalent_K": k_eq, "bound": bound, f"{reference}_at_K": ref_same[0] if ref_same else None,
               **_point(k_eq, bound, K, k_max), "confidence": confidence,
               "n_seeds": min(n_tgt, n_ref), "n_seeds_target": n_tgt, "n_seeds_reference": n_ref}
        if draws[j]:
            row.update(_interval(draws[j], K, k_min, k_max, confidence))
            if paired:  # the unpaired rows stay as evaluate.json has always written them
                row["resampling"] = resampling
        else:
            why = "no per-seed values" if m_ref is None or m_tgt is None else "fewer than 2 seeds"
            row.update({"equivalent_K_lo": None, "equivalent_K_hi": None, "multiplier_lo": None, "multiplier_hi": None,
                        "interval_display": f"no interval: {why}"})
        iv = row["interval_display"]
        row["display"] = f"{row['point_display']} ({iv})" if iv.startswith("no interval") else f"{row['point_display']} {iv}"
        out.append(row)
    return out


# --- best runs --------------------------------------------------------------------------------------------

def best_runs(table: list[dict], system: str = "h", metric: str = "note_f1", subset: str = "all") -> dict[str, dict]:
    """Per method, the run with the highest value of (system, metric, subset) on T: a description of the sweep
    (evaluate.json's best_runs), never what a comparison is made with (representative_runs)."""
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


REPRESENTATIVE = "most_pairs"  # how representative_runs picks, recorded beside the rows it feeds


def representative_runs(table: list[dict], system: str = "h", metric: str = "note_f1",
                        subset: str = "all") -> dict[str, dict]:
    """Per method, the run with the most pairs, then the lowest seed: picked without reading a score. Why not the
    best run: every score is on the test pools, so each method's best of its seeds would be chosen on T and flatter
    it beside a peer, which gets no such pick. The run's (system, metric, subset) value rides along, as in best_runs."""
    out: dict[str, dict] = {}
    for r in table:
        if (r["system"], r["metric"], r["subset"]) != (system, metric, subset) or r["K"] is None:
            continue
        cur = out.get(r["method"])
        if cur is None or (-r["K"], r["seed"]) < (-cur["K"], cur["seed"]):
            out[r["method"]] = {"run": r["run"], "K": r["K"], "seed": r["seed"], f"{system}_{metric}": r["value"]}
    return out


def method_k_table(table: list[dict], curve: Curve, confidence: float = 0.95, kind: str = "t") -> dict[str, dict[int, str]]:
    """{method: {K: "mean ± std (n)"}} for notebook tables."""
    out: dict[str, dict[int, str]] = {}
    for p in curve_points(table, curve, confidence, kind):
        out.setdefault(p["method"], {})[p["K"]] = f"{p['mean']:.3f} ± {p['std']:.3f} ({p['n']})"
    return out
