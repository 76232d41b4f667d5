"""Does a label-free criterion pick the better h? (evaluation part: reads each run's F1 on T, only to judge.)

    rows = [{"method", "K", "seed", "f1", "recon", "lmM"}, ...]   # one per run (methods.selection criteria)
    groups = selection_groups(rows, pick_from=3)
    summary = selection_summary(groups, rows)

A procedure a user without labels can follow: train `pick_from` seeds, keep the one the criterion prefers. Per
(method, K) group of seeds, over every subset of `pick_from` of them (all C(n, m)), the F1 of the seed each criterion
picks is averaged and set beside a random pick (the subset's mean F1), the best and the worst. `both` picks by the sum
of the two criteria's ranks inside the subset. Nothing here chooses anything for a method: T is read to judge only.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from lmm_utils.methods.selection import CRITERIA

PICKS = (*CRITERIA, "both")


def _pick(sel: list[dict], criterion: str) -> float:
    """F1 of the seed the criterion prefers; a tie is broken at random, i.e. its expected F1 (the tied seeds' mean),
    not in favour of the lowest seed."""
    if criterion == "both":
        vals = np.asarray(sum(stats.rankdata([r[c] for r in sel]) for c in CRITERIA), float)
    else:
        vals = np.asarray([r[criterion] for r in sel], float)
    tied = np.flatnonzero(vals == vals.max())
    return float(np.mean([sel[i]["f1"] for i in tied]))


def selection_groups(rows: list[dict], pick_from: int = 3) -> list[dict]:
    """Per (method, K) with >= 2 seeds: mean over the seed subsets of the F1 each criterion picks, of a random pick,
    of the best and of the worst seed."""
    if pick_from < 2:
        raise ValueError(f"pick_from must be >= 2 (got {pick_from}): with one seed there is nothing to choose")
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        group = groups.setdefault((r["method"], int(r["K"])), [])
        if any(int(o["seed"]) == int(r["seed"]) for o in group):
            raise ValueError(f"{r['method']} K={r['K']} seed {r['seed']} appears twice among the runs")
        group.append(r)
    out = []
    for (method, K), rs in sorted(groups.items()):
        if len(rs) < 2:
            continue
        subsets = [[rs[i] for i in sub] for sub in itertools.combinations(range(len(rs)), min(pick_from, len(rs)))]
        acc = {"random": [float(np.mean([r["f1"] for r in s])) for s in subsets],
               "best": [max(r["f1"] for r in s) for s in subsets], "worst": [min(r["f1"] for r in s) for s in subsets],
               **{f"pick_{c}": [_pick(s, c) for s in subsets] for c in PICKS}}
        out.append({"method": method, "K": K, "seeds": sorted(int(r["seed"]) for r in rs),
                    "f1": [r["f1"] for r in sorted(rs, key=lambda r: r["seed"])], "subsets": len(subsets),
                    **{k: float(np.mean(v)) for k, v in acc.items()}})
    return out


def _aggregate(groups: list[dict]) -> dict:
    if not groups:
        return {}
    out = {"groups": len(groups), **{k: float(np.mean([g[k] for g in groups])) for k in ("random", "best", "worst")}}
    for c in PICKS:
        out[f"pick_{c}"] = float(np.mean([g[f"pick_{c}"] for g in groups]))
        out[f"gain_{c}"] = out[f"pick_{c}"] - out["random"]
    return out


def _spearman(rows: list[dict]) -> dict:
    """Each criterion's Spearman rho with F1 and its p-value, over `rows` (>= 4 of them)."""
    if len(rows) < 4:
        return {}
    out = {"n": len(rows)}
    for c in CRITERIA:
        res = stats.spearmanr([r[c] for r in rows], [r["f1"] for r in rows])
        out[c], out[f"{c}_p"] = float(res.statistic), float(res.pvalue)
    return out


def selection_summary(groups: list[dict], rows: list[dict]) -> dict:
    """Means over the groups at K = 0, at K >= 1 and over all; each criterion's Spearman with F1 over the runs at
    K = 0 (pooled over methods), over all runs, and inside each (method, K) group of >= 4 seeds."""
    by_group: dict[str, dict] = {}
    for g in groups:
        if len(g["seeds"]) >= 4:
            by_group[f"{g['method']}-K{g['K']}"] = _spearman([r for r in rows if r["method"] == g["method"]
                                                             and int(r["K"]) == g["K"]])
    return {"K=0": _aggregate([g for g in groups if g["K"] == 0]), "K>=1": _aggregate([g for g in groups if g["K"] >= 1]),
            "all": _aggregate(groups), "spearman_K0": _spearman([r for r in rows if int(r["K"]) == 0]),
            "spearman_all": _spearman(rows), "spearman_by_group": by_group}


def selection_lines(summary: dict) -> list[str]:
    """A Markdown table of selection_summary."""
    lines = ["| runs | groups | random seed | picked by recon | picked by LM^M | picked by both | best seed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for key, label in (("K=0", "K = 0"), ("K>=1", "K >= 1"), ("all", "all")):
        a = summary.get(key) or {}
        if a:
            lines.append(f"| {label} | {a['groups']} | {a['random']:.3f} | {a['pick_recon']:.3f} ({a['gain_recon']:+.3f}) "
                         f"| {a['pick_lmM']:.3f} ({a['gain_lmM']:+.3f}) | {a['pick_both']:.3f} ({a['gain_both']:+.3f}) "
                         f"| {a['best']:.3f} |")
    return lines


__all__ = ["CRITERIA", "PICKS", "selection_groups", "selection_summary", "selection_lines"]
