"""What notebook 06 (pretrain) shows and writes: loss curves, bits per token vs baselines, decoded samples; the
metrics file (reports/metrics/pretrain_<modality>.json) and its headline (reports/headline/lm_<modality>.json).

Score samples are engraved (lmm_utils.data.engrave: MusicXML -> verovio SVG -> PNG) and shown with their
piano roll; audio samples are shown as the codebook log-mel spectrogram their tokens decode to.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from lmm_utils.core.io import write_headline
from lmm_utils.core.paths import HEADLINE_DIR
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.engrave import EngraveConfig, engrave


def plot_history(hist: dict, title: str = "") -> plt.Figure:
    """Training and validation cross-entropy in bits per token against optimizer steps."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(hist["step"], np.array(hist["train_loss"]) / math.log(2), label="train (running mean)")
    if hist.get("val_loss"):
        ax.plot(hist["val_step"], np.array(hist["val_loss"]) / math.log(2), "o-", label="validation (held-out part of the training pool)")
    ax.set(xlabel="step", ylabel="bits / token", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_bits(results: dict, title: str = "") -> plt.Figure:
    """Held-out bits per token: LM vs bigram vs unigram vs uniform (lower is better)."""
    names = ["lm", "bigram", "unigram", "uniform"]
    vals = [results[n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3))
    bars = ax.barh(["LM (transformer)", "bigram (KN)", "unigram (add-one)", "uniform"], vals,
                   color=["C0", "C1", "C2", "0.6"])
    for b, v in zip(bars, vals):
        ax.text(v, b.get_y() + b.get_height() / 2, f" {v:.2f}", va="center")
    ax.invert_yaxis()
    ax.set(xlabel="bits / token on T (lower is better)", title=title, xlim=(0, max(vals) * 1.2))
    fig.tight_layout()
    return fig


def piano_roll(ax: plt.Axes, ex: ScoreExcerpt, title: str = "") -> None:
    """Notes as bars (beats x MIDI pitch), coloured by voice, bar lines dashed."""
    for n in ex.notes:
        ax.barh(n.pitch, max(n.duration, 0.05), left=n.onset, height=0.8, color=f"C{n.voice % 10}")
    for b in range(ex.n_bars + 1):
        ax.axvline(b * ex.bar_beats, color="0.7", lw=0.6, ls="--")
    ax.set(xlabel="beats", ylabel="MIDI pitch", title=title or f"{ex.meter}, {ex.key}, \u2669={ex.tempo_bpm:g}")


def engrave_png(ex: ScoreExcerpt, height: int = 160) -> bytes | None:
    """PNG of the excerpt engraved with verovio, or None if engraving fails (odd sampled scores)."""

    try:
        return engrave(ex, EngraveConfig(height=height))[0]
    except Exception:  # music21/verovio reject some sampled scores; the piano roll still shows them
        return None


def show_scores(excerpts: Sequence[ScoreExcerpt], titles: Sequence[str], save_dir: str | Path | None = None,
                prefix: str = "pretrain_V_sample") -> plt.Figure:
    """Each excerpt engraved (left) and as a piano roll (right); engravings also saved as PNG files."""
    fig, axes = plt.subplots(len(excerpts), 2, figsize=(14, 2.6 * len(excerpts)), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1]})
    for i, (ex, title) in enumerate(zip(excerpts, titles)):
        png = engrave_png(ex) if ex.notes else None
        ax = axes[i, 0]
        ax.axis("off")
        if png is not None:
            ax.imshow(plt.imread(io.BytesIO(png)))
            if save_dir is not None:
                Path(save_dir).mkdir(parents=True, exist_ok=True)
                (Path(save_dir) / f"{prefix}{i}.png").write_bytes(png)
        else:
            ax.text(0.5, 0.5, "(not engravable: see the piano roll)", ha="center", va="center")
        ax.set_title(f"{title}: {len(ex.notes)} notes, {ex.n_bars} bars, {ex.meter}, {ex.key}, \u2669={ex.tempo_bpm:g}",
                     loc="left", fontsize=9)
        piano_roll(axes[i, 1], ex, title=" ")
    fig.tight_layout()
    return fig


def show_spectrograms(mels: Sequence[np.ndarray], titles: Sequence[str], fps: float) -> plt.Figure:
    """Log-mel spectrograms (mel bin x seconds), one row each, on a shared colour scale."""
    lo = min(float(np.percentile(m, 1)) for m in mels if m.size)
    hi = max(float(m.max()) for m in mels if m.size)
    fig, axes = plt.subplots(len(mels), 1, figsize=(10, 2.2 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        ax.imshow(mel, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                  extent=(0, mel.shape[1] / fps, 0, mel.shape[0]))
        ax.set(ylabel="mel bin", title=title)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    return fig


def show_codebook(tok, mels: Sequence[np.ndarray], fps: float, names: Sequence[str]) -> plt.Figure:
    """Each test spectrogram above its codebook reconstruction (AudioTokenizer.reconstruct)."""
    rows, titles = [], []
    for mel, name in zip(mels, names):
        rows += [mel, tok.reconstruct(mel)]
        titles += [f"{name}: log-mel", f"{name}: codebook reconstruction ({tok.codebook_size} codes)"]
    return show_spectrograms(rows, titles, fps)


def token_histogram(seqs: Sequence[Sequence[int]], tok, title: str = "", top: int = 40) -> plt.Figure:
    """The most frequent tokens of the training sequences (a quick look at the vocabulary in use)."""
    counts = np.bincount(np.concatenate([np.asarray(s) for s in seqs]), minlength=tok.vocab_size)
    order = np.argsort(-counts)[:top]
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.bar(range(len(order)), counts[order])
    ax.set_xticks(range(len(order)), tok.names(order), rotation=90, fontsize=7)
    used = int((counts > 0).sum())
    ax.set(ylabel="count", title=f"{title} ({used} of {tok.vocab_size} tokens used)")
    fig.tight_layout()
    return fig


def show_samples(lm, samples: Sequence[Sequence[int]], fps: float = 50.0, save_dir: str | Path | None = None) -> plt.Figure:
    """Decoded samples of LM^V (engraved + piano roll) or LM^A (codebook spectrograms)."""
    titles = [f"sample {i} ({len(s)} tokens{'' if s[-1] == 2 else ', no <eos>'})" for i, s in enumerate(samples)]
    decoded = [lm.decode(s) for s in samples]
    if lm.tokenizer.modality == "V":
        return show_scores(decoded, titles, save_dir, prefix="pretrain_V_sample")
    if lm.tokenizer.modality == "A":
        return show_spectrograms(decoded, titles, fps)  # tokens decode to frames at the feature rate
    raise ValueError(f"no sample display for modality {lm.tokenizer.modality}")


def pretrain_metrics(data, lm, results: dict, fps: float = 50.0) -> dict:
    """The stage's metrics file: held-out bits per token (LM and baselines), training and data facts."""
    hist = lm.info.get("history", {})
    bits = lambda x: x / math.log(2)  # noqa: E731  (losses are in nats)
    out = {
        "modality": data.modality,
        "test": {f"{k}_bits_per_token": round(results[k], 4) for k in ("lm", "bigram", "unigram", "uniform")}
        | {"n_tokens": results["n_tokens"], "n_sequences": results["n_sequences"],
           "lm_gain_over_bigram_bits": round(results["bigram"] - results["lm"], 4)},
        "train": {
            "steps": hist.get("config", {}).get("steps"), "seconds": round(hist.get("seconds", 0.0), 1),
            "tokens_per_s": round(hist.get("tokens_per_s", 0.0)), "n_params": lm.info.get("n_params"),
            "final_train_bits_per_token": round(bits(hist["train_loss"][-1]), 4) if hist.get("train_loss") else None,
            "final_val_bits_per_token": round(bits(hist["val_loss"][-1]), 4) if hist.get("val_loss") else None,
            "device": hist.get("device"), "precision": hist.get("precision"),
        },
        "data": data.summary(),
    }
    if data.modality == "A":
        tps = data.stats.get("codebook", {}).get("tokens_per_second") or fps / lm.tokenizer.frames_per_token
        out["test"]["lm_bits_per_second"] = round(results["lm"] * tps, 2)
        out["test"]["lm_gain_over_bigram_bits_per_second"] = round((results["bigram"] - results["lm"]) * tps, 2)
        out["codebook"] = data.stats.get("codebook", {})
    return out


def headline(metrics: dict) -> dict:
    """The stage's headline metric (`dvc metrics show`): `<modality>_bits`, the LM's bits per token on T."""
    return {f"{metrics['modality']}_bits": metrics["test"]["lm_bits_per_token"]}


def headline_file(modality: str) -> Path:
    return HEADLINE_DIR / f"lm_{modality}.json"


def write_headline_metrics(metrics: dict, root: str | Path = ".") -> dict:
    """reports/headline/lm_<modality>.json from the stage's metrics; -> what was written."""
    return write_headline(headline(metrics), Path(root) / headline_file(metrics["modality"]))


def codebook_rows(codebook_stats: dict) -> dict[str, dict]:
    """The codebook's reconstruction error per pool, as rows for display.table."""
    return {pool: {**v, "codes_used": codebook_stats.get("codes_used")} for pool, v in codebook_stats.items()
            if isinstance(v, dict)}


__all__ = ["codebook_rows", "show_samples", "pretrain_metrics", "headline", "headline_file", "write_headline_metrics",
           "plot_history", "plot_bits", "piano_roll", "engrave_png", "show_scores", "show_spectrograms",
           "show_codebook", "token_histogram"]
