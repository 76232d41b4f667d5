"""lmm's configuration (mapping.lmm: one switch per term, the weights and sizes) and the state its phases share
(methods.lmm: setup fills it, the phases extend it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.lm import oracle
from lmm_utils.methods.alignment import Synth
from lmm_utils.methods.augment import Augmenter
from lmm_utils.methods.base import MethodConfig
from lmm_utils.methods.cycle import CycleConfig
from lmm_utils.methods.lm_features import AudioLMFeatures
from lmm_utils.methods.steps import Crops
from lmm_utils.methods.wrappers import GModel, HModel
from lmm_utils.models.performer import ScoreBatch

TERMS = ("pairs", "recon", "lmA", "lmV", "lmA_prior", "lmM", "selftrain", "density", "certainty")
LMM_SOURCES = ("pretrained", "run")


@dataclass(frozen=True)
class LMMConfig:
    pairs: bool = True
    recon: bool = True
    lmA: bool = False  # LM^A's features in h: off, as in params.yaml (they cost h at K = 0: README "lmm at K = 0")
    lmV: bool = True
    lmA_prior: bool = True
    lmM: bool = True
    selftrain: bool = True
    density: bool = False  # h's note density on U_A pulled to the generic performer's on U_V (losses.density_loss)
    certainty: bool = True  # h's own certainty about a transcription as a third label-cleaning criterion (params.yaml)
    pairs_weight: float = 1.0
    recon_weight: float = 1.0
    prior_weight: float = 0.1
    selftrain_weight: float = 1.0
    prior_tau: float = 1.0  # temperature of the soft tokens (x code dimension)
    prior_mode: str = "typical"  # typical: (NLL - NLL of real U_A audio)^2; likelihood: NLL itself
    prior_frames: int = 128  # frames of S(g(v)) scored by LM^A (from the start; <= 2 * block_size)
    prior_batch: int = 2
    unpaired_batch: int = 4  # U_A crops per h step (recon, density, self-training)
    max_unpaired: int | None = 64  # U_A recordings and U_V scores read (None: all)
    warm_fraction: float = 0.5  # phase A's share of the steps (all of them without selftrain)
    keep_fraction: float = 0.5  # U_A transcriptions kept as pseudo-labels
    density_weight: float = 1.0  # [density]: the squared log-ratio's weight beside recon (~0.1-0.3 per step)
    candidates: int = 8  # variants of g's performance scored by LM^M (the first = unchanged)
    tempo_jitter: float = 0.15
    legato: tuple[float, float] = (0.5, 1.0)
    velocity_shift: float = 15.0
    rank: int = 16  # LM adapters' bottleneck
    g_frames: int = 200
    onset_sigma: float = 2.0
    edge: float = 2.0
    deviation_weight: float = 0.01
    scales: tuple[int, ...] = (1, 4, 16)
    recon_eq: int = 0  # the recording's EQ the reconstruction forgives: 0 gain only, 1 + tilt, 2 + bend (recon_loss)
    timing_grad: bool = False  # audio-level terms (recon, LM^A prior) may move g's onsets (losses.render_g)
    g_warp: bool = True  # g's reconstruction against the DTW-re-timed recording (cycle.warp_to)
    lmM_source: str = "pretrained"  # pretrained: LM^M mapped from LM^V (stage pretrain_M); run: learned here
    lmM_tokens: dict = field(default_factory=lambda: dict(oracle.DEFAULT_TOKENS))
    lmM_model: dict = field(default_factory=lambda: dict(oracle.DEFAULT_MODEL))
    lmM_train: dict = field(default_factory=lambda: {"steps": 100, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4,
                                                     "warmup": 10, "weight_decay": 0.0, "precision": "fp32"})

    def __post_init__(self):
        if self.lmM_source not in LMM_SOURCES:
            raise ValueError(f"mapping.lmm.lmM_source must be one of {LMM_SOURCES}, not {self.lmM_source!r}")

    def on(self, term: str, off: tuple[str, ...]) -> bool:
        if term not in TERMS:
            raise ValueError(f"unknown lmm term {term!r}; terms: {TERMS}")
        return bool(getattr(self, term)) and term not in off


# --- The state the phases share ----------------------------------------------------------------------------

@dataclass(eq=False)
class LMMState:
    """Everything lmm's phases share: `setup` fills the fields without defaults, `read_unpaired`,
    `set_prior_target` and `build_batches` the next block, the phases the last."""
    cfg: MethodConfig
    lc: LMMConfig
    on: dict[str, bool]  # term -> in use (the config's switch and the ablation)
    dev: torch.device
    feat: FeatureConfig
    synth: Synth
    lmA: AudioLMFeatures | None  # LM^A, for h's features and / or the prior on S(g(v))
    h: HModel
    g: GModel
    cc: CycleConfig  # g's reconstruction (cycle.g_recon_step) with lmm's settings
    pairs: list[tuple[ScoreExcerpt, np.ndarray]]  # the K pairs: (score, recording log-mel)
    pseudo: list[Performance]  # their pseudo-motion
    info: dict  # what the run reports (MethodResult.info)
    params: dict = field(default_factory=dict)  # the method's params (mapping section): where the frozen LMs are
    root: str = "."  # the project root those folders are relative to
    # -- unpaired data and batches (setup) ----------------------------------------------------------------
    ua: list[tuple[str, np.ndarray]] = field(default_factory=list)  # U_A recordings (id, log-mel)
    ua_inputs: list[np.ndarray] = field(default_factory=list)  # h's inputs for them
    uv: list[ScoreExcerpt] = field(default_factory=list)  # U_V scores with notes
    prior_target: float | None = None  # typical per-token NLL of real audio under LM^A (prior_mode typical)
    density_target: tuple[float, float] | None = None  # [density] key-down and onset rate of U_V, generically played
    pair_crops: Crops | None = None  # h: the pairs with their pseudo-motion [pairs]
    ua_crops: Crops | None = None  # h: U_A crops to reconstruct [recon] and to hold to the rates [density]
    g_pairs: ScoreBatch | None = None  # g: the pairs' scores, encoded
    g_pair_targets: dict | None = None  # g: their pseudo-motion as per-note targets
    g_rec: torch.Tensor | None = None  # g: the pairs' recordings (cycle.pair_recordings)
    g_uv: ScoreBatch | None = None  # g: the U_V scores, encoded
    # -- the optimizers (phase A, continued in C) and phase B's self-training labels -------------------------
    opt_h: torch.optim.Optimizer | None = None
    opt_g: torch.optim.Optimizer | None = None
    self_crops: Crops | None = None  # h: U_A crops with h's own transcriptions that LM^M kept
    g_targets: dict = field(default_factory=dict)  # g: per-note targets LM^M picked for the U_V scores
    augmenter: Augmenter | None = None  # re-records h's labelled crops (pairs, self-training; not recon): augment.py

    @property
    def use_pairs(self) -> bool:
        return self.on["pairs"] and bool(self.pairs)

    @property
    def n_warm(self) -> int:
        """Phase A's steps (all of them without self-training)."""
        return int(round(self.cfg.steps * self.lc.warm_fraction)) if self.on["selftrain"] else self.cfg.steps


def term_switches(lc: LMMConfig, off: tuple[str, ...]) -> dict[str, bool]:
    """Each term on or off by its own switch: lmA (LM^A's features in h) and lmA_prior (LM^A's prior on g) are
    separate, so that LM^A can leave h (where its features hurt: README "lmm at K = 0") and still judge g."""
    return {t: lc.on(t, off) for t in TERMS}
