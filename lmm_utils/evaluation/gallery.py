"""The evaluation notebook's gallery: a few T excerpts with their engraving, recording, what h heard
(rendered back to sound) and piano rolls of truth vs h(a) and vs g(v); and, to hear g, a few T scores played by the
plain performer, by the best learned g (per-note velocity r) and by the benchmark pianist (the truth), each through
the same FluidSynth piano (`listening_items`, `fluid_audio`).

Rendering h(a) to sound: with the learned synthesizer S (data/synth/S.pt), S(h(a)) is a log-mel
spectrogram; it becomes audio by Griffin-Lim phase reconstruction (librosa), which sounds smeared but is
what S "means". Without S, h(a) is rendered by FluidSynth instead. `render_motion` says which it used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig, mel_filterbank
from lmm_utils.core.motion import Performance, to_roll
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.evaluation.curves import best_runs
from lmm_utils.evaluation.predictions import run_sources
from lmm_utils.models.performer import plain_performance

SYNTH_PATH = Path("data/synth/S.pt")


def pick_gallery(truth: Truth, ids: list[str], n: int, seed: int = 0) -> list[str]:
    """n excerpts of `ids`, alternating between the families that exist (seeded, stable)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for i in sorted(ids):
        groups.setdefault(family(truth.collection[i]), []).append(i)
    for g in groups.values():
        rng.shuffle(g)
    out, names = [], sorted(groups)
    while len(out) < n and any(groups.values()):
        for name in names:
            if groups[name] and len(out) < n:
                out.append(groups[name].pop())
    return out


def gallery_run(runs: dict[str, dict], target: str = "lmm") -> dict | None:
    """The run whose predictions the gallery shows, from {method: run} (the evaluate stage passes
    curves.representative_runs: picked without a score, so the gallery is not a best case): the target method's,
    else the first method's by name."""
    return runs.get(target) or (runs[min(runs)] if runs else None)


def gallery_items(data: EvaluationData, truth: Truth, ids: list[str], run_dir: Path | None) -> list[dict]:
    """Per excerpt: id, collection, engraving (path or None), recording path, truth, and h(a) / g(v) read back
    from the run's predictions (None without a run)."""
    out = []
    sources = run_sources(run_dir) if run_dir else {}
    for i in ids:
        png = data.engraving_path(i)
        preds = {k: (sources[k].get(i)[0] if k in sources else Performance(notes=[])) if run_dir else None
                 for k in ("h", "g")}
        out.append({"id": i, "collection": truth.collection[i], "engraving": png if png.is_file() else None,
                    "recording": data.audio_path("T", i), "truth": truth.perf[i], **preds})
    return out


def best_g_run(table: list[dict]) -> dict | None:
    """The run whose g the listening gallery plays: the highest per-note velocity r on T over every method's runs."""
    best = best_runs(table, "g", "velocity_r")
    return max(best.values(), key=lambda b: b["g_velocity_r"]) if best else None


def listening_items(data: EvaluationData, ids: list[str], run_dir: Path | None) -> list[dict]:
    """Per T score: the plain performer's, the run's g's (None without a run) and the true performance."""
    scores = data.scores("T")
    truth = data.motion("T")
    sources = run_sources(run_dir) if run_dir else {}
    return [{"id": i, "plain": plain_performance(scores[i]), "truth": truth[i],
             "g": (sources["g"].get(i)[0] if "g" in sources else Performance(notes=[])) if run_dir else None}
            for i in ids]


def fluid_audio(perf: Performance, feat: FeatureConfig = FeatureConfig(), tail: float = 1.0) -> np.ndarray:
    """A performance through FluidSynth's acoustic grand, dry: every version of a score sounds on the same piano."""
    from lmm_utils.data.render import FluidRenderer, RecordingConditions  # deferred: FluidSynth bindings

    return FluidRenderer(feat.sample_rate).render(perf, RecordingConditions(soundfont="FluidR3_GM.sf2"), tail=tail)


def griffin_lim(logmel: np.ndarray, feat: FeatureConfig, n_iter: int = 32) -> np.ndarray:
    """log(mel power + floor) -> waveform (phase by Griffin-Lim), peak-normalised to 0.9."""
    import librosa  # deferred: a slow import (numba), needed only when the gallery renders

    power = np.maximum(np.exp(logmel) - feat.log_floor, 0.0)
    # mel -> linear power by the filterbank's pseudo-inverse, not librosa's non-negative least squares
    # (mel_to_audio): ~3.7 s an excerpt, most of the evaluate stage's gallery, for a listening aid
    magnitude = np.sqrt(np.maximum(np.linalg.pinv(mel_filterbank(feat)) @ power, 0.0))  # the log-mel's own filters
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=feat.hop_length, n_fft=feat.n_fft)
    peak = float(np.max(np.abs(audio), initial=0.0))
    return (0.9 * audio / peak).astype(np.float32) if peak > 0 else audio.astype(np.float32)


def render_motion(perf: Performance, feat: FeatureConfig = FeatureConfig(), synth_path: Path = SYNTH_PATH,
                  tail: float = 1.0) -> tuple[np.ndarray, int, str]:
    """(audio, sample rate, how): S + Griffin-Lim when S exists, else FluidSynth (acoustic grand)."""
    if Path(synth_path).is_file():
        from lmm_utils.models.synth import load_synth  # deferred: only one of the two renderers is loaded

        synth = load_synth(synth_path)
        n = int(np.ceil((perf.duration + tail) * feat.fps)) + 1
        roll = to_roll(perf, feat.fps, n)
        with torch.no_grad():
            logmel = synth.synth_roll({k: roll[k][None] for k in ("onset", "velocity", "sustain")})[0].numpy()
        return griffin_lim(logmel, feat), feat.sample_rate, f"S(h(a)): {synth_path} + Griffin-Lim phase reconstruction"
    return fluid_audio(perf, feat, tail), feat.sample_rate, "FluidSynth rendering of h(a) (no S at data/synth/S.pt)"


__all__ = ["pick_gallery", "gallery_run", "gallery_items", "best_g_run", "listening_items", "fluid_audio", "griffin_lim",
           "render_motion", "SYNTH_PATH"]
