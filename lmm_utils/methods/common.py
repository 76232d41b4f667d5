"""What the mapping methods share: the h / g model wrappers (with optional frozen-LM feature adapters),
frozen LM feature extraction, training-data samplers, the reconstruction loss through S, and h / g
checkpoints.

h (A -> M) is always the project's Transcriber (models/transcriber.py) and g (V -> M) the Performer
(models/performer.py). Methods that use a pretrained LM add a *small adapter* on top of the same
backbone, zero-initialised so that the untrained adapter changes nothing:

  LMTranscriber  input = log-mel rows + LM^A hidden features (upsampled to the frame rate) stacked as
                 extra rows; logits = Transcriber(log-mel) + adapter(LM^A features).
                 backbone=False drops the CNN: logits = head(LM^A features) alone (pure surface).
  LMPerformer    note features = score features + LM^V hidden feature at each note's pitch token;
                 the Performer's input layer reads both (the LM part through a zero-initialised map).

The LMs themselves are frozen and live *outside* the nn.Modules (in `AudioLMFeatures` / `ScoreLMFeatures`),
so checkpoints hold only what the method trained and name the LM folder they need.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import atomic_path
from lmm_utils.models.performer import (N_NOTE_FEATURES, Performer, PerformerConfig, ScoreBatch, encode_scores,
                                note_targets, performer_loss, soft_roll)
from lmm_utils.models.transcriber import DecodeConfig, Transcriber, TranscriberConfig, decode
from lmm_utils.core.motion import N_KEYS, Performance, to_roll
from lmm_utils.core.score import ScoreExcerpt


def resolve_device(name: str = "auto") -> torch.device:
    from lmm_utils.training.distributed import default_device  # auto -> CUDA if present; LMM_DETERMINISTIC applies there

    return default_device(name)


def module_device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


# ---------------------------------------------------------------------------------------------------------
# Frozen LM features
# ---------------------------------------------------------------------------------------------------------

class AudioLMFeatures:
    """LM^A (a LanguageModel over AudioTokenizer codes) as a frozen feature extractor on log-mel.

    Token i covers frames [f*i, f*i + f); its feature is the LM's final hidden state at that token (which
    has read it and everything before), repeated over its frames. Not an nn.Module on purpose.
    """

    def __init__(self, lm, path: str | None = None):
        self.lm, self.path = lm, path
        self.dim = lm.model.cfg.n_embd
        self.fpt = lm.tokenizer.frames_per_token

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        """(n_mels, T) -> (dim, T) float32."""
        ids = self.lm.tokenizer.encode(np.asarray(logmel, np.float32))
        h = self.lm.hidden(ids)[1:-1].float().cpu().numpy()  # drop <bos>, <eos>: one row per code
        rows = np.repeat(h, self.fpt, axis=0)[: logmel.shape[1]]
        return np.ascontiguousarray(rows.T, dtype=np.float32)

    # -- a differentiable prior on log-mel (soft tokens) -------------------------------------------------
    def soft_tokens(self, logmel: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """(B, n_mels, T) log-mel -> (B, T // f, V) soft token distributions (softmax over minus the squared
        distance to each code in the tokenizer's standardised space, / tau * dim). Specials get 0."""
        tok = self.lm.tokenizer
        b, m, t = logmel.shape
        n = t // self.fpt
        x = logmel[..., : n * self.fpt].permute(0, 2, 1).reshape(b, n, self.fpt * m)  # frame-major stacking
        mean, std = tok.mean.to(logmel), tok.std.to(logmel)
        code = tok.codebook.to(logmel)
        z = (x - mean) / std
        d = (z * z).sum(-1, keepdim=True) - 2 * z @ code.T + (code * code).sum(-1)
        p = torch.softmax(-d / (tau * z.shape[-1]), dim=-1)
        return F.pad(p, (3, 0))  # 3 specials first

    def prior_nll(self, logmel: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """Mean cross-entropy (nats/token) of the soft token sequence under the frozen LM: how much the
        rendered audio looks like the audio LM^A was trained on. Differentiable in logmel."""
        soft = self.soft_tokens(logmel, tau)
        block = self.lm.model.cfg.block_size
        soft = soft[:, : block - 1]
        bos = F.one_hot(torch.full(soft.shape[:1], 1, device=soft.device), soft.shape[-1]).to(soft)[:, None]
        seq = torch.cat([bos, soft], dim=1)
        logits, _ = self.lm.model(seq[:, :-1])
        logp = F.log_softmax(logits.float(), dim=-1)
        return -(seq[:, 1:] * logp).sum(-1).mean()


class ScoreLMFeatures:
    """LM^V (a LanguageModel over ScoreTokenizer tokens) as a frozen per-note feature extractor.

    Each note's feature is the hidden state at its first duration token (the LM has then read the note's
    pitch and position). ScoreTokenizer writes notes in the order (onset tick, voice, -pitch, duration),
    which maps `p:` tokens back to score notes. A score the vocabulary cannot hold gets zero features.
    """

    def __init__(self, lm, path: str | None = None):
        self.lm, self.path = lm, path
        self.dim = lm.model.cfg.n_embd

    def __call__(self, score: ScoreExcerpt) -> np.ndarray:
        """-> (n_notes, dim) float32, rows in score order."""
        tok = self.lm.tokenizer
        out = np.zeros((len(score.notes), self.dim), np.float32)
        if not score.notes:
            return out
        try:
            ids = tok.encode(score)
        except ValueError:
            return out
        names = tok.names(ids)
        pos = [i for i, n in enumerate(names) if n.startswith("p:")]
        if len(pos) != len(score.notes):
            return out
        order = sorted(range(len(score.notes)), key=lambda j: (
            tok._tick(score.notes[j].onset), score.notes[j].voice, -score.notes[j].pitch, score.notes[j].duration))
        h = self.lm.hidden(ids).float().cpu().numpy()
        at = np.minimum(np.array(pos) + 1, len(ids) - 1)
        out[order] = h[at]
        return out


def load_lm_features(kind: str, folder: str | Path, device: str | torch.device = "cpu", root: str | Path = "."):
    """Frozen LM^A (kind "A") or LM^V ("V") from root/folder; `folder` (relative to the project root) is what
    checkpoints record."""
    from lmm_utils.lm.model import LanguageModel

    lm = LanguageModel.load(Path(root) / folder, device=str(device))
    lm.precision = "fp32"
    for p in lm.model.parameters():
        p.requires_grad_(False)
    out = (AudioLMFeatures if kind == "A" else ScoreLMFeatures)(lm, str(folder))
    out.root = str(root)
    return out


# ---------------------------------------------------------------------------------------------------------
# h: the transcriber, with an optional LM^A adapter
# ---------------------------------------------------------------------------------------------------------

class LMTranscriber(nn.Module):
    """Transcriber + adapter(LM^A features). Input: (B, n_mels + dim, T) = log-mel rows, then LM rows."""

    def __init__(self, tcfg: TranscriberConfig, feat: FeatureConfig, lm_dim: int, rank: int = 16,
                 backbone: bool = True):
        super().__init__()
        self.tcfg, self.feat, self.lm_dim, self.rank, self.backbone = tcfg, feat, lm_dim, rank, backbone
        self.base = Transcriber(tcfg, feat) if backbone else None
        self.norm = nn.LayerNorm(lm_dim)
        self.down = nn.Conv1d(lm_dim, rank, 1)
        self.up = nn.Conv1d(rank, 3 * N_KEYS, 3, padding=1)
        if backbone:  # untrained adapter = the plain transcriber
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
        else:  # a pure head starts by predicting (almost) nothing
            with torch.no_grad():
                self.up.bias[: 2 * N_KEYS].fill_(-4.0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.feat.n_mels
        mel, f = x[:, :m], x[:, m:]
        f = self.norm(f.transpose(1, 2)).transpose(1, 2)
        delta = self.up(F.gelu(self.down(f))).reshape(x.shape[0], 3, N_KEYS, -1)
        out = {k: delta[:, i] for i, k in enumerate(("onset", "frame", "velocity"))}
        if self.base is not None:
            base = self.base(mel)
            out = {k: base[k] + out[k] for k in out}
        return out


class HModel:
    """h with its input preparation: `inputs(logmel)` -> the (C, T) array the network reads."""

    def __init__(self, net: nn.Module, lm: AudioLMFeatures | None = None):
        self.net, self.lm = net, lm

    @property
    def feat(self) -> FeatureConfig:
        return self.net.feat

    def inputs(self, logmel: np.ndarray) -> np.ndarray:
        logmel = np.asarray(logmel, np.float32)
        if self.lm is None:
            return logmel
        return np.concatenate([logmel, self.lm(logmel)], axis=0)

    @torch.no_grad()
    def logits_of_inputs(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        """(C, T) prepared input (see `inputs`) -> (88, T) logits each, on the CPU (eval mode)."""
        was = self.net.training
        self.net.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(module_device(self.net))
        out = {k: v[0].float().cpu() for k, v in self.net(xt).items()}
        self.net.train(was)
        return out

    def logits(self, logmel: np.ndarray) -> dict[str, torch.Tensor]:
        return self.logits_of_inputs(self.inputs(logmel))

    def transcribe(self, logmel: np.ndarray, cfg: DecodeConfig = DecodeConfig()) -> Performance:
        return fast_decode(self.logits(logmel), self.feat.fps, cfg)

    def transcribe_inputs(self, x: np.ndarray, cfg: DecodeConfig = DecodeConfig()) -> Performance:
        return fast_decode(self.logits_of_inputs(x), self.feat.fps, cfg)


def fast_decode(out: dict[str, torch.Tensor], fps: float, cfg: DecodeConfig = DecodeConfig()) -> Performance:
    """models/transcriber.decode, same result: keys whose onset probability never reaches the threshold
    cannot hold a note, so only the others go through motion.from_roll's per-frame Python loop (an
    untrained or sparse h decodes ~20x faster)."""
    from lmm_utils.core.motion import PIANO_LOW, PerformedNote, from_roll

    p = {k: torch.sigmoid(v.reshape(N_KEYS, -1)).float().numpy() for k, v in out.items()}
    keys = np.nonzero((p["onset"] >= cfg.onset_threshold).any(axis=1))[0]
    notes = []
    for k in keys:
        perf = from_roll(p["onset"][k:k + 1], p["frame"][k:k + 1], fps, velocity=p["velocity"][k:k + 1],
                         onset_threshold=cfg.onset_threshold, frame_threshold=cfg.frame_threshold,
                         min_frames=cfg.min_frames)
        notes += [PerformedNote(n.pitch + int(k), n.onset, n.offset, n.velocity) for n in perf.notes]
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return Performance(notes=notes)


def make_h(tcfg: TranscriberConfig, feat: FeatureConfig, lm: AudioLMFeatures | None = None,
           adapter: dict | None = None) -> HModel:
    if lm is None:
        return HModel(Transcriber(tcfg, feat))
    adapter = adapter or {}
    net = LMTranscriber(tcfg, feat, lm.dim, int(adapter.get("rank", 16)), bool(adapter.get("backbone", True)))
    return HModel(net, lm)


# ---------------------------------------------------------------------------------------------------------
# g: the performer, with optional LM^V note features
# ---------------------------------------------------------------------------------------------------------

class _SplitInput(nn.Module):
    """The Performer's input layer over [score features | LM features]: the LM part enters through a
    zero-initialised linear map, so an untrained LMPerformer plays exactly like an untrained Performer."""

    def __init__(self, base: nn.Sequential, lm_dim: int, d_model: int):
        super().__init__()
        self.base_lin = base[0]
        self.act = base[1]
        self.norm = nn.LayerNorm(lm_dim)
        self.lm_lin = nn.Linear(lm_dim, d_model)
        nn.init.zeros_(self.lm_lin.weight)
        nn.init.zeros_(self.lm_lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[..., :N_NOTE_FEATURES], x[..., N_NOTE_FEATURES:]
        return self.act(self.base_lin(a) + self.lm_lin(self.norm(b)))


class GModel:
    """g with its input preparation: `encode(scores)` -> ScoreBatch (LM^V features appended to feats)."""

    def __init__(self, net: Performer, lm: ScoreLMFeatures | None = None):
        self.net, self.lm = net, lm
        self._cache: dict[str, np.ndarray] = {}

    def lm_rows(self, score: ScoreExcerpt) -> np.ndarray:
        if score.id not in self._cache:
            self._cache[score.id] = self.lm(score)
        return self._cache[score.id]

    def encode(self, scores: list[ScoreExcerpt]) -> ScoreBatch:
        batch = encode_scores(scores, self.net.cfg.plain)
        if self.lm is None:
            return batch
        extra = torch.zeros(*batch.feats.shape[:2], self.lm.dim)
        for i, s in enumerate(scores):
            extra[i, : len(s.notes)] = torch.from_numpy(self.lm_rows(s))
        batch.feats = torch.cat([batch.feats, extra], dim=-1)
        return batch

    @torch.no_grad()
    def perform(self, scores: list[ScoreExcerpt], batch_size: int = 64) -> list[Performance]:
        from lmm_utils.models.performer import to_performances

        was = self.net.training
        self.net.eval()
        out = []
        dev = module_device(self.net)
        for i in range(0, len(scores), batch_size):
            chunk = scores[i:i + batch_size]
            b = self.encode(chunk)
            out += to_performances(self.net(b.to(dev)), b, self.net.cfg.plain.release_gap)
        self.net.train(was)
        return out


def make_g(pcfg: PerformerConfig, lm: ScoreLMFeatures | None = None) -> GModel:
    net = Performer(pcfg)
    if lm is not None:
        net.inp = _SplitInput(net.inp, lm.dim, pcfg.d_model)
    return GModel(net, lm)


# ---------------------------------------------------------------------------------------------------------
# Samplers (train.train's get_batch) and losses
# ---------------------------------------------------------------------------------------------------------

def _pad_to(x: np.ndarray, n: int, n_mels: int) -> np.ndarray:
    if x.shape[1] >= n:
        return x
    pad = np.repeat(x[:, -1:], n - x.shape[1], axis=1)
    pad[:n_mels] = x[:n_mels].min()  # log-mel rows: the item's silence; LM rows: the last feature
    return np.concatenate([x, pad], axis=1)


class Crops:
    """Random fixed-length crops of h-input items (C, T), with optional target rolls and item weights."""

    def __init__(self, inputs: list[np.ndarray], perfs: list[Performance] | None, crop: int, fps: float,
                 n_mels: int, weights: list[float] | None = None):
        assert inputs, "need at least one item"
        self.crop = crop
        self.x, self.y = [], []
        for i, x in enumerate(inputs):
            x = _pad_to(np.asarray(x, np.float32), crop, n_mels)
            self.x.append(torch.from_numpy(np.ascontiguousarray(x)))
            if perfs is not None:
                roll = to_roll(perfs[i], fps, x.shape[1])
                self.y.append(torch.from_numpy(np.stack([roll[k] for k in ("onset", "frame", "velocity")])))
        self.w = torch.tensor(weights if weights is not None else [1.0] * len(inputs), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.x)

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        xs, ys, ws = [], [], []
        for _ in range(n):
            i = int(torch.randint(len(self.x), (1,), generator=g))
            s = int(torch.randint(self.x[i].shape[1] - self.crop + 1, (1,), generator=g))
            xs.append(self.x[i][:, s:s + self.crop])
            if self.y:
                ys.append(self.y[i][:, :, s:s + self.crop])
            ws.append(self.w[i])
        out = (torch.stack(xs),)
        if self.y:
            out += (torch.stack(ys), torch.stack(ws))
        return out


def weighted_transcription_loss(out: dict[str, torch.Tensor], y: torch.Tensor, w: torch.Tensor | None = None,
                                onset_pos_weight: float = 20.0, onset_neighbor_label: float = 0.5) -> torch.Tensor:
    """models/transcriber.transcription_loss with a weight per item (confidence of a pseudo-label)."""
    on_t, fr_t, ve_t = y[:, 0], y[:, 1], y[:, 2]
    if w is None:
        w = torch.ones(y.shape[0], device=y.device)
    wb = w[:, None, None]
    soft_on = torch.maximum(on_t, onset_neighbor_label * F.max_pool1d(on_t, 3, stride=1, padding=1))
    pw = torch.tensor(onset_pos_weight, dtype=out["onset"].dtype, device=y.device)
    l_on = (F.binary_cross_entropy_with_logits(out["onset"], soft_on, pos_weight=pw, reduction="none") * wb).mean()
    l_fr = (F.binary_cross_entropy_with_logits(out["frame"], fr_t, reduction="none") * wb).mean()
    mask = on_t * wb
    l_vel = ((torch.sigmoid(out["velocity"]) - ve_t) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
    return (l_on + l_fr + l_vel) * (w.numel() / w.sum().clamp(min=1e-6))


def h_to_synth(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h's logits -> S's (onset, velocity, sustain) inputs, all soft probabilities."""
    on = torch.sigmoid(out["onset"])
    return on, torch.sigmoid(out["velocity"]) * on, torch.sigmoid(out["frame"])


def recon_loss(pred: torch.Tensor, target: torch.Tensor, dynamic_range: float = 18.42,
               scales: tuple[int, ...] = (1, 4, 16)) -> torch.Tensor:
    """Gain-invariant log-mel L1 between S's output and a recording, (B, n_mels, T) each.

    The recording's gain and EQ are unknown, so the prediction is shifted by the (detached) mean log-level
    difference first; both are floored 80 dB below the recording's peak (silence is silence). Compared at
    several time resolutions (average pooling), so that a note rendered a few frames off still gets a
    gradient toward the right place.
    """
    lo = (target.amax(dim=(-2, -1), keepdim=True) - dynamic_range).detach()
    t = torch.maximum(target, lo)
    shift = (t - pred).mean(dim=(-2, -1), keepdim=True).detach()
    p = torch.maximum(pred + shift, lo)
    losses = []
    for s in scales:
        if s > 1 and p.shape[-1] >= s:
            losses.append((F.avg_pool1d(p, s, s) - F.avg_pool1d(t, s, s)).abs().mean())
        elif s == 1:
            losses.append((p - t).abs().mean())
    return sum(losses) / len(losses) / dynamic_range


def g_loss_to_targets(g: GModel, batch: ScoreBatch, perfs: list[Performance], **kw) -> torch.Tensor:
    pred = g.net(batch)
    return performer_loss(pred, {k: v.to(batch.mask.device) for k, v in note_targets(perfs, batch).items()},
                          batch.mask, **kw)["loss"]


def render_g(g: GModel, batch: ScoreBatch, synth, n_frames: int, fps: float, onset_sigma: float = 2.0,
             edge: float = 2.0, timing_grad: bool = False) -> torch.Tensor:
    """S(g(v)): g's performance as a soft roll through S -> (B, n_mels, n_frames) log-mel, differentiable
    in g's parameters (wide soft edges so that gradients reach a few frames).

    timing_grad=False (default): no gradient reaches g's timing (onsets detached, tempo / asynchrony channels
    blocked), so an audio-level loss teaches relative loudness and articulation only. Frame-wise audio losses are poor judges of timing -- with them, g
    learns to play up to 2x slower or faster (the tempo bound), which lowers the loss without sounding right."""
    pred = g.net(batch)
    if not timing_grad:
        # No gradient into timing: onsets detached, and the head's tempo / asynchrony channels get none either
        # (a note's held length depends on its tempo, which would otherwise leak timing gradients back).
        raw = pred["deviation"]
        if raw.requires_grad:
            keep = torch.tensor([0.0, 0.0, 1.0, 1.0], device=raw.device, dtype=raw.dtype)
            raw.register_hook(lambda grad: grad * keep)
        on = pred["onset"].detach()
        pred = {**pred, "onset": on, "offset": on + (pred["offset"] - pred["onset"])}
    # The audio losses are gain-invariant (common.recon_loss shifts the level; LM^A's prior is matched to a
    # typical value), so they cannot set the excerpt's overall loudness: keep its mean velocity out of their
    # gradient (it stays where the dynamics marks and the other terms put it); they shape relative dynamics.
    m = batch.mask.to(pred["velocity"].dtype)
    mean = (pred["velocity"] * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
    pred = {**pred, "velocity": pred["velocity"] - mean + mean.detach()}
    roll = soft_roll(pred, batch, n_frames, fps, onset_sigma=onset_sigma, edge=edge)
    return synth(roll["onset"], roll["velocity"], roll["sustain"])


# ---------------------------------------------------------------------------------------------------------
# A tiny optimizer loop for methods whose step mixes several terms (the same schedule as train.train)
# ---------------------------------------------------------------------------------------------------------

def optimize(params: list[nn.Parameter], steps: int, loss_fn: Callable[[int, torch.Generator], torch.Tensor],
             cfg, log_every: int | None = None, start: int = 0, total: int | None = None,
             opt: torch.optim.Optimizer | None = None) -> tuple[list[float], torch.optim.Optimizer]:
    """`steps` AdamW steps of loss_fn(step, generator), lr warmup + cosine over `total` steps (train.lr_at).
    `start` continues a schedule (phased methods); returns (losses, optimizer)."""
    from lmm_utils.training.loop import TrainConfig, lr_at

    total = total or steps
    tc = TrainConfig(steps=total, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup)
    if opt is None:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(cfg.seed * 7919 + start)
    losses = []
    for step in range(start, start + steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        loss = loss_fn(step, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    return losses, opt


# ---------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------

def _lm_hash(folder: str | None, root: str | Path = ".") -> str | None:
    if not folder:
        return None
    p = Path(root) / folder / "lm.pt"
    return hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else None


def save_h(h: HModel, path: str | Path, extra: dict | None = None) -> None:
    net = h.net
    ck = {"features": asdict(net.feat), "extra": extra or {}}
    if isinstance(net, LMTranscriber):
        ck.update(kind="lm_transcriber", transcriber=asdict(net.tcfg), lm=h.lm.path, lm_md5=_lm_hash(h.lm.path, getattr(h.lm, "root", ".")),
                  adapter={"rank": net.rank, "backbone": net.backbone})
    else:
        ck.update(kind="transcriber", transcriber=asdict(net.cfg))
    ck["state_dict"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:  # a torn checkpoint never sits under the final name
        torch.save(ck, tmp)


def load_h(path: str | Path, lm_root: str | Path = ".") -> HModel:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    feat = FeatureConfig(**ck["features"])
    tcfg = TranscriberConfig(**{**ck["transcriber"], "harmonics": tuple(ck["transcriber"]["harmonics"])})
    lm = load_lm_features("A", ck["lm"], root=lm_root) if ck["kind"] == "lm_transcriber" else None
    h = make_h(tcfg, feat, lm, ck.get("adapter"))
    h.net.load_state_dict(ck["state_dict"])
    h.net.eval()
    return h


def save_g(g: GModel, path: str | Path, extra: dict | None = None) -> None:
    cfg = asdict(g.net.cfg)
    ck = {"kind": "lm_performer" if g.lm is not None else "performer", "performer": cfg,
          "lm": g.lm.path if g.lm is not None else None, "lm_md5": _lm_hash(g.lm.path, getattr(g.lm, "root", ".")) if g.lm is not None else None,
          "state_dict": {k: v.detach().cpu() for k, v in g.net.state_dict().items()}, "extra": extra or {}}
    with atomic_path(path) as tmp:  # a torn checkpoint never sits under the final name
        torch.save(ck, tmp)


def load_g(path: str | Path, lm_root: str | Path = ".") -> GModel:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    pcfg = PerformerConfig.from_params(ck["performer"])
    lm = load_lm_features("V", ck["lm"], root=lm_root) if ck["kind"] == "lm_performer" else None
    g = make_g(pcfg, lm)
    g.net.load_state_dict(ck["state_dict"])
    g.net.eval()
    return g


@dataclass(frozen=True)
class Switches:
    """Parse 'lmm-no_lmA-no_recon' into the base method and the switched-off terms."""
    base: str
    off: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str) -> "Switches":
        base, *rest = name.split("-")
        off = []
        for r in rest:
            if not r.startswith("no_") or len(r) <= 3:
                raise ValueError(f"method {name!r}: ablations are written '<method>-no_<term>', got {r!r}")
            off.append(r[3:])
        return cls(base, tuple(off))


def config_from(cls, section: dict | None):
    """A frozen dataclass from a params section (unknown keys ignored, lists -> tuples)."""
    section = section or {}
    kw = {}
    for f in fields(cls):
        if f.name in section:
            v = section[f.name]
            kw[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)
