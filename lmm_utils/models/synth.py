"""S: M -> A, the differentiable piano. A motion roll (onset, velocity, sustain per key and frame, soft
values in [0, 1]) -> log-mel frames at the hop of features.py, so S(m) and a recording compare directly.

Both kinds share one skeleton (models/synth_base.py: envelopes x templates -> mel power -> window smear -> EQ ->
log(power + floor)) that works in the mel-*power* domain, which is what makes them fast. The kinds differ in
what produces the templates, excitations and decays:

* `additive` (models/synth_additive.py) -- an interpretable DDSP-style piano with a handful of physical
  parameters (inharmonic partials, velocity-dependent level and brightness, two decay stages, release,
  re-strike damping, a hammer knock) and per-key voicing.
* `neural` (models/synth_neural.py) -- the same superposition, but every piece is learned freely: per-key
  templates, a key-embedding MLP for the velocity response, a causal conv over (onset, sustain) for the decays.

Pianos: S is fitted on several benchmark pianos at once. What differs between them (the additive kind's
voicing, knock level and EQ; the neural kind's templates, levels, decays and EQ) has one row per piano;
`piano` ((B,) long, optional) picks a row, and None or -1 picks the *average piano*, the mean of the rows
-- what downstream stages use when they do not know the instrument.

This module is the one importers use: it builds, saves and loads S, and re-exports the pieces (SynthBase,
linear_scan, harmonic_log_templates, the kinds' configs and classes).
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, fields
from pathlib import Path

import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.params import dataclass_from, unknown_key_error
from lmm_utils.models.synth_additive import AdditiveConfig, AdditiveSynth
from lmm_utils.models.synth_base import (
    SynthBase,
    harmonic_log_templates,
    key_f0,
    key_pitch,
    linear_scan,
    sinusoid_mel_table,
    window_kernel,
)
from lmm_utils.models.synth_neural import NeuralConfig, NeuralSynth

KINDS = ("additive", "neural")
_CLASSES = {"additive": (AdditiveConfig, AdditiveSynth), "neural": (NeuralConfig, NeuralSynth)}


def _classes(kind: str) -> tuple[type, type[SynthBase]]:
    if kind not in _CLASSES:
        raise ValueError(f"synth kind must be one of {KINDS}, not {kind!r}")
    return _CLASSES[kind]


def synth_config(kind: str, section: dict | None = None, where: str | None = None):
    """The kind's config from a mapping of its fields (params.yaml synth.<kind> without its fitting settings,
    or a checkpoint's saved config); an unknown key is refused, naming the closest field."""
    return dataclass_from(_classes(kind)[0], section, where or f"synth.{kind}")


def make_synth(kind: str, cfg=None, feat: FeatureConfig | None = None) -> SynthBase:
    cfg = cfg if cfg is not None else synth_config(kind)
    return _classes(kind)[1](cfg, feat)


def kind_config(section: dict, kind: str, fit_keys: Collection[str] = ()):
    """params.yaml `synth` section -> the config of `kind`, from its sub-section (section['additive'] /
    section['neural']), which holds the kind's config and its fitting settings: `fit_keys` names the latter
    (synth.fit.FIT_KEYS; they are left to the fitting code), and any other key that is not a config field is
    refused, naming the closest. `n_pianos` follows the number of fitting pianos."""
    where = f"synth.{kind}"
    names = {f.name for f in fields(_classes(kind)[0])}
    sub = dict(section.get(kind) or {})
    for key in sub:
        if key not in names and key not in fit_keys:
            raise unknown_key_error(key, names | set(fit_keys), where)
    sub = {k: v for k, v in sub.items() if k in names}
    sub.setdefault("n_pianos", len(section.get("pianos") or [None]))
    return synth_config(kind, sub, where)


def build_synth(section: dict, feat: FeatureConfig | None = None, kind: str | None = None,
                fit_keys: Collection[str] = ()) -> SynthBase:
    """params.yaml `synth` section -> an (unfitted) synthesizer of `kind` (default: section['kind']), configured
    by kind_config."""
    kind = kind or section["kind"]
    return make_synth(kind, kind_config(section, kind, fit_keys), feat)


def save_synth(model: SynthBase, path: str | Path, extra: dict | None = None) -> None:
    """Checkpoint = kind + config + feature config + weights (+ anything in extra, e.g. fit metrics)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"kind": model.kind, "config": asdict(model.cfg), "features": asdict(model.feat),
                "state_dict": model.state_dict(), "extra": extra or {}}, tmp)
    tmp.replace(path)


def load_synth(path: str | Path, map_location: str | torch.device = "cpu") -> SynthBase:
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    cfg = synth_config(ckpt["kind"], ckpt["config"], f"{path} config")
    model = make_synth(ckpt["kind"], cfg, FeatureConfig(**ckpt["features"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


__all__ = [
    "KINDS", "AdditiveConfig", "AdditiveSynth", "NeuralConfig", "NeuralSynth", "SynthBase",
    "linear_scan", "window_kernel", "sinusoid_mel_table", "harmonic_log_templates", "key_pitch", "key_f0",
    "synth_config", "kind_config", "make_synth", "build_synth", "save_synth", "load_synth",
]
