"""Figures of stage 05: log-mel spectrograms side by side, and the fitting curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lmm_utils.core.io import atomic_path
from lmm_utils.core.motion import N_KEYS


def _pyplot():
    """matplotlib.pyplot, imported on first use (deferred: matplotlib is slow to import and only the figures
    need it). Agg is chosen before pyplot loads, unless a backend is set up already (a notebook's inline one)."""
    import matplotlib  # deferred: matplotlib (~0.5 s) only for figures

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # deferred: matplotlib (~0.5 s) only for figures

    return plt


def _save(fig, path: str | Path | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")


def close(fig) -> None:
    """Free a figure that was only saved (a script making many would otherwise keep them all)."""
    _pyplot().close(fig)


def motion_image(onset, sustain) -> np.ndarray:
    """(88, T) picture of a roll for plot_spectrograms: sounding keys grey, onsets dark."""
    return np.asarray(0.5 * sustain + 0.5 * onset)


def plot_spectrograms(panels: dict[str, np.ndarray], path: str | Path | None, title: str = "",
                      vmin: float = -11.5):
    """Log-mel panels side by side (same colour scale), e.g. {'FluidSynth': y, 'additive S': ...}."""
    plt = _pyplot()
    spectra = [np.asarray(p) for p in panels.values() if np.asarray(p).shape[0] != N_KEYS]
    vmax = max((float(np.max(p)) for p in spectra), default=1.0)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.8, 3.2), squeeze=False,
                             layout="constrained")
    im = None
    for i, (ax, (name, p)) in enumerate(zip(axes[0], panels.items())):
        p = np.asarray(p)
        if p.shape[0] == N_KEYS:  # a piano roll: keys on the y axis
            ax.imshow(p, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="Greys", interpolation="nearest")
            ax.set_ylabel("key (0 = A0)")
        else:
            im = ax.imshow(p, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
            if i == 0 or np.asarray(list(panels.values())[i - 1]).shape[0] == N_KEYS:
                ax.set_ylabel("mel bin")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame (20 ms)")
    if im is not None:
        fig.colorbar(im, ax=axes[0][-1], shrink=0.9, label="log mel power")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return fig


def plot_fit_curves(histories: dict[str, dict], path: str | Path | None):
    """Training loss per logged step (and validation points) of each fit, log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, h in histories.items():
        ax.plot(h["step"], h["train_loss"], label=f"{name} (train)")
        if h.get("val_loss"):
            ax.plot(h["val_step"], h["val_loss"], "o", label=f"{name} (val)")
    ax.set_xlabel("step")
    ax.set_ylabel("log-mel L1 (nats)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    return fig


__all__ = ["close", "motion_image", "plot_spectrograms", "plot_fit_curves"]
