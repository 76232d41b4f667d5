"""The data card: what the benchmark holds, as numbers (reports/metrics/data.json, and two headline numbers for
`dvc metrics show`), histograms (DVC plots) and one example excerpt a person can look at and listen to."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from lmm_utils.core import paths
from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.io import atomic_path, read_json, write_json
from lmm_utils.core.io import write_headline as write_headline_file
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.evaluation import EvaluationData  # T, T_timbre and motion are read only through it
from lmm_utils.data.textures import MAX_POLYPHONY_BIN, collection_textures


def _load(pool: str) -> list[ScoreExcerpt]:
    return list(EvaluationData().scores(pool).values())


def data_card(sample_rate: int) -> dict:
    """Counts per pool and collection, notes, hours of audio, skipped works, marks taken from sources."""

    splits = read_json(paths.SPLITS)
    card: dict = {"pools": {}, "skipped_works": len(read_json(paths.CORPUS_DIR / "skipped.json")),
                  "duplicates_dropped": len(splits["duplicates_dropped"])}
    every = []  # all pools' excerpts, read once
    for pool in paths.POOLS:
        excerpts = _load(pool)
        every += excerpts
        entry = {
            "pieces": len(splits["pools"][pool]["pieces"]),
            "excerpts": len(excerpts),
            "notes": sum(len(e.notes) for e in excerpts),
            "excerpts_per_collection": dict(sorted(Counter(e.collection for e in excerpts).items())),
            "tempo_from_source": sum(e.tempo_from_source for e in excerpts),
            "dynamics_from_source": sum(e.dynamics_from_source for e in excerpts),
        }
        card["pools"][pool] = entry
    # per collection over all pools: how fast and how thick the writing is (data/textures.py)
    card["textures"] = collection_textures(every)
    ev = EvaluationData()
    for pool in paths.AUDIO_POOLS:
        if ev.audio_dir(pool).is_dir():
            seconds = sum(sf.info(p).frames / sample_rate for p in ev.audio_files(pool))
            card["pools"].setdefault(pool, {})["audio_hours"] = round(seconds / 3600, 4)
    return card


def write_histograms(out_dir: Path = paths.PLOTS_DIR) -> dict[str, Path]:
    """Pitch, duration and tempo histograms over all pools, as CSV files for `dvc plots`."""
    notes_pitch, notes_dur, tempi = Counter(), Counter(), Counter()
    for pool in paths.POOLS:
        for e in _load(pool):
            tempi[int(e.tempo_bpm // 10 * 10)] += 1
            for n in e.notes:
                notes_pitch[n.pitch] += 1
                notes_dur[round(n.duration, 3)] += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, counter, xname in (("pitch", notes_pitch, "midi_pitch"), ("duration", notes_dur, "beats"),
                                 ("tempo", tempi, "bpm")):
        path = out_dir / f"data_{name}_hist.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([xname, "count"])
            for key in sorted(counter):
                w.writerow([key, counter[key]])
        files[name] = path
    return files


def plot_histograms(files: dict[str, Path]):
    import matplotlib.pyplot as plt  # deferred: matplotlib (~0.5 s) only for figures

    fig, axes = plt.subplots(1, len(files), figsize=(4 * len(files), 3))
    for ax, (name, path) in zip(axes, files.items()):
        rows = list(csv.reader(open(path)))[1:]
        x = [float(r[0]) for r in rows]
        y = [int(r[1]) for r in rows]
        if name == "duration":
            ax.bar(range(len(x)), y)
            ax.set_xticks(range(len(x)), [f"{v:g}" for v in x], rotation=90, fontsize=7)
        else:
            ax.bar(x, y, width=0.8 if name == "pitch" else 8)
        ax.set_title(name)
    fig.tight_layout()
    return fig


def show_example(excerpt_id: str, pool: str = "T", sample_rate: int = 16000):
    """Engraving, piano roll of the performance and spectrogram of the recording of one excerpt."""
    import matplotlib.pyplot as plt  # deferred: matplotlib (~0.5 s) only for figures


    ev = EvaluationData()
    perf = ev.motion(pool)[excerpt_id]
    audio, sr = ev.audio(pool, excerpt_id)
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), gridspec_kw={"height_ratios": [1, 1.2, 1.2]})
    png = ev.engraving_path(excerpt_id, pool)
    if png.exists():
        axes[0].imshow(plt.imread(png))
    axes[0].set_title(f"{excerpt_id}: engraving (V)")
    axes[0].axis("off")
    for n in perf.notes:
        axes[1].plot([n.onset, n.offset], [n.pitch, n.pitch], lw=4, color=plt.cm.viridis(n.velocity / 127))
    for p in perf.pedal:
        axes[1].axvline(p.time, color="red" if p.down else "gray", lw=0.8, ls="--")
    axes[1].set(title="performance (M): piano roll, colour = velocity, dashed = pedal", ylabel="MIDI pitch")
    mel = log_mel(audio, FeatureConfig(sample_rate=sr))
    axes[2].imshow(mel, origin="lower", aspect="auto", extent=[0, len(audio) / sr, 0, mel.shape[0]])
    axes[2].set(title="recording (A): log-mel", xlabel="seconds", ylabel="mel bin")
    axes[1].set_xlim(0, len(audio) / sr)
    fig.tight_layout()
    return fig, audio, sr


def write_metrics(card: dict, path: Path) -> None:
    flat = {"skipped_works": card["skipped_works"], "duplicates_dropped": card["duplicates_dropped"]}
    for pool, entry in card["pools"].items():
        for key in ("pieces", "excerpts", "notes", "audio_hours"):
            if key in entry:
                flat[f"{pool}_{key}"] = entry[key]
    for collection, tex in card.get("textures", {}).items():
        flat[f"{collection}_notes_per_s"] = tex["notes_per_s"]["mean"]
        flat[f"{collection}_polyphony"] = tex["polyphony_mean"]
    write_json(flat, path)


def texture_table(card: dict) -> list[dict]:
    """One row per collection: excerpts, notes per second (mean / median / 90th percentile), mean polyphony."""
    return [{"collection": c, "excerpts": t["excerpts"], "notes/s mean": t["notes_per_s"]["mean"],
             "median": t["notes_per_s"]["median"], "p90": t["notes_per_s"]["p90"], "polyphony": t["polyphony_mean"]}
            for c, t in card["textures"].items()]


def plot_textures(card: dict):
    """Per collection: the histogram of notes per second (excerpts) and of polyphony at note onsets (notes),
    each normalized to its collection's total so collections of different sizes compare."""
    import matplotlib.pyplot as plt  # deferred: matplotlib (~0.5 s) only for figures

    textures = card["textures"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    width = 0.8 / max(1, len(textures))
    for j, (collection, t) in enumerate(textures.items()):
        for ax, hist, step in ((axes[0], t["notes_per_s_hist"], 2.0), (axes[1], t["polyphony_hist"], 1.0)):
            x = np.array([float(k) for k in hist])
            y = np.array(list(hist.values()), float)
            ax.bar(x + (j - len(textures) / 2) * width * step, y / max(y.sum(), 1), width=width * step,
                   label=collection, align="edge")
    axes[0].set(title="notes per second (excerpts)", xlabel="notes/s (bins of 2)", ylabel="share")
    axes[1].set(title="polyphony at note onsets", xlabel=f"notes sounding ({MAX_POLYPHONY_BIN} = {MAX_POLYPHONY_BIN}+)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


HEADLINE_FILE = paths.HEADLINE_DIR / "data.json"


def headline(card: dict) -> dict:
    """The data's headline metrics (`dvc metrics show`): excerpts over the pools U_V, U_A, P, T and hours of
    audio over every recorded pool (T_timbre included). The full card stays in reports/metrics/data.json."""
    pools = card["pools"]
    return {"excerpts": sum(pools[p].get("excerpts", 0) for p in paths.POOLS if p in pools),
            "audio_h": round(sum(e.get("audio_hours", 0.0) for e in pools.values()), 3)}


def write_headline(card: dict, path: Path = HEADLINE_FILE) -> dict:
    return write_headline_file(headline(card), path)


def skipped_table(limit: int = 50) -> list[dict]:
    return read_json(paths.CORPUS_DIR / "skipped.json")[:limit]


def mean_excerpt_seconds(pool: str = "T") -> float:
    perfs = EvaluationData().motion(pool).values()
    return float(np.mean([max(n.offset for n in p.notes) for p in perfs if p.notes]))
