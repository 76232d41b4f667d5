"""Figures of the evaluation: sample-efficiency curves, the effective-data multiplier, piano rolls, layer maps.

Curves are drawn against x = log2(K + 1) with ticks labelled by K, so K = 0 has a place on a log axis and
the area under the drawn curve is exactly the AUC reported in the metrics. One colour per base method;
ablations (`lmm-no_x`) share their method's colour, dashed; peers are black dotted flat lines.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection

from lmm_utils.core.io import atomic_path
from lmm_utils.core.motion import Performance, to_roll
from lmm_utils.data.evaluation import Truth
from lmm_utils.evaluation.curves import Curve, by_method
from lmm_utils.evaluation.predictions import run_sources

BASE_COLOURS = {"supervised": "C0", "surface": "C1", "cycle": "C2", "synth_pairs": "C4", "lmm": "C3"}


def method_style(method: str) -> dict:
    base = method.split("-")[0]
    colour = BASE_COLOURS.get(base)
    if colour is None:  # unknown methods get stable colours from the tail of the cycle
        colour = f"C{5 + sum(map(ord, base)) % 5}"
    ablation = base != method
    return {"color": colour, "linestyle": "--" if ablation else "-", "marker": "o" if not ablation else "s",
            "alpha": 0.8 if ablation else 1.0}


def k_axis(ax: plt.Axes, ks: list[int]) -> None:
    ks = sorted(set(ks))
    ax.set_xticks([math.log2(k + 1) for k in ks])
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("K (score-audio pairs; log scale, K = 0 at the left)")


def draw_curve(ax: plt.Axes, points: list[dict], curve: Curve, peers: dict[str, float] | None = None,
               legend: bool = True) -> None:
    """Mean line per method with its band over seeds (fill), peers as flat dotted lines."""
    ks = [p["K"] for p in points]
    for method, ps in sorted(by_method(points).items(), key=lambda kv: (kv[0].split("-")[0] != "lmm", kv[0])):
        x = [p["x"] for p in ps]
        st = method_style(method)
        ax.fill_between(x, [p["lo"] for p in ps], [p["hi"] for p in ps], color=st["color"], alpha=0.15, lw=0)
        ax.plot(x, [p["mean"] for p in ps], label=method, ms=4, **st)
    for name, value in (peers or {}).items():
        if value is not None and ks:
            ax.axhline(value, color="k", ls=":", lw=1.2, label=f"{name} (peer)")
    if ks:
        k_axis(ax, ks)
    ax.set_title(curve.label, fontsize=9)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="best")


def plot_curve_grid(points_by_curve: dict[str, list[dict]], curves: list[Curve],
                    peers_by_curve: dict[str, dict[str, float]] | None = None, ncols: int = 4) -> plt.Figure:
    """Small multiples: one panel per curve (e.g. a system's metrics x subsets)."""
    n = len(curves)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for i, c in enumerate(curves):
        ax = axes.flat[i]
        draw_curve(ax, points_by_curve.get(c.key, []), c, (peers_by_curve or {}).get(c.key), legend=(i == 0))
        ax.set_ylabel(c.metric, fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_multiplier(rows_by_curve: dict[str, dict | list], target: str = "lmm", reference: str = "supervised") -> plt.Figure:
    """Equivalent pairs K' the reference needs against the target's K (log-log; the diagonal = no gain), with the
    interval over seeds as error bars (an end outside the reference's K range runs to the plot's edge: a bound).
    rows_by_curve: {curve key: multiplier rows}, as a list or keyed "K=k" (evaluate.json's form)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    series = []
    for key, rows in rows_by_curve.items():
        rows = rows.values() if isinstance(rows, dict) else rows
        series.append((key, [r for r in rows if isinstance(r, dict) and "K" in r and r["K"] > 0]))
    # the plot's top edge first: "never reached" markers and open interval ends are drawn there
    finite = [v for _, rows in series for r in rows
              for v in (r["K"], r.get("equivalent_K"), r.get("equivalent_K_lo"), r.get("equivalent_K_hi")) if v]
    top = max([1, *finite])
    edge = top * 1.5
    floor = 0.5  # K' = 0 (reached with no pairs) has no place on a log axis: its interval end is drawn here
    for i, (key, rows) in enumerate(series):
        if not rows:
            continue
        exact = [(r["K"], r["equivalent_K"]) for r in rows if r["equivalent_K"] is not None]
        if exact:
            ax.plot(*zip(*exact), "o-", color=f"C{i}", label=key)
        above = [r["K"] for r in rows if r["bound"] == "above_max"]
        if above:
            ax.scatter(above, [edge] * len(above), marker="^", color=f"C{i}")
        with_ci = [r for r in rows if "interval_bound" in r]
        if with_ci:
            x = [r["K"] for r in with_ci]
            y = [max(r["equivalent_K"], floor) if r["equivalent_K"] is not None else edge for r in with_ci]
            lo = [max(r["equivalent_K_lo"], floor) if r["equivalent_K_lo"] is not None else edge for r in with_ci]
            hi = [r["equivalent_K_hi"] if r["equivalent_K_hi"] is not None else edge for r in with_ci]
            yerr = np.array([[max(c - a, 0.0) for c, a in zip(y, lo)], [max(b - c, 0.0) for c, b in zip(y, hi)]])
            ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=f"C{i}", elinewidth=1.2, capsize=3, alpha=0.8)
    conf = next((r.get("confidence") for _, rows in series for r in rows if "interval_bound" in r), None)
    ax.plot([1, top], [1, top], color="0.6", ls="--", lw=1, label="no gain (K' = K)")
    bars = f"; bars: {conf:.0%} interval over seeds" if conf is not None else ""
    ax.set(xscale="log", yscale="log", xlabel=f"K ({target})", ylabel=f"pairs {reference} needs for the same quality",
           title=f"effective-data multiplier (triangles: never reached{bars})")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _note_bars(ax: plt.Axes, notes, min_width: float = 0.0, **style) -> None:
    """Notes as bars 0.8 semitones high, centred on their pitch, drawn as one collection: a barh call per note
    (a Rectangle artist each) took seconds for a gallery panel of thousands of notes."""
    if not notes:
        return
    verts = [[(n.onset, n.pitch - 0.4), (n.onset + max(n.offset - n.onset, min_width), n.pitch - 0.4),
              (n.onset + max(n.offset - n.onset, min_width), n.pitch + 0.4), (n.onset, n.pitch + 0.4)] for n in notes]
    bars = PolyCollection(verts, **style)
    bars.sticky_edges.x[:] = [min(n.onset for n in notes)]  # as barh: no margin before the first onset
    ax.add_collection(bars)
    ax.autoscale_view()


def piano_roll(ax: plt.Axes, truth: Performance, est: Performance | None = None, title: str = "") -> None:
    """Truth as grey bars, an estimate as coloured outlines on top (velocity in the outline's darkness)."""
    _note_bars(ax, truth.notes, facecolors="0.75", linewidths=0)
    if est is not None:
        _note_bars(ax, est.notes, min_width=0.01, facecolors="none", linewidths=1.0,
                   edgecolors=[plt.cm.Reds(0.35 + 0.65 * n.velocity / 127) for n in est.notes])
    pitches = [n.pitch for n in truth.notes] + ([n.pitch for n in est.notes] if est is not None else [])
    if pitches:
        ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set(xlabel="seconds", ylabel="MIDI pitch", title=title)


def velocity_roll(ax: plt.Axes, perf: Performance, title: str = "") -> None:
    """A performance as bars coloured by velocity (one colour scale for every panel: 1..127)."""
    _note_bars(ax, perf.notes, min_width=0.01, linewidths=0,
               facecolors=[plt.cm.viridis(n.velocity / 127) for n in perf.notes])
    if perf.notes:
        ax.set_ylim(min(n.pitch for n in perf.notes) - 2, max(n.pitch for n in perf.notes) + 2)
    ax.set(xlabel="seconds", ylabel="MIDI pitch", title=title)


def plot_predictions(run_dir: str | Path, ids: list[str], truth: Truth, seconds: float | None = None) -> plt.Figure:
    """Piano rolls (onsets darker) per excerpt: truth, h(a) on T, h(a) on T_timbre, g(v), the last three read
    back from the run's saved predictions (what its scores were computed from)."""
    run_dir = Path(run_dir)
    sources = run_sources(run_dir)
    panels = [("truth", None), ("h(a), T", "h"), ("h(a), T_timbre", "h_timbre"), ("g(v)", "g")]
    fig, axes = plt.subplots(len(ids), len(panels), figsize=(4 * len(panels), 2.4 * len(ids)), squeeze=False)
    for r, i in enumerate(ids):
        ref = truth.perf[i]
        perfs = [ref] + [sources[k].get(i)[0] if k in sources else Performance(notes=[]) for _, k in panels[1:]]
        dur = seconds or max((p.duration for p in perfs if p.notes), default=1.0) + 0.2
        n = int(dur * 50) + 1
        lo = min((x.pitch for x in ref.notes), default=60) - 21 - 6
        hi = max((x.pitch for x in ref.notes), default=72) - 21 + 6
        for c, ((title, _), perf) in enumerate(zip(panels, perfs)):
            ax = axes[r, c]
            rolls = to_roll(perf, 50.0, n)
            ax.imshow((rolls["frame"] + rolls["onset"])[max(lo, 0):hi], aspect="auto", origin="lower", cmap="Greys",
                      vmin=0, vmax=2, extent=(0, n / 50.0, max(lo, 0) + 21, hi + 21))
            ax.set_title(f"{title}" + (f"\n{i}" if c == 0 else ""), fontsize=8)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def plot_layer_matrix(mat: np.ndarray, title: str, xlabel: str = "LM^A layer", ylabel: str = "LM^V layer") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 3.4))
    im = ax.imshow(mat, origin="lower", cmap="viridis")
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


# SVG ids (clip paths, glyphs) come from a hash salted per process, and the file carries its creation time: a fixed
# salt and no date make the same figure the same bytes, so re-running evaluate leaves the committed figures as they are.
SVG_HASH_SALT = "lmm"


def save_figure(fig: plt.Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 110) -> list[Path]:
    """stem.png and stem.svg, each written under a temporary name first; the same figure gives the same bytes."""
    out = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        svg = {"metadata": {"Date": None}} if fmt == "svg" else {}
        with atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", **svg)
        out.append(path)
    return out


def save_and_show(fig: plt.Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """save_figure, then close the figure and show its PNG in the notebook: drawing it inline as well would render
    it a third time (the curve grids take seconds each)."""
    paths = save_figure(fig, stem, formats)
    plt.close(fig)
    from IPython.display import Image, display  # deferred: only notebooks show figures; scripts and tests save them

    display(Image(filename=str(paths[0])))
    return paths


__all__ = ["save_and_show", "method_style", "k_axis", "draw_curve", "plot_curve_grid", "plot_multiplier", "piano_roll", "velocity_roll",
           "plot_predictions", "plot_layer_matrix", "save_figure"]
