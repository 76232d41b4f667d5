"""What every mapping method shares: the step budget (MethodConfig), the one result type (MethodResult), the
signature of a method's `run` (MethodRun), ablation names (Switches, check_terms), configs from the params'
`mapping` section, and the K pairs with their pseudo-motion.

Every method module exposes

    run(data: TrainingData, synth: Synth, params: dict | None = None, feat: FeatureConfig = FeatureConfig(),
        progress: bool = False, off: tuple[str, ...] = ()) -> MethodResult

where `params` is the params.yaml `mapping` section (as mapping.run.run_params gives it) and `off` the terms an
ablation '<method>-no_<term>' switches off.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol, TypeVar

import numpy as np

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.motion import Performance
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.pools import TrainingData
from lmm_utils.methods.alignment import AlignConfig, Synth, align_pair
from lmm_utils.methods.wrappers import GModel, HModel
from lmm_utils.training.loop import TrainConfig

SECTION = "mapping"  # the params.yaml section a method's `params` is (named in the messages of refused keys)

C = TypeVar("C")


def params_config(cls: type[C], params: dict, key: str) -> C:
    """The config dataclass `cls` from params[key] (core.params.dataclass_from: unknown keys are refused, naming
    `mapping.<key>.<name>` and the closest known field)."""
    return dataclass_from(cls, params.get(key), f"{SECTION}.{key}")


@dataclass(frozen=True)
class MethodConfig:
    """What every method shares, so that comparisons are at equal budget (params `mapping.method`)."""
    steps: int = 600  # optimizer steps for h, and again for g (the same for every method and K)
    batch_size: int = 8
    crop_frames: int = 100  # h trains on 2-s crops: ~5 steps/s on one CPU core
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.0  # tiny models, few steps: decay only slows them down
    seed: int = 0
    threads: int = 1
    device: str = "cpu"  # "auto": CUDA when present (the mapping runner's default), else CPU

    def train_config(self, **overrides) -> TrainConfig:
        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr, min_lr=self.min_lr, warmup=self.warmup,
                  weight_decay=self.weight_decay, seed=self.seed, eval_every=self.steps, log_every=max(1, self.steps // 20),
                  precision="fp32", device=self.device)
        kw.update(overrides)
        return TrainConfig(**kw)


def method_config(params: dict) -> MethodConfig:
    return params_config(MethodConfig, params, "method")


def align_config(params: dict) -> AlignConfig:
    return params_config(AlignConfig, params, "align")


@dataclass
class MethodResult:
    """What every method returns."""
    h: HModel  # A -> M
    g: GModel  # V -> M
    pseudo: dict[str, Performance] = field(default_factory=dict)  # the K pairs' pseudo-motion, by pair id
    info: dict = field(default_factory=dict)  # "terms" switched on; losses or training histories; diagnostics

    def as_dict(self) -> dict:
        """{"h", "g", "pseudo", "info"}: the same objects, not copies (dataclasses.asdict would deep-copy h and g)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class MethodRun(Protocol):
    """The signature of every method module's `run` (the registry in methods/__init__.py holds these)."""

    def __call__(self, data: TrainingData, synth: Synth, params: dict | None = None,
                 feat: FeatureConfig = FeatureConfig(), progress: bool = False,
                 off: tuple[str, ...] = ()) -> MethodResult: ...


@dataclass(frozen=True)
class Switches:
    """Parse 'lmm-no_lmA-no_recon' into the base method and the switched-off terms."""
    base: str
    off: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str) -> Switches:
        base, *rest = name.split("-")
        off = []
        for r in rest:
            if not r.startswith("no_") or len(r) <= 3:
                raise ValueError(f"method {name!r}: ablations are written '<method>-no_<term>', got {r!r}")
            off.append(r[3:])
        return cls(base, tuple(off))


def check_terms(method: str, off: tuple[str, ...], terms: tuple[str, ...]) -> None:
    """Refuse an ablation of a term the method does not have."""
    for t in off:
        if t not in terms:
            raise ValueError(f"{method}-no_{t}: unknown term; terms of {method}: {', '.join(terms) or 'none'}")


# --- the K pairs ------------------------------------------------------------------------------------------

def load_pairs(data: TrainingData, feat: FeatureConfig = FeatureConfig()) -> list[tuple[ScoreExcerpt, np.ndarray]]:
    """This run's K pairs (data must be restricted to them): (score, recording log-mel)."""
    pairs = []
    for score in data.scores("P"):
        audio, sr = data.audio("P", score.id)
        if sr != feat.sample_rate:
            raise ValueError(f"{score.id}: audio at {sr} Hz, features expect {feat.sample_rate} Hz")
        pairs.append((score, log_mel(audio, feat)))
    return pairs


def pseudo_motion(pairs: list[tuple[ScoreExcerpt, np.ndarray]], synth: Synth, cfg: AlignConfig = AlignConfig(),
                  feat: FeatureConfig = FeatureConfig()) -> list[Performance]:
    """The pairs' pseudo-motion (alignment.align_pair): the only motion-like supervision a method gets."""
    return [align_pair(score, logmel, synth, cfg, feat) for score, logmel in pairs]


def by_pair(pairs: list[tuple[ScoreExcerpt, np.ndarray]], pseudo: list[Performance]) -> dict[str, Performance]:
    """{pair id: pseudo-motion} (MethodResult.pseudo)."""
    return dict(zip([s.id for s, _ in pairs], pseudo))


__all__ = ["SECTION", "MethodConfig", "MethodResult", "MethodRun", "Switches", "align_config", "by_pair",
           "check_terms", "load_pairs", "method_config", "params_config", "pseudo_motion"]
