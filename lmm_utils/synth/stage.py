"""Stage 05 (notebooks/05_synth.ipynb): fit S's kinds and the template baseline on random motion only, judge them
on the evaluation pool's ground-truth motion, and write data/synth/{<kind>,S}.pt, reports/metrics/synth.json (all
numbers), reports/headline/synth.json (S's log-mel L1, for `dvc metrics show`) and
reports/plots/synth_{fit_curves,spectrograms}.png.

The notebook calls the steps below in order and shows what they return (tables, figures, audio); `run_stage` runs
the same steps without a notebook. Each step returns its objects and the metrics entries it adds, in the order
synth.json keeps them: kind, pianos, render_seconds, fit_seconds, fit_seconds_total_with_render, eval_set, test,
test_known_piano, random_val_known_piano, heldout_piano (when there is one), gradient_check, speed.
"""
from __future__ import annotations

import time
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import write_headline, write_json
from lmm_utils.core.params import ParamsError, dataclass_from
from lmm_utils.core.paths import HEADLINE_DIR, METRICS_DIR, PLOTS_DIR
from lmm_utils.models.synth import KINDS, SynthBase, build_synth, kind_config, save_synth
from lmm_utils.synth.fit import FIT_KEYS, BaselineConfig, FitConfig, TemplateBaseline, fit_config, fit_synth
from lmm_utils.synth.judge import evaluate_synth, gradient_check, measure_speed, predict_item, summarize
from lmm_utils.synth.pairs import Piano, SynthPairs, load_pool_pairs, make_random_pairs, pool_available
from lmm_utils.synth.plots import close, motion_image, plot_fit_curves, plot_spectrograms
from lmm_utils.synth.random_motion import motion_config

SYNTH_DIR = Path("data/synth")
METRICS_FILE = METRICS_DIR / "synth.json"
HEADLINE_FILE = HEADLINE_DIR / "synth.json"
FIT_CURVES_PLOT = PLOTS_DIR / "synth_fit_curves.png"
SPECTROGRAMS_PLOT = PLOTS_DIR / "synth_spectrograms.png"
SPEED_SECONDS = 10.0  # length of the random rolls the speed is measured on


@dataclass(frozen=True)
class SynthStageConfig:
    """params.yaml `synth`, every key as the stage reads it. The kinds' sub-sections (additive, neural) hold the
    kind's config (models/synth_*.py) and its fitting settings (synth.fit.FitConfig); baseline holds the
    baseline's fitting settings; seed, threads and piano_dropout apply to every fit."""

    seed: int
    kind: str  # the kind saved as data/synth/S.pt, used downstream
    kinds: tuple[str, ...]  # fitted and compared
    pianos: tuple[tuple[str, int], ...]  # fitting pianos [soundfont, preset]
    n_random_excerpts: int
    n_val_excerpts: int
    excerpt_seconds: float
    workers: int  # rendering processes, 0 = all cores
    threads: int  # torch threads while fitting
    motion: dict  # RandomMotionConfig fields (synth.random_motion)
    baseline: dict  # FitConfig keys
    piano_dropout: float
    eval_pool: str
    eval_limit: int | None
    speed_batch: int
    grad_check_frames: int
    heldout_piano: tuple[str, int] | None = None  # only to report how S fares on an unheard piano
    additive: dict | None = None  # AdditiveConfig fields + FitConfig keys
    neural: dict | None = None  # NeuralConfig fields + FitConfig keys

    @property
    def piano_list(self) -> list[Piano]:
        return [(str(sf), int(preset)) for sf, preset in self.pianos]

    def fit_args(self) -> dict:
        """The fitting settings the synth section sets once for every fit (a sub-section may not set them)."""
        return {"seed": self.seed, "threads": self.threads, "piano_dropout": self.piano_dropout}


def stage_config(synth: dict | SynthStageConfig) -> SynthStageConfig:
    """The stage's config from params.yaml `synth`. Every key is checked here, before anything is rendered: a
    missing or unknown key (also in motion, baseline and the kinds' sub-sections) is refused, naming it."""
    if isinstance(synth, SynthStageConfig):
        return synth
    if isinstance(synth, dict):
        for f in fields(SynthStageConfig):
            if f.default is MISSING and f.name not in synth:
                raise ParamsError(f"params.yaml: synth.{f.name} is missing")
    cfg = dataclass_from(SynthStageConfig, synth, "synth")
    for kind in cfg.kinds:
        if kind not in KINDS:
            raise ParamsError(f"params.yaml: synth.kinds lists {kind!r}; kinds are {', '.join(KINDS)}")
    if cfg.kind not in cfg.kinds:
        raise ParamsError(f"params.yaml: synth.kind {cfg.kind!r} must be one of synth.kinds {list(cfg.kinds)}")
    motion_config(cfg.motion, cfg.excerpt_seconds)
    for name in ("baseline", *cfg.kinds):
        fit_settings(cfg, name)
    for kind in cfg.kinds:
        kind_config(kind_sections(cfg), kind, FIT_KEYS)
    return cfg


def fit_settings(cfg: SynthStageConfig, name: str) -> FitConfig:
    """How `name` (baseline or a kind) is fitted: its sub-section's fitting settings (a kind's also holds its
    config: kind_config reads that part), with the section-wide seed, threads and piano_dropout."""
    sub = cfg.baseline if name == "baseline" else {k: v for k, v in (getattr(cfg, name) or {}).items() if k in FIT_KEYS}
    for key in cfg.fit_args():
        if key in sub:  # it would be overridden by the section-wide value, i.e. ignored
            raise ParamsError(f"params.yaml: synth.{name}.{key} is not read: synth.{key} applies to every fit")
    return fit_config({**sub, **cfg.fit_args()}, f"synth.{name}")


def kind_sections(cfg: SynthStageConfig) -> dict:
    """What models.synth.kind_config / build_synth read of the synth section: the pianos and the kinds' sub-sections."""
    return {"pianos": cfg.pianos, **{kind: getattr(cfg, kind) for kind in cfg.kinds}}


def setup(cfg: SynthStageConfig, root: str | Path = ".") -> dict:
    """Seed torch, make the output folders; returns the metrics' first entries."""
    torch.manual_seed(cfg.seed)
    (Path(root) / SYNTH_DIR).mkdir(parents=True, exist_ok=True)
    (Path(root) / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    return {"kind": cfg.kind, "pianos": [f"{sf}:{p}" for sf, p in cfg.piano_list]}


# ---------------------------------------------------------------- random motion, rendered by the benchmark pianos

def render_random_pairs(cfg: SynthStageConfig, feat: FeatureConfig) -> tuple[SynthPairs, SynthPairs, float]:
    """The training excerpts and the validation excerpts after them (pianos cycled); and the seconds it took."""
    motion = motion_config(cfg.motion, cfg.excerpt_seconds)
    t0 = time.perf_counter()
    train = make_random_pairs(cfg.n_random_excerpts, cfg.seed, cfg.piano_list, feat, motion, cfg.workers)
    val = make_random_pairs(cfg.n_val_excerpts, cfg.seed, cfg.piano_list, feat, motion, cfg.workers,
                            start=cfg.n_random_excerpts, desc="render validation motion")
    return train, val, time.perf_counter() - t0


def render_summary(cfg: SynthStageConfig, train: SynthPairs, val: SynthPairs, seconds: float) -> str:
    notes = train.onset.flatten(1).sum(1).float()
    return (f"{len(train)} training + {len(val)} validation excerpts of {cfg.excerpt_seconds} s rendered in "
            f"{seconds:.1f} s; notes per excerpt: median {notes.median():.0f}, max {notes.max():.0f}")


def excerpt_panels(cfg: SynthStageConfig, pairs: SynthPairs, i: int = 0) -> dict[str, np.ndarray]:
    """One excerpt's motion and its FluidSynth log-mel, for plot_spectrograms."""
    o, _, s, piano, y = pairs.item(i)
    sf, preset = cfg.piano_list[int(piano)]
    return {"motion (sustain, onsets dark)": motion_image(o[0], s[0]), f"FluidSynth {sf}:{preset}": y[0].numpy()}


# ---------------------------------------------------------------- fitting

def fit_all(cfg: SynthStageConfig, feat: FeatureConfig, train: SynthPairs, val: SynthPairs,
            out_dir: str | Path = SYNTH_DIR, progress: bool = True,
            ) -> tuple[TemplateBaseline, dict[str, SynthBase], dict[str, dict]]:
    """Fit the baseline and every kind (each from seed cfg.seed); save out_dir/<kind>.pt and out_dir/S.pt (the
    downstream kind). Fit times go to the histories (and metrics), not the checkpoints: same fit, same bytes.
    Returns (baseline, {kind: S}, {name: history})."""
    out_dir = Path(out_dir)
    baseline = TemplateBaseline(BaselineConfig(len(cfg.pianos)), feat)
    histories = {"baseline": fit_synth(baseline, train, val, fit_settings(cfg, "baseline"), progress=progress)}
    models: dict[str, SynthBase] = {}
    for kind in cfg.kinds:
        torch.manual_seed(cfg.seed)
        models[kind] = build_synth(kind_sections(cfg), feat, kind, fit_keys=FIT_KEYS)
        histories[kind] = fit_synth(models[kind], train, val, fit_settings(cfg, kind), progress=progress)
        save_synth(models[kind], out_dir / f"{kind}.pt")
    save_synth(models[cfg.kind], out_dir / "S.pt")
    return baseline, models, histories


def fit_summary(histories: dict[str, dict], kinds) -> list[str]:
    return [f"{kind}: {histories[kind]['config']['steps']} steps in {histories[kind]['fit_seconds']:.1f} s, "
            f"final train L1 {histories[kind]['train_loss'][-1]:.3f}, val L1 {histories[kind]['val_loss'][-1]:.3f}"
            for kind in kinds]


def fit_metrics(histories: dict[str, dict], render_seconds: float) -> dict:
    fit_seconds = {k: h["fit_seconds"] for k, h in histories.items()}
    return {"fit_seconds": fit_seconds, "fit_seconds_total_with_render": render_seconds + sum(fit_seconds.values())}


# ---------------------------------------------------------------- judging

def evaluation_pairs(cfg: SynthStageConfig, feat: FeatureConfig, val: SynthPairs,
                     root: str | Path = ".") -> tuple[SynthPairs, str]:
    """(pairs, eval_set): the evaluation pool's motion re-rendered cleanly, or -- only while developing without
    the data stages (the DVC stage depends on data/motion/T) -- the held-out random excerpts."""
    if pool_available(cfg.eval_pool, root):
        return load_pool_pairs(cfg.eval_pool, cfg.piano_list, feat, cfg.workers, cfg.eval_limit, root=root), cfg.eval_pool
    print(f"WARNING: pool {cfg.eval_pool} not found -- evaluating on held-out random excerpts instead")
    return val, "random-val"


def evaluate_all(every: dict[str, SynthBase], test: SynthPairs, val: SynthPairs) -> dict:
    """Mean spectral metrics of every synthesizer: on test as the average piano and with the known piano, and
    on the held-out random excerpts with the known piano."""
    return {
        "test": {name: summarize(evaluate_synth(m, test)) for name, m in every.items()},
        "test_known_piano": {f"{name} (known piano)": summarize(evaluate_synth(m, test, use_piano=True))
                             for name, m in every.items()},
        "random_val_known_piano": {name: summarize(evaluate_synth(m, val, use_piano=True)) for name, m in every.items()},
    }


def heldout_metrics(cfg: SynthStageConfig, feat: FeatureConfig, every: dict[str, SynthBase], eval_set: str,
                    root: str | Path = ".") -> dict | None:
    """Every synthesizer (average piano) on the evaluation pool re-rendered by the held-out piano; None without
    a held-out piano or an evaluation pool."""
    heldout = cfg.heldout_piano
    if not heldout or eval_set != cfg.eval_pool:
        return None
    pairs = load_pool_pairs(cfg.eval_pool, cfg.piano_list, feat, cfg.workers, cfg.eval_limit,
                            piano_override=(heldout[0], int(heldout[1])), root=root)
    return {name: summarize(evaluate_synth(m, pairs)) for name, m in every.items()}


def gradient_checks(cfg: SynthStageConfig, models: dict[str, SynthBase]) -> dict:
    return {kind: gradient_check(m, frames=cfg.grad_check_frames, seed=cfg.seed) for kind, m in models.items()}


def speeds(cfg: SynthStageConfig, models: dict[str, SynthBase]) -> dict:
    return {kind: measure_speed(m, batch=cfg.speed_batch, seconds=SPEED_SECONDS) for kind, m in models.items()}


def median_excerpt(model: SynthBase, pairs: SynthPairs) -> int:
    """Index of the excerpt at the median log-mel L1 of model (average piano)."""
    rows = evaluate_synth(model, pairs)
    order = np.argsort([r["logmel_l1"] for r in rows])
    return int(order[len(order) // 2])


def spectrogram_panels(cfg: SynthStageConfig, every: dict[str, SynthBase], pairs: SynthPairs,
                       i: int) -> dict[str, np.ndarray]:
    """Excerpt i's motion, its clean FluidSynth log-mel, every synthesizer's with the excerpt's piano, and the
    downstream kind's as the average piano."""
    o, _, s, _, y = pairs.item(i)
    panels = {"motion": motion_image(o[0], s[0]), "FluidSynth (clean)": y[0].numpy()}
    panels |= {f"S {name} (its piano)": predict_item(m, pairs, i, use_piano=True) for name, m in every.items()}
    panels[f"S {cfg.kind} (average piano)"] = predict_item(every[cfg.kind], pairs, i)
    return panels


def headline(metrics: dict) -> dict:
    """The stage's headline metric (`dvc metrics show`): S_l1, the mean log-mel L1 of S (the kind the mapping
    uses) on the evaluation pool's recordings, as the average piano -- what the mapping methods train through."""
    return {"S_l1": metrics["test"][metrics["kind"]]["logmel_l1"]}


def write_stage_metrics(metrics: dict, root: str | Path = ".") -> dict:
    """reports/metrics/synth.json (everything) and reports/headline/synth.json; -> the headline."""
    write_json(metrics, Path(root) / METRICS_FILE)
    return write_headline(headline(metrics), Path(root) / HEADLINE_FILE)


# ---------------------------------------------------------------- everything, without a notebook

def run_stage(synth: dict, features: dict, root: str | Path = ".", progress: bool = False) -> dict:
    """The notebook's steps in its order, without displays; writes the stage's files under root, returns metrics."""
    root = Path(root)
    cfg = stage_config(synth)
    feat = FeatureConfig.from_params(features)
    metrics = setup(cfg, root)
    train, val, metrics["render_seconds"] = render_random_pairs(cfg, feat)
    baseline, models, histories = fit_all(cfg, feat, train, val, root / SYNTH_DIR, progress=progress)
    metrics |= fit_metrics(histories, metrics["render_seconds"])
    close(plot_fit_curves(histories, root / FIT_CURVES_PLOT))
    every = {"baseline": baseline, **models}
    test, metrics["eval_set"] = evaluation_pairs(cfg, feat, val, root)
    metrics |= evaluate_all(every, test, val)
    heldout = heldout_metrics(cfg, feat, every, metrics["eval_set"], root)
    if heldout is not None:
        metrics["heldout_piano"] = heldout
    metrics["gradient_check"] = gradient_checks(cfg, models)
    metrics["speed"] = speeds(cfg, models)
    pick = median_excerpt(models[cfg.kind], test)
    panels = spectrogram_panels(cfg, every, test, pick)
    close(plot_spectrograms(panels, root / SPECTROGRAMS_PLOT, title=f"{test.ids[pick]}"))
    write_stage_metrics(metrics, root)
    return metrics


__all__ = [
    "SynthStageConfig", "stage_config", "fit_settings", "kind_sections", "setup", "render_random_pairs",
    "render_summary", "excerpt_panels", "fit_all", "fit_summary", "fit_metrics", "evaluation_pairs", "evaluate_all",
    "heldout_metrics", "gradient_checks", "speeds", "median_excerpt", "spectrogram_panels", "headline",
    "write_stage_metrics", "run_stage", "SYNTH_DIR", "METRICS_FILE", "HEADLINE_FILE", "FIT_CURVES_PLOT",
    "SPECTROGRAMS_PLOT",
]
