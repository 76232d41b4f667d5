"""What each switched-off term costs: the README's ablation table, from summary.json's cells.

    lines = ablation_lines(summary, target="lmm", confidence=0.95, band_kind="t")

For every ablation `<target>-no_<term>...` in the summary and every K where the target ran too: the difference
target - ablation of the means over seeds, on h note F1 (T, T_timbre, T_noisy, chorales) and on g's velocity r, each
marked by whether the two seed bands (summary_cells.seed_band, the curves' band) overlap. Then one sentence per
ablation applying the claim rule of the LMM-core issue: a term helps h only if its gain is beyond the seed band on at
least two of chorales, T_timbre and T_noisy.
"""
from __future__ import annotations

from lmm_utils.evaluation.summary_cells import cells, seed_band

# (column, part of the summary cell, label in it): h's columns are summary.json's labels (mapping.summary.H_COLUMNS)
COLUMNS = (("h T", "h", "note F1"), ("h T_timbre", "h", "T_timbre note F1"), ("h T_noisy", "h", "T_noisy note F1"),
           ("h chorales", "h", "note F1 chorales"), ("g velocity r", "g", "velocity r"))
CLAIM_COLUMNS = ("h chorales", "h T_timbre", "h T_noisy")  # where a prior should matter (issue: two of three)
CLAIM_MIN = 2


def _stat(cell: dict, part: str, label: str) -> tuple[float | None, float | None, int]:
    return cell.get(part, {}).get(label), cell.get(f"{part}_std", {}).get(label), int(cell.get("n_seeds", 0))


def compare(a: dict, b: dict, part: str, label: str, confidence: float, band_kind: str) -> tuple[float, str] | None:
    """(mean of a - mean of b, "above" | "below" | "overlap" | "no band") on one label; None where either lacks it."""
    ma, sa, na = _stat(a, part, label)
    mb, sb, nb = _stat(b, part, label)
    if ma is None or mb is None:
        return None
    ba, bb = seed_band(ma, sa, na, confidence, band_kind), seed_band(mb, sb, nb, confidence, band_kind)
    if ba is None or bb is None:
        return ma - mb, "no band"
    return ma - mb, "above" if ba[0] > bb[1] else "below" if ba[1] < bb[0] else "overlap"


def _cell_text(cmp: tuple[float, str] | None) -> str:
    if cmp is None:
        return "–"
    diff, where = cmp
    mark = {"above": " ▲", "below": " ▼", "overlap": "", "no band": " (1 seed)"}[where]
    return f"{diff:+.3f}{mark}"


def ablation_rows(summary: dict, target: str, confidence: float = 0.95, band_kind: str = "t") -> list[dict]:
    """[{"ablation", "K", column: (diff, where) | None}] for every `<target>-no_...` cell with a target cell at its K."""
    by = cells(summary)
    rows = []
    for (method, K), cell in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if not method.startswith(f"{target}-no_") or (target, K) not in by:
            continue
        row = {"ablation": method, "K": K}
        for column, part, label in COLUMNS:
            row[column] = compare(by[(target, K)], cell, part, label, confidence, band_kind)
        rows.append(row)
    return rows


def claim(row: dict) -> tuple[int, bool]:
    """(how many of CLAIM_COLUMNS show a gain beyond the seed band, whether that is at least CLAIM_MIN)."""
    n = sum(1 for c in CLAIM_COLUMNS if row.get(c) is not None and row[c][1] == "above")
    return n, n >= CLAIM_MIN


def ablation_lines(summary: dict, target: str, confidence: float = 0.95, band_kind: str = "t") -> list[str]:
    rows = ablation_rows(summary, target, confidence, band_kind)
    if not rows:
        return [f"- no `{target}-no_<term>` ablation ran at a K where `{target}` ran"]
    out = [f"| `{target}` minus | K | " + " | ".join(c for c, _, _ in COLUMNS) + " |",
           "|---|---:|" + "---:|" * len(COLUMNS)]
    for r in rows:
        out.append(f"| `{r['ablation']}` | {r['K']} | " + " | ".join(_cell_text(r[c]) for c, _, _ in COLUMNS) + " |")
    out += ["", f"Each cell: mean of `{target}` minus mean of the ablation over seeds; ▲ / ▼: `{target}` above / below "
            "beyond the seed band (the bands do not overlap), no mark: the bands overlap."]
    for r in rows:
        n, holds = claim(r)
        term = r["ablation"][len(target) + 1:].replace("-", ", ")
        out.append(f"- K = {r['K']}, {term}: its gain is beyond the seed band on {n} of chorales, T_timbre and "
                   f"T_noisy, so the claim that it helps h {'holds' if holds else 'does not hold'} (needs "
                   f"{CLAIM_MIN}).")
    return out


__all__ = ["COLUMNS", "CLAIM_COLUMNS", "ablation_rows", "ablation_lines", "claim", "compare"]
