"""Does the default run's table mean something? The checks, computed from a summary.json (the summary stage's
reports/metrics/summary.json, committed as reports/default/summary.json), never typed by hand:

    monotone   the reference method's h note F1 (on T) does not fall from one K to the next, from K = 1 up, beyond the
               seed band: a later K's band (mean +- its half-width over seeds) reaches the earlier K's mean (one-sided:
               the later K's band only; adjacent Ks of the summary only)
    level      the reference method's h note F1 at K = 16 is at least 0.80
    steady     the seed sd of h note F1 is at most 0.04 in every (method, K) cell with K >= 4 (the cells checked are
               named: in the default, supervised at 8 and 16 and basis at 16, whose h is supervised's; lmm runs at
               K = 0 only, so its spread is not held to it)

    checks = meaningful_checks(json.load(open("reports/default/summary.json")))
    print("\\n".join(check_lines(checks)))
    write_checks_section("reports/default", "README.md")   # between DEFAULT_START and DEFAULT_END

A check that the summary cannot decide fails and says why (an unmeasured property is not a passed one): the reference
method or K = 16 missing, fewer than two Ks, a cell of `steady` with a single seed. monotone and level read means,
which one seed already gives.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lmm_utils.core.io import atomic_path
from lmm_utils.evaluation.results_md import replace_section
from lmm_utils.evaluation.summary_cells import cells, mean_sd, seed_band

LABEL = "note F1"  # summary.json's h column: note F1 on all of T
LEVEL_K = 16
MIN_LEVEL = 0.80
STEADY_FROM_K = 4
MAX_SEED_SD = 0.04
DEFAULT_START = "<!-- default-checks:start -->"
DEFAULT_END = "<!-- default-checks:end -->"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def _curve(summary: dict, method: str) -> list[tuple[int, float, float | None, int]]:
    """[(K, mean, sd, n seeds)] of `method`'s h note F1, K ascending, K >= 1 only."""
    out = []
    for (m, K), cell in cells(summary).items():
        mean, sd, n = mean_sd(cell, LABEL)
        if m == method and K >= 1 and mean is not None:
            out.append((K, mean, sd, n))
    return sorted(out)


def monotone(summary: dict, method: str = "supervised", confidence: float = 0.95, kind: str = "t") -> Check:
    curve = _curve(summary, method)
    if len(curve) < 2:
        return Check("monotone", False, f"`{method}` has {len(curve)} K >= 1 in the summary: nothing to compare")
    drops = []
    for (k1, m1, _, _), (k2, m2, sd2, n2) in zip(curve, curve[1:]):
        band = seed_band(m2, sd2, n2, confidence, kind)
        if not (m2 >= m1 or (band is not None and band[1] >= m1)):
            drops.append(f"K {k1} → {k2}: {m1:.3f} → {m2:.3f}, band to {band[1] if band else m2:.3f}")
    ks = ", ".join(str(k) for k, *_ in curve)
    detail = f"`{method}` h {LABEL} at K = {ks}: {' → '.join(f'{m:.3f}' for _, m, _, _ in curve)}"
    return Check("monotone", not drops, detail + ("; falls beyond the band: " + "; ".join(drops) if drops else ""))


def level(summary: dict, method: str = "supervised") -> Check:
    at = {K: m for K, m, _, _ in _curve(summary, method)}
    if LEVEL_K not in at:
        return Check("level", False, f"`{method}` has no K = {LEVEL_K} in the summary")
    return Check("level", at[LEVEL_K] >= MIN_LEVEL,
                 f"`{method}` h {LABEL} at K = {LEVEL_K}: {at[LEVEL_K]:.3f} (needs >= {MIN_LEVEL:.2f})")


def steady(summary: dict) -> Check:
    rows, bad, undecided, checked = [], [], [], []
    for (m, K), cell in sorted(cells(summary).items()):
        if K < STEADY_FROM_K:
            continue
        mean, sd, n = mean_sd(cell, LABEL)
        if mean is None:
            continue
        if sd is None or n < 2:
            undecided.append(f"{m} K {K} ({n} seed)")
            continue
        rows.append(sd)
        checked.append(f"{m} K {K}: {sd:.3f}")
        if sd > MAX_SEED_SD:
            bad.append(f"{m} K {K}: {sd:.3f}")
    if not rows and not undecided:
        return Check("steady", False, f"no method has a K >= {STEADY_FROM_K} in the summary")
    # every checked cell with its own sd: a bare list after the largest read as if they all had it
    detail = (f"seed sd of h {LABEL} at K >= {STEADY_FROM_K}, by cell: {', '.join(checked)}; largest {max(rows):.3f}"
              if rows else "")
    if bad:
        detail += f"; over {MAX_SEED_SD}: " + ", ".join(bad)
    if undecided:
        detail += ("; " if detail else "") + "no sd with one seed: " + ", ".join(undecided)
    return Check("steady", not bad and not undecided, detail)


def meaningful_checks(summary: dict, method: str = "supervised", confidence: float = 0.95,
                      kind: str = "t") -> list[Check]:
    return [monotone(summary, method, confidence, kind), level(summary, method), steady(summary)]


def check_lines(checks: list[Check]) -> list[str]:
    return ["| check | result | measured |", "|---|---|---|",
            *(f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {c.detail} |" for c in checks)]


def render_checks(folder: str | Path) -> str:
    """The Markdown between DEFAULT_START and DEFAULT_END, from <folder>/summary.json (and its params.yaml's
    evaluation.confidence / band when present)."""
    folder = Path(folder)
    path = folder / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: collect the default run first "
                                "(scripts/collect_results.py --out reports/default)")
    summary = json.loads(path.read_text())
    section = {}
    if (folder / "params.yaml").is_file():
        import yaml  # deferred: only when a params copy sits beside the summary

        section = (yaml.safe_load((folder / "params.yaml").read_text()) or {}).get("evaluation") or {}
    checks = meaningful_checks(summary, section.get("reference_method", "supervised"),
                               float(section.get("confidence", 0.95)), section.get("band", "t"))
    return "\n".join([f"<!-- generated by scripts/write_results.py --default {folder.as_posix()}; "
                      "edits here are overwritten -->", "", *check_lines(checks)])


def write_checks_section(folder: str | Path, readme: str | Path) -> str:
    """Replace the README's text between DEFAULT_START and DEFAULT_END with render_checks(folder); -> the section.
    Raises ValueError (and writes nothing) when the markers are missing or repeated."""
    readme = Path(readme)
    section = render_checks(folder)
    text = replace_section(readme.read_text(), section, DEFAULT_START, DEFAULT_END)  # ResultsError is a ValueError
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
    return section


__all__ = ["Check", "meaningful_checks", "monotone", "level", "steady", "check_lines", "render_checks",
           "write_checks_section", "DEFAULT_START", "DEFAULT_END"]
