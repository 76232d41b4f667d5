"""The README's Results section, generated from a committed results folder (e.g. reports/paper/):

    params.yaml     the params the sweep ran with (a copy)
    summary.json    the summary stage's reports/metrics/summary.json ({"<method>-K<K>": {"n_seeds", "h", "h_std", ...}})
    evaluate.json   the evaluate stage's reports/metrics/evaluate.json (runs, multiplier rows with their interval, ...)
    *.png / *.svg   figures (the evaluate stage's curves_*.png, multiplier.png, ...), at any depth

    section = render(load_results("reports/paper"), readme_dir=Path("."))
    write_readme("reports/paper", "README.md")   # replaces the text between MARK_START and MARK_END

Every number and every sentence of the verdict is computed from the files: the section never states a result that
the folder does not hold. Only json/yaml reading and formatting here; nothing is re-scored.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmm_utils.core.io import atomic_path
from lmm_utils.data.corpus import FAMILIES
from lmm_utils.evaluation.ablations_md import ablation_lines
from lmm_utils.evaluation.curves import FEW_SEEDS, REPRESENTATIVE, few_seeds_caveat, resampled
from lmm_utils.evaluation.summary_cells import cells, fmt_mean_sd, mean_sd, seed_band

MARK_START = "<!-- results:start -->"
MARK_END = "<!-- results:end -->"
SCRIPT = "scripts/write_results.py"
MULTIPLIER_CURVE = "h-note_f1-all"
MULTIPLIER_KS = (4, 16)
# summary.json's h labels (mapping.summary.H_COLUMNS; that stage comes later in the package, so not imported here):
# the table's columns, T first, then T_timbre and T_noisy ("–" for results made before T_noisy), then each family.
F1_COLUMNS = [("T", "note F1"), ("T_timbre", "T_timbre note F1"), ("T_noisy", "T_noisy note F1"),
              *((f"T {f}", f"note F1 {f}") for f in FAMILIES)]
F1_LABEL = "note F1"  # the column the verdict compares on: h note F1 on all of T


class ResultsError(ValueError):
    """The results folder or the README cannot be used; the message says what to do. Nothing was written."""


@dataclass(frozen=True)
class Results:
    folder: Path
    params: dict
    summary: dict
    evaluate: dict
    figures: list[Path]  # relative to folder, sorted: curve figures first
    manifest: dict = field(default_factory=dict)  # collect_results' manifest.json ({} when the folder has none)

    @property
    def target(self) -> str:
        return self.params.get("evaluation", {}).get("target_method", "lmm")

    @property
    def reference(self) -> str:
        return self.params.get("evaluation", {}).get("reference_method", "supervised")

    @property
    def confidence(self) -> float:
        return float(self.params.get("evaluation", {}).get("confidence", 0.95))

    @property
    def band_kind(self) -> str:
        return self.params.get("evaluation", {}).get("band", "t")


def load_results(folder: str | Path) -> Results:
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"results folder {folder} does not exist: commit a results folder (params.yaml, "
                           "summary.json, evaluate.json, figures) first")
    missing = [n for n in ("params.yaml", "summary.json", "evaluate.json") if not (folder / n).is_file()]
    if missing:
        raise ResultsError(f"results folder {folder} lacks {', '.join(missing)} (copy params.yaml, "
                           "reports/metrics/summary.json and reports/metrics/evaluate.json there)")
    try:
        params = yaml.safe_load((folder / "params.yaml").read_text()) or {}
        summary = json.loads((folder / "summary.json").read_text())
        evaluate = json.loads((folder / "evaluate.json").read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ResultsError(f"results folder {folder}: unreadable file: {e}") from e
    figs = sorted((p.relative_to(folder) for p in folder.rglob("*") if p.suffix in (".png", ".svg") and p.is_file()),
                  key=lambda p: (not p.stem.startswith("curves"), p.stem != "multiplier", str(p)))
    try:
        manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").is_file() else {}
    except json.JSONDecodeError as e:
        raise ResultsError(f"results folder {folder}: unreadable file: {e}") from e
    return Results(folder, params, summary, evaluate, figs, manifest)


# --- the section's parts ----------------------------------------------------------------------------------------

def _relative(path: Path, readme_dir: Path) -> str:
    """path as the README links it: relative to the README's folder, with forward slashes (Markdown on any OS)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(readme_dir).resolve())).as_posix()


def profile(res: Results) -> list[str]:
    """The sweep's size, from params.yaml and evaluate.json's run count."""
    mp = res.params.get("mapping", {})
    ev = res.evaluate
    methods, Ks, seeds = mp.get("methods", []), mp.get("Ks", []), mp.get("seeds", [])
    steps = (mp.get("method") or {}).get("steps")
    n_T, n_scored = ev.get("n_T"), ev.get("n_T_scored")
    t_size = f"{n_scored} of T's {n_T} excerpts" if n_T is not None and n_scored is not None else "T size not recorded"
    return [*provenance_lines(res), f"- methods ({len(methods)}): {', '.join(f'`{m}`' for m in methods)}",
            f"- K (pairs): {', '.join(str(k) for k in Ks)}; seeds: {len(seeds)} ({', '.join(str(s) for s in seeds)})",
            f"- {steps} optimizer steps per run (h, and again for g); {ev.get('runs', {}).get('n', '?')} runs scored",
            f"- scored on {t_size} (and the same excerpts on T_timbre, an unheard piano, and on T_noisy, with heavy "
            "reverb and background noise, where the data has it)"]


def provenance_lines(res: Results) -> list[str]:
    """The commit that made the results and when they were collected (manifest.json; nothing for older folders)."""
    prov = res.manifest.get("provenance") or {}
    if not prov.get("commit"):
        return []
    changed = {True: " (its code changed from that commit: not reproducible from it)", False: ""}.get(
        prov.get("code_changed"), " (whether its code changed is not recorded)")
    hours = f"; the runs' own training time adds up to {prov['train_hours']:g} h" if prov.get("train_hours") else ""
    return [f"- made in a project at commit `{prov['commit'][:7]}`{changed}, collected {prov.get('collected_utc', '?')} "
            f"UTC{hours}"]


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def f1_table(res: Results) -> list[str]:
    """method x K rows of h note F1, mean ± sd over seeds, on T, T_timbre, T_noisy and each family."""
    by = cells(res.summary)
    order = list(dict.fromkeys([*res.params.get("mapping", {}).get("methods", []), *(m for m, _ in by)]))
    # a family the results' T does not hold (results made before it existed) has no column, not a column of "–"
    columns = [(c, lab) for c, lab in F1_COLUMNS
               if not c.startswith("T ") or any(_finite(mean_sd(cell, lab)[0]) for cell in by.values())]
    out = ["| method | K | seeds | " + " | ".join(c for c, _ in columns) + " |",
           "|---|---:|---:|" + "---:|" * len(columns)]
    for method in order:
        for K in sorted(k for m, k in by if m == method):
            c = by[(method, K)]
            out.append(f"| {method} | {K} | {c.get('n_seeds', '?')} | "
                       + " | ".join(fmt_mean_sd(*mean_sd(c, lab)[:2]) for _, lab in columns) + " |")
    return out


G_COLUMNS = [("velocity r", "velocity_r"), ("log-IOI r", "log_ioi_r"), ("articulation r", "articulation_r"),
             ("onset dev ms", "onset_dev_ms"), ("velocity MAE", "velocity_mae"), ("pedal F1", "pedal_f1")]


def g_table(res: Results) -> list[str]:
    """method x K rows of g's per-note measures (mean ± sd over seeds), then the plain performer and the pianist
    again on the same T."""
    by = cells(res.summary)
    order = list(dict.fromkeys([*res.params.get("mapping", {}).get("methods", []), *(m for m, _ in by)]))
    out = ["| g | K | seeds | " + " | ".join(c for c, _ in G_COLUMNS) + " |", "|---|---:|---:|" + "---:|" * len(G_COLUMNS)]
    for method in order:
        for K in sorted(k for m, k in by if m == method):
            c = by[(method, K)]
            out.append(f"| {method} | {K} | {c.get('n_seeds', '?')} | " + " | ".join(
                fmt_mean_sd(c.get("g", {}).get(label), c.get("g_std", {}).get(label)) for label, _ in G_COLUMNS) + " |")
    for r in res.evaluate.get("g_bounds") or []:
        if r.get("subset") == "all":
            # "ceiling" is one more random draw of the pianist, not an upper bound: a predictor of the pianist's mean
            # correlates better with the truth's draw than another draw does (basis does, in the paper profile)
            what = {"ceiling": "reference: the pianist again (one more draw, not an upper bound)",
                    "floor": "floor: the plain performer"}.get(r["g"], r["g"])
            out.append(f"| *{what}* | – | – | " + " | ".join(
                fmt_mean_sd(r.get(key), None) for _, key in G_COLUMNS) + " |")
    return out


def figure_lines(res: Results, readme_dir: Path) -> list[str]:
    """Each PNG as an image (GitHub renders it), its SVG linked beside it; paths relative to the README."""
    out = []
    rel = lambda p: _relative(res.folder / p, readme_dir)  # noqa: E731
    svgs = {p.with_suffix("") for p in res.figures if p.suffix == ".svg"}
    for p in res.figures:
        if p.suffix == ".png":
            svg = f" ([svg]({rel(p.with_suffix('.svg'))}))" if p.with_suffix("") in svgs else ""
            out += [f"![{p.stem}]({rel(p)})", f"*{p.stem}*{svg}", ""]
    for p in res.figures:  # an SVG without its PNG still gets a link
        if p.suffix == ".svg" and not (res.folder / p.with_suffix(".png")).is_file():
            out.append(f"- [{p.stem}]({rel(p)})")
    return out or ["(no figures in the results folder)"]


def multiplier_row(res: Results, K: int, curve: str = MULTIPLIER_CURVE) -> dict | None:
    rows = res.evaluate.get("multiplier", {}).get(curve) or {}
    row = rows.get(f"K={K}") if isinstance(rows, dict) else None
    return row if isinstance(row, dict) and "K" in row else None


def interval_reading(row: dict, target: str = "lmm", reference: str = "supervised") -> str:
    """Where the multiplier's interval sits against 1 (no gain), from its ends and their bounds."""
    lo, hi = row.get("multiplier_lo"), row.get("multiplier_hi")
    lo_bound = (row.get("interval_bound") or {}).get("lo")
    if "interval_bound" not in row:
        return row.get("interval_display", "no interval")
    K = row["K"]
    # an upper end "> k_max" (above_max) is open: only the lower end can place the interval above 1
    if (lo is not None and lo > 1 and lo_bound == "exact") or lo_bound == "above_max":
        return f"the interval lies above 1: `{target}`'s {K} pairs are worth more than {K} of `{reference}`'s"
    if hi is not None and hi < 1:
        return f"the interval lies below 1: `{target}`'s {K} pairs are worth fewer than {K} of `{reference}`'s"
    return "the interval contains 1: no gain shown either way"


def multiplier_ks(res: Results, curve: str = MULTIPLIER_CURVE) -> list[int]:
    """MULTIPLIER_KS and every other K the evaluation has a row for (K = 0: the target with no pairs at all)."""
    rows = res.evaluate.get("multiplier", {}).get(curve) or {}
    have = {int(r["K"]) for r in rows.values() if isinstance(r, dict) and "K" in r} if isinstance(rows, dict) else set()
    return sorted(have | set(MULTIPLIER_KS))


def multiplier_lines(res: Results) -> list[str]:
    out = []
    for K in multiplier_ks(res):
        row = multiplier_row(res, K)
        if row is None:
            out.append(f"- K = {K}: not in the sweep (or no `{res.target}` / `{res.reference}` runs)")
            continue
        if K == 0:  # no ratio with 0 pairs: the equivalent number of the reference's pairs is the result
            out.append(f"- K = 0: `{res.target}` with no pairs matches `{res.reference}` with **{row.get('display', '?')}**"
                       + (f" ({row.get('confidence', res.confidence):.0%} interval over {row.get('n_seeds', '?')} seeds"
                          f"{resampled(row)})" if "interval_bound" in row else ""))
            continue
        head = (f"- K = {K}: `{res.reference}` needs {row.get('equivalent_K_display', '?')} pairs to match "
                f"`{res.target}` with {K}: ")
        if "interval_display" not in row:  # an evaluate.json written before the multiplier had an interval
            out.append(head + f"**{row.get('display', '?')}** (no interval: this evaluate.json predates it)")
        elif "interval_bound" not in row:  # too few seeds: the display already says why
            out.append(head + f"**{row['display']}**")
        else:
            out.append(head + f"**{row['display']}** ({row.get('confidence', res.confidence):.0%} interval over "
                       f"{row.get('n_seeds', '?')} seeds{resampled(row)}; "
                       f"{interval_reading(row, res.target, res.reference)})")
    seeds = [r["n_seeds"] for K in multiplier_ks(res) if (r := multiplier_row(res, K)) is not None
             and "interval_bound" in r and isinstance(r.get("n_seeds"), int)]
    if seeds and min(seeds) < FEW_SEEDS:
        out.append("- " + few_seeds_caveat(min(seeds)))
    return out


def verdict(res: Results, label: str = F1_LABEL) -> str:
    """One sentence comparing target and reference at each K of both on h note F1 (T), judged on the curves' band
    over seeds: "beyond the seed band" = the bands do not overlap."""
    by = cells(res.summary)
    t, r = res.target, res.reference
    ks = sorted(k for m, k in by if m == t and (r, k) in by)
    if not ks:
        zero = multiplier_row(res, 0)
        if zero is not None and (t, 0) in by:  # the target without pairs, read against the reference's curve
            m, sd, n = mean_sd(by[(t, 0)], label)
            return (f"No K has runs of both `{t}` and `{r}`; `{t}` with no pairs scores {fmt_mean_sd(m, sd)} "
                    f"({n} seeds): `{r}` matches it with {zero.get('display', '?')}.")
        return f"No K has runs of both `{t}` and `{r}`: nothing to compare."
    above, below, within, unbanded = [], [], [], []
    for K in ks:
        mt, sdt, nt = mean_sd(by[(t, K)], label)
        mr, sdr, nr = mean_sd(by[(r, K)], label)
        if mt is None or mr is None:
            continue
        bt, br = seed_band(mt, sdt, nt, res.confidence, res.band_kind), seed_band(mr, sdr, nr, res.confidence, res.band_kind)
        if bt is None or br is None:
            unbanded.append(K)
        elif bt[0] > br[1]:
            above.append(K)
        elif bt[1] < br[0]:
            below.append(K)
        else:
            within.append(K)
    ks_text = lambda ks: ", ".join(str(k) for k in ks)  # noqa: E731
    head = (f"`{t}` beats `{r}` on h note F1 (T) beyond the seed band at K = {ks_text(above)}" if above else
            f"`{t}` does not beat `{r}` on h note F1 (T) beyond the seed band at any K")
    parts = []
    if within:
        parts.append(f"the bands overlap at K = {ks_text(within)}")
    if below:
        parts.append(f"`{t}` is below `{r}` beyond the band at K = {ks_text(below)}")
    if unbanded:
        parts.append(f"fewer than 2 seeds (no band) at K = {ks_text(unbanded)}")
    return head + ("; " + "; ".join(parts) if parts else "") + "."


def peer_lines(res: Results) -> list[str]:
    """The peers (Basic Pitch) on the same recordings, from evaluate.json."""
    out = []
    for name, p in sorted((res.evaluate.get("peers") or {}).items()):
        if isinstance(p, dict) and p.get("available") and p.get("h-note_f1-all") is not None:
            families = ", ".join(f"{f} {p[f'h-note_f1-{f}']:.3f}" for f in FAMILIES
                                 if p.get(f"h-note_f1-{f}") is not None)  # the families the results' T holds
            out.append(f"- `{name}` on the same T excerpts: note F1 {p['h-note_f1-all']:.3f} ({families}); "
                       f"T_timbre {p.get('h_timbre-note_f1-all', float('nan')):.3f}"
                       + (f", T_noisy {p['h_noisy-note_f1-all']:.3f}" if p.get("h_noisy-note_f1-all") is not None else ""))
    return out or ["- no peer was available to this run (`make basic-pitch` builds Basic Pitch)"]


def robustness_lines(res: Results) -> list[str]:
    """One h per method (and each peer) at three recording levels, on T_timbre and on T_noisy (evaluate.json's
    robustness rows; each says how its run was picked)."""
    rows = [r for r in res.evaluate.get("robustness") or [] if r.get("subset") == "all"]
    out = []
    for method in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == method]
        cells_ = ", ".join(f"{r['recordings']} {r['note_f1']:.3f}" for r in mine)
        which = ("a published transcriber" if mine[0]["run"] == "peer" else
                 f"run {mine[0]['run']}: most pairs, lowest seed, no score read" if mine[0].get("picked") == REPRESENTATIVE
                 else f"best run {mine[0]['run']} by note F1 on T")  # made before the runs were picked by rule
        spread = mine[0].get("level_spread")  # null: no re-levelled rows (a peer from an older references stage)
        spread_text = f"{spread:.3f}" if isinstance(spread, (int, float)) and math.isfinite(spread) else "–"
        out.append(f"- `{method}` ({which}): {cells_}; spread over levels {spread_text}")
    if not out:
        return ["- not in this evaluate.json"]
    if not any(r["run"] == "peer" for r in rows):
        out.append("- Basic Pitch: absent (not installed for this run: `make basic-pitch`, then "
                   "`dvc repro -f references evaluate`)")
    return out


def lm_lines(res: Results) -> list[str]:
    """LM^M on T's true motion (mapped from LM^V, its bigram, the oracle; evaluate.json's lmM block) and lmm's label
    cleaning (each criterion's rank correlation with the labels' true F1; summary.json)."""
    block, out = res.evaluate.get("lmM") or {}, []
    mapped, oracle = block.get("mapped_from_lmV") or {}, block.get("oracle_upper_bound") or {}
    if mapped.get("lm") is not None:
        line = (f"- LM^M mapped from LM^V (U_V's scores x a generic performer, no true motion read): "
                f"{mapped['lm']:.2f} bits/token on T's true motion; a Kneser-Ney bigram on the same motion "
                f"{mapped['bigram']:.2f}")
        out.append(line + (f"; ORACLE trained on U_A's true motion (diagnostic) {oracle['lm']:.2f}"
                           if oracle.get("lm") is not None else ""))
    for key, r in res.summary.items():
        sel = r.get("label_selection") or {}
        corr = {k[len("spearman_"):-len("_vs_f1")]: v for k, v in sel.items() if k.startswith("spearman") and v is not None}
        if corr:
            out.append(f"- `{key}` label cleaning, Spearman with the labels' true note F1: "
                       + ", ".join(f"{k} {v:.2f}" for k, v in corr.items())
                       + (f"; kept labels' F1 {sel['kept_note_f1']:.3f} vs dropped {sel['dropped_note_f1']:.3f}"
                          if sel.get("kept_note_f1") is not None and sel.get("dropped_note_f1") is not None else ""))
    return out or ["- not in these results"]


def band_note(res: Results) -> str:
    kind = "Student t(n-1)" if res.band_kind == "t" else "normal"
    return (f"Seed band: the curves' band, mean ± q·sd/√n with q the {kind} quantile at {res.confidence:g} for "
            "n ≥ 3 seeds, the min-max range for 2; the multiplier's interval is a percentile bootstrap over seeds.")


def render(res: Results, readme_dir: Path = Path(".")) -> str:
    """The Markdown between the markers (without them)."""
    source = _relative(res.folder, readme_dir)
    lines = [f"<!-- generated by {SCRIPT} from {source}; edits here are overwritten -->", "",
             f"From the results in [`{source}`]({source}).", "", "**Profile**", "", *profile(res), "",
             "**h note F1** (mean ± sd over seeds; T = the held-out test recordings, T_timbre = the same on an "
             "unheard piano, T_noisy = the same with heavy reverb and 5-15 dB SNR noise, then per family of T)", "", *f1_table(res), "",
             f"**Effective-data multiplier** of `{res.target}` over `{res.reference}` on h note F1 (T)", "",
             *multiplier_lines(res), "",
             "**g: V → M** (per note on T, on the notes the DTW alignment pairs: Pearson r of velocities, of log "
             "inter-onset intervals and of log durations; RMS onset deviation after a tempo fit; velocity MAE)", "",
             *g_table(res), "", "**Peer** (a published transcriber on the same recordings)", "",
             *peer_lines(res), "", "**Level, timbre and noise** (h note F1 on T re-levelled to a given RMS, on T_timbre and on T_noisy)", "",
             *robustness_lines(res), "", "**Language models** (LM^M on T's true motion; lmm's label cleaning)", "",
             *lm_lines(res), "", f"**What each term adds** (`{res.target}` against its ablations at the same K)", "",
             *ablation_lines(res.summary, res.target, res.confidence, res.band_kind), "",
             f"**Reading.** {verdict(res)} {band_note(res)}", "",
             "**Figures**", "", *figure_lines(res, readme_dir)]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines)


def replace_section(text: str, section: str, mark_start: str = MARK_START, mark_end: str = MARK_END) -> str:
    """text with everything between the markers replaced by section (the markers stay)."""
    start, end = text.find(mark_start), text.find(mark_end)
    if start < 0 or end < 0 or end < start or text.count(mark_start) != 1 or text.count(mark_end) != 1:
        raise ResultsError(f"the README needs exactly one {mark_start} followed by one {mark_end}")
    return text[:start + len(mark_start)] + "\n" + section + "\n" + text[end:]


def write_readme(results: str | Path, readme: str | Path) -> str:
    """Render the results folder into the README between the markers; -> the section. Raises ResultsError (and
    writes nothing) when the folder, its files or the markers are missing."""
    readme = Path(readme)
    if not readme.is_file():
        raise ResultsError(f"README {readme} does not exist")
    res = load_results(results)
    section = render(res, readme.parent)
    text = replace_section(readme.read_text(), section)
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
    return section


__all__ = ["MARK_START", "MARK_END", "ResultsError", "Results", "load_results", "cells", "seed_band", "profile", "provenance_lines",
           "f1_table", "figure_lines", "multiplier_row", "interval_reading", "multiplier_lines", "verdict", "render",
           "replace_section", "write_readme"]
