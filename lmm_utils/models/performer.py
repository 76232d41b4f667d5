"""g: V -> M, sight-reading. A score excerpt in, a performance (one key press per score note) out.

Two performers:
- `plain_performance`: deterministic -- the metronome mark, velocity from the dynamics marking,
  legato durations. The baseline of g, the template that alignment warps onto a recording, and the
  source of unlimited (score, plain motion) pairs for synth-pairs.
- `Performer`: a small BiGRU over the score's notes that predicts expressive *deviations from the
  plain performance*: a log-tempo factor per onset group (integrated over the beat grid into onset
  times, so timing stays monotone and chords stay together), a small per-note asynchrony, a log
  duration ratio and a velocity offset. Its output head starts at zero, so an untrained Performer
  plays exactly the plain performance, and every method starts from the same baseline.

Contract: note i of every performance produced here performs `score.notes[i]` (score order, not time
order), so pseudo-motion targets, predictions and the score line up index by index.

g trains two ways: from per-note targets (pseudo-motion from alignment; `performer_loss`), or through the differentiable
synthesizer, by rendering its output as a soft piano roll (`soft_roll`) following motion.to_roll's conventions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmm_utils.core.motion import N_KEYS, PIANO_LOW, Performance, PerformedNote
from lmm_utils.core.params import dataclass_from
from lmm_utils.core.score import DYNAMICS, ScoreExcerpt

# A common notation-software convention (MuseScore's), not the benchmark pianist's table: the plain
# performer must not know how the ground truth was made.
PLAIN_DYNAMIC_VELOCITY = {"pp": 33, "p": 49, "mp": 64, "mf": 80, "f": 96, "ff": 112}


@dataclass(frozen=True)
class PlainConfig:
    dynamic_velocity: dict = field(default_factory=lambda: dict(PLAIN_DYNAMIC_VELOCITY))
    legato: float = 1.0  # held fraction of the notated duration
    release_gap: float = 0.01  # a key comes up this long before it is struck again
    lead_in: float = 0.25  # seconds of silence before the first barline (the recordings' convention)

    @classmethod
    def from_params(cls, section: dict | None) -> PlainConfig:
        return dataclass_from(cls, section, "mapping.performer.plain")


def seconds_per_beat(score: ScoreExcerpt) -> float:
    return 60.0 / float(score.tempo_bpm)


def plain_velocity(score: ScoreExcerpt, cfg: PlainConfig = PlainConfig()) -> np.ndarray:
    return np.array([cfg.dynamic_velocity[score.dynamic_at(n.onset)] for n in score.notes], dtype=float)


def release_before_repeat(pitches, onsets, offsets, gap: float) -> np.ndarray:
    """A key must come up before it is struck again: cut each note short of its pitch's next press
    (unisons between voices become one long and one 10-ms press, like the benchmark's pianist)."""
    offsets = np.array(offsets, dtype=float)
    order = sorted(range(len(pitches)), key=lambda i: (onsets[i], pitches[i]))
    next_onset: dict[int, float] = {}
    for i in reversed(order):
        limit = next_onset.get(int(pitches[i]))
        if limit is not None:
            offsets[i] = min(offsets[i], limit - gap)
        offsets[i] = max(offsets[i], onsets[i] + 0.01)
        next_onset[int(pitches[i])] = onsets[i]
    return offsets


def plain_performance(score: ScoreExcerpt, cfg: PlainConfig = PlainConfig()) -> Performance:
    """Metronome timing, dynamics-mark velocity, legato durations; note i performs score.notes[i]."""
    spb = seconds_per_beat(score)
    pitches = [n.pitch for n in score.notes]
    onsets = [cfg.lead_in + n.onset * spb for n in score.notes]
    offsets = [cfg.lead_in + (n.onset + n.duration * cfg.legato) * spb for n in score.notes]
    offsets = release_before_repeat(pitches, onsets, offsets, cfg.release_gap)
    vel = plain_velocity(score, cfg)
    return Performance(notes=[PerformedNote(p, float(on), float(off), int(v))
                              for p, on, off, v in zip(pitches, onsets, offsets, vel)])


# --- score encoding ---------------------------------------------------------------------------------------

N_NOTE_FEATURES = 38


def _note_features(score: ScoreExcerpt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 38) features, onset-group index per note, group onsets in beats.

    What a sight-reader sees at each note: pitch (height + pitch class), voice, notated duration,
    metrical position, position in the excerpt, the dynamics marking, the tempo mark, the meter, and
    the note's place in its chord and its voice's melodic line.
    """
    notes = score.notes
    n = len(notes)
    group_beats = np.array(sorted({round(x.onset, 4) for x in notes}), dtype=float)
    group = np.searchsorted(group_beats, [round(x.onset, 4) for x in notes]).astype(np.int64)
    feats = np.zeros((n, N_NOTE_FEATURES), np.float32)
    length = max(score.length_beats, 1e-6)
    size = np.bincount(group, minlength=len(group_beats))
    top = {g: max(x.pitch for x, gg in zip(notes, group) if gg == g) for g in set(group.tolist())}
    bottom = {g: min(x.pitch for x, gg in zip(notes, group) if gg == g) for g in set(group.tolist())}
    prev_in_voice: dict[int, int] = {}
    for i in sorted(range(n), key=lambda i: (notes[i].onset, notes[i].pitch)):
        x, g = notes[i], group[i]
        f = feats[i]
        f[0] = (x.pitch - 60) / 12.0
        f[1 + x.pitch % 12] = 1.0  # 1..12
        f[13 + min(x.voice, 3)] = 1.0  # 13..16
        f[17] = np.log2(max(x.duration, 1 / 16))
        phase = (x.onset % score.bar_beats) / score.bar_beats
        f[18], f[19] = np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)
        f[20] = float(abs(x.onset % score.bar_beats) < 1e-3)  # downbeat
        f[21] = float(abs(x.onset - round(x.onset)) < 1e-3)  # on a quarter-note beat
        f[22] = x.onset / length
        f[23] = float(g == len(group_beats) - 1)  # last onset of the excerpt
        mark = score.dynamic_at(x.onset)
        f[24] = DYNAMICS.index(mark) / (len(DYNAMICS) - 1)
        f[25 + DYNAMICS.index(mark)] = 1.0  # 25..30
        f[31] = np.log(score.tempo_bpm / 100.0)
        f[32] = score.bar_beats / 4.0
        f[33] = size[g] / 4.0
        f[34] = float(x.pitch == top[g])
        f[35] = float(x.pitch == bottom[g])
        prev = prev_in_voice.get(x.voice)
        f[36] = 0.0 if prev is None else (x.pitch - notes[prev].pitch) / 12.0
        nxt = group_beats[g + 1] if g + 1 < len(group_beats) else length
        f[37] = np.log2(max(nxt - group_beats[g], 1 / 16))
        prev_in_voice[x.voice] = i
    return feats, group, group_beats


@dataclass
class ScoreBatch:
    """Padded note sequences of B excerpts (N = most notes, G = most onset groups)."""
    feats: torch.Tensor  # (B, N, F)
    mask: torch.Tensor  # (B, N) bool
    pitch: torch.Tensor  # (B, N) long, MIDI
    group: torch.Tensor  # (B, N) long, onset-group index
    group_beats: torch.Tensor  # (B, G) beats; padded groups repeat the last onset
    group_mask: torch.Tensor  # (B, G) bool
    dur_beats: torch.Tensor  # (B, N) notated duration
    spb: torch.Tensor  # (B,) seconds per beat of the tempo mark
    base_velocity: torch.Tensor  # (B, N) plain velocity / 127
    next_same: torch.Tensor  # (B, N) long, index of the next note of the same pitch (itself if none)
    n_notes: list[int]

    def to(self, device) -> ScoreBatch:
        return ScoreBatch(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()})

    TENSORS = ("feats", "mask", "pitch", "group", "group_beats", "group_mask", "dur_beats", "spb", "base_velocity",
               "next_same")

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        """Plain tensors, for train.train's (tuple of tensors) batches."""
        return tuple(getattr(self, k) for k in self.TENSORS)

    @classmethod
    def from_tuple(cls, tensors: tuple[torch.Tensor, ...]) -> ScoreBatch:
        d = dict(zip(cls.TENSORS, tensors))
        return cls(**d, n_notes=[int(n) for n in d["mask"].sum(1).tolist()])


def encode_scores(scores: list[ScoreExcerpt], plain: PlainConfig = PlainConfig()) -> ScoreBatch:
    enc = [_note_features(s) for s in scores]
    b, n_max = len(scores), max(1, max(len(s.notes) for s in scores))
    g_max = max(1, max(len(e[2]) for e in enc))
    out = dict(
        feats=torch.zeros(b, n_max, N_NOTE_FEATURES), mask=torch.zeros(b, n_max, dtype=torch.bool),
        pitch=torch.full((b, n_max), 60, dtype=torch.long), group=torch.zeros(b, n_max, dtype=torch.long),
        group_beats=torch.zeros(b, g_max), group_mask=torch.zeros(b, g_max, dtype=torch.bool),
        dur_beats=torch.ones(b, n_max), spb=torch.zeros(b), base_velocity=torch.full((b, n_max), 0.5),
        next_same=torch.arange(n_max).repeat(b, 1),
    )
    for i, (s, (feats, group, gb)) in enumerate(zip(scores, enc)):
        n, g = len(s.notes), len(gb)
        out["feats"][i, :n] = torch.from_numpy(feats)
        out["mask"][i, :n] = True
        out["pitch"][i, :n] = torch.tensor([x.pitch for x in s.notes])
        out["group"][i, :n] = torch.from_numpy(group)
        out["group_beats"][i, :g] = torch.from_numpy(gb).float()
        out["group_beats"][i, g:] = float(gb[-1]) if g else 0.0
        out["group_mask"][i, :g] = True
        out["dur_beats"][i, :n] = torch.tensor([x.duration for x in s.notes], dtype=torch.float32)
        out["spb"][i] = seconds_per_beat(s)
        out["base_velocity"][i, :n] = torch.from_numpy(plain_velocity(s, plain) / 127.0).float()
        last: dict[int, int] = {}
        for j in sorted(range(n), key=lambda j: (s.notes[j].onset, s.notes[j].pitch), reverse=True):
            out["next_same"][i, j] = last.get(s.notes[j].pitch, j)
            last[s.notes[j].pitch] = j
    return ScoreBatch(**out, n_notes=[len(s.notes) for s in scores])


# --- the model --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PerformerConfig:
    d_model: int = 64
    n_layers: int = 2
    dropout: float = 0.1
    max_log_tempo: float = 0.7  # |ln tempo factor| <= 0.7: at most 2x faster or slower than the mark
    max_asynchrony: float = 0.03  # seconds a note may lead/lag its chord
    max_log_duration: float = 1.5
    plain: PlainConfig = PlainConfig()

    @classmethod
    def from_params(cls, section: dict | None) -> PerformerConfig:
        return dataclass_from(cls, section, "mapping.performer")

    @classmethod
    def tiny(cls) -> PerformerConfig:
        return cls(d_model=16, n_layers=1, dropout=0.0)


class Performer(nn.Module):
    """BiGRU over the notes in time order -> per-note (log tempo, asynchrony, log duration ratio, velocity)."""

    def __init__(self, cfg: PerformerConfig = PerformerConfig()):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Sequential(nn.Linear(N_NOTE_FEATURES, cfg.d_model), nn.GELU())
        self.rnn = nn.GRU(cfg.d_model, cfg.d_model // 2, num_layers=cfg.n_layers, batch_first=True,
                          bidirectional=True, dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, 4)
        nn.init.zeros_(self.head.weight)  # untrained = the plain performance
        nn.init.zeros_(self.head.bias)
        self.start = nn.Parameter(torch.zeros(()))  # learned shift of the first barline, seconds

    def forward(self, batch: ScoreBatch) -> dict[str, torch.Tensor]:
        """-> onset, offset (seconds) and velocity (/127) per note, (B, N); padded notes are garbage."""
        return play_deviations(self.deviations(batch), batch, self.cfg, self.start)

    def deviations(self, batch: ScoreBatch) -> torch.Tensor:
        """(B, N, 4) raw deviations from the plain performance (play_deviations reads them), in score order."""
        # Run the GRU in time order (score order need not be), then scatter back.
        key = batch.group.float() * 1000.0 + batch.pitch.float() / 200.0 + (~batch.mask).float() * 1e7
        order = key.argsort(dim=1)
        inverse = order.argsort(dim=1)
        x = torch.gather(batch.feats, 1, order[..., None].expand_as(batch.feats))
        h, _ = self.rnn(self.inp(x))
        raw = self.head(self.drop(h))
        return torch.gather(raw, 1, inverse[..., None].expand_as(raw))

    @torch.no_grad()
    def perform(self, scores: list[ScoreExcerpt]) -> list[Performance]:
        was_training = self.training
        self.eval()
        batch = encode_scores(scores, self.cfg.plain)
        perfs = to_performances(self(batch), batch, self.cfg.plain.release_gap)
        self.train(was_training)
        return perfs


def play_deviations(raw: torch.Tensor, batch: ScoreBatch, cfg: PerformerConfig,
                    start: torch.Tensor | float = 0.0) -> dict[str, torch.Tensor]:
    """Raw deviations (B, N, 4) -> onset, offset (s), velocity (/127), each (B, N); raw = 0 plays the plain performance.
    Channels: 0 log tempo (max_log_tempo * tanh, mean over the onset group), 1 asynchrony (s), 2 log duration ratio,
    3 velocity logit offset; `start` shifts the first barline. The Performer and methods.basis's g play through this."""
    log_tempo = cfg.max_log_tempo * torch.tanh(raw[..., 0])
    asynchrony = cfg.max_asynchrony * torch.tanh(raw[..., 1])
    log_dur = cfg.max_log_duration * torch.tanh(raw[..., 2])
    base_logit = torch.logit(batch.base_velocity.clamp(1e-3, 1 - 1e-3))
    velocity = torch.sigmoid(base_logit + raw[..., 3])

    # Group tempo = mean over the group's notes; integrate IOIs over the beat grid.
    g_tempo = _group_times(log_tempo, batch.group, batch.mask, batch.group_beats.shape[1])  # (B, G)
    prev_beats = torch.cat([torch.zeros_like(batch.group_beats[:, :1]), batch.group_beats[:, :-1]], dim=1)
    gap = (batch.group_beats - prev_beats) * batch.group_mask.float()  # first gap = rest before the first note
    prev_tempo = torch.cat([g_tempo[:, :1], g_tempo[:, :-1]], dim=1)  # the IOI after group j-1 at its tempo
    dt = gap * batch.spb[:, None] * torch.exp(-prev_tempo)
    g_time = cfg.plain.lead_in + start + torch.cumsum(dt, dim=1)
    onset = torch.gather(g_time, 1, batch.group) + asynchrony
    note_tempo = torch.gather(g_tempo, 1, batch.group)
    length = batch.dur_beats * cfg.plain.legato * batch.spb[:, None] * torch.exp(-note_tempo + log_dur)
    # A key comes up before its next press (differentiable form of release_before_repeat).
    nxt = torch.gather(onset, 1, batch.next_same)
    has_next = batch.next_same != torch.arange(onset.shape[1], device=onset.device)
    limit = torch.where(has_next, nxt - cfg.plain.release_gap, onset + length)
    offset = torch.maximum(torch.minimum(onset + length, limit), onset + 0.01)
    return {"onset": onset, "offset": offset, "velocity": velocity, "deviation": raw}


def to_performances(pred: dict[str, torch.Tensor], batch: ScoreBatch, release_gap: float = 0.01) -> list[Performance]:
    """Predicted tensors -> one Performance per excerpt (score order; a key comes up before a repeat)."""
    out = []
    on_all, off_all = pred["onset"].detach().cpu().numpy(), pred["offset"].detach().cpu().numpy()
    vel_all = pred["velocity"].detach().cpu().numpy()
    pitch_all = batch.pitch.cpu().numpy()
    for i, n in enumerate(batch.n_notes):
        on = np.maximum(on_all[i, :n], 0.0)
        off = release_before_repeat(pitch_all[i, :n], on, np.maximum(off_all[i, :n], on + 0.01), release_gap)
        vel = np.clip(np.round(vel_all[i, :n] * 127), 1, 127).astype(int)
        out.append(Performance(notes=[PerformedNote(int(p), float(a), float(b), int(v))
                                      for p, a, b, v in zip(pitch_all[i, :n], on, off, vel)]))
    return out


# --- training signals -------------------------------------------------------------------------------------

def note_targets(perfs: list[Performance], batch: ScoreBatch) -> dict[str, torch.Tensor]:
    """Per-note targets (B, N) from performances that follow the score-order contract (e.g. align_pair's)."""
    b, n_max = batch.mask.shape
    t = {k: torch.zeros(b, n_max) for k in ("onset", "offset", "velocity")}
    for i, (perf, n) in enumerate(zip(perfs, batch.n_notes)):
        if len(perf.notes) != n:
            raise ValueError(f"excerpt {i}: performance has {len(perf.notes)} notes, score has {n}; "
                             "targets need one performed note per score note, in score order")
        t["onset"][i, :n] = torch.tensor([x.onset for x in perf.notes])
        t["offset"][i, :n] = torch.tensor([x.offset for x in perf.notes])
        t["velocity"][i, :n] = torch.tensor([x.velocity / 127.0 for x in perf.notes])
    return t


def _group_times(onset: torch.Tensor, batch_group: torch.Tensor, mask: torch.Tensor, n_groups: int) -> torch.Tensor:
    member = F.one_hot(batch_group, n_groups).to(onset.dtype) * mask[..., None].to(onset.dtype)
    return torch.einsum("bng,bn->bg", member, onset) / member.sum(1).clamp(min=1.0)


def ioi_loss(pred_onset: torch.Tensor, target_onset: torch.Tensor, group: torch.Tensor, mask: torch.Tensor,
             group_mask: torch.Tensor) -> torch.Tensor:
    """L1 on log inter-onset-interval ratios between consecutive onset groups: local timing, blind to
    the slow random drift of each excerpt's tempo that absolute onsets would make g memorize."""
    g = group_mask.shape[1]
    tp, tt = _group_times(pred_onset, group, mask, g), _group_times(target_onset, group, mask, g)
    valid = (group_mask[:, 1:] & group_mask[:, :-1]).to(pred_onset.dtype)
    ip, it = (tp[:, 1:] - tp[:, :-1]).clamp(min=1e-3), (tt[:, 1:] - tt[:, :-1]).clamp(min=1e-3)
    return ((torch.log(ip) - torch.log(it)).abs() * valid).sum() / valid.sum().clamp(min=1.0)


def performer_loss(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], mask: torch.Tensor,
                   duration_weight: float = 0.3, velocity_weight: float = 1.0,
                   deviation_weight: float = 0.0, onset_weight: float = 1.0, ioi_weight: float = 0.0,
                   batch: ScoreBatch | None = None) -> dict[str, torch.Tensor]:
    """Smooth-L1 on onset seconds (20 ms knee: alignment is good to about a frame), L1 on log duration,
    L1 on velocity/127. Duration weighs less: pseudo-motion offsets are the least reliable part.
    deviation_weight > 0 adds an L2 pull of the head's raw outputs toward 0 (= the plain performance):
    with a handful of pairs, deviations must earn their keep."""
    m = mask.float()
    denom = m.sum().clamp(min=1.0)
    l_on = (F.smooth_l1_loss(pred["onset"], target["onset"], beta=0.02, reduction="none") * m).sum() / denom
    dur_p = (pred["offset"] - pred["onset"]).clamp(min=1e-3)
    dur_t = (target["offset"] - target["onset"]).clamp(min=1e-3)
    l_dur = ((torch.log(dur_p) - torch.log(dur_t)).abs() * m).sum() / denom
    l_vel = ((pred["velocity"] - target["velocity"]).abs() * m).sum() / denom
    l_dev = ((pred["deviation"] ** 2).mean(-1) * m).sum() / denom if "deviation" in pred else l_on * 0
    l_ioi = l_on * 0
    if ioi_weight > 0:
        assert batch is not None, "ioi_weight needs the ScoreBatch (onset groups)"
        l_ioi = ioi_loss(pred["onset"], target["onset"], batch.group, mask, batch.group_mask)
    loss = (onset_weight * l_on + ioi_weight * l_ioi + duration_weight * l_dur + velocity_weight * l_vel
            + deviation_weight * l_dev)
    return {"loss": loss, "onset": l_on, "ioi": l_ioi, "duration": l_dur, "velocity": l_vel, "deviation": l_dev}


def soft_roll(pred: dict[str, torch.Tensor], batch: ScoreBatch, n_frames: int, fps: float,
              onset_sigma: float = 0.5, edge: float = 0.5, straight_through: bool = True) -> dict[str, torch.Tensor]:
    """Differentiable (B, 88, T) onset/frame/velocity/sustain rolls, matching motion.to_roll's conventions.

    onset: a Gaussian bump (sigma in frames) at onset * fps; frame: sigmoid edges (width `edge` frames)
    at the frame boundaries to_roll rounds to; velocity: velocity x onset bump. Notes on the same key
    combine by a soft OR, so the rolls stay in [0, 1].

    straight_through (default): the forward values are exactly to_roll's (onset bump centred on the
    rounded frame, hard key-down frames), so S sees inputs like the rolls it was trained on, while the
    gradients are those of the soft curves. Widen onset_sigma / edge early in training through S:
    gradients reach an onset only from frames within a few sigmas of it.
    """
    t = torch.arange(n_frames, dtype=pred["onset"].dtype, device=pred["onset"].device)  # (T,)
    on = pred["onset"][..., None] * fps  # (B, N, 1)
    off = pred["offset"][..., None] * fps
    m = batch.mask[..., None].to(on.dtype)
    soft_bump = torch.exp(-0.5 * ((t - on) / onset_sigma) ** 2)
    soft_held = torch.sigmoid((t - on + 0.5) / edge) * torch.sigmoid((off - 0.5 - t) / edge)
    if straight_through:
        on_f = torch.round(on.detach())
        off_f = torch.maximum(on_f + 1, torch.round(off.detach()))
        hard_bump = (t == on_f).to(on.dtype)
        hard_held = ((t >= on_f) & (t < off_f)).to(on.dtype)
        bump = hard_bump + soft_bump - soft_bump.detach()
        held = hard_held + soft_held - soft_held.detach()
    else:
        bump, held = soft_bump, soft_held
    bump, held = bump * m, held * m
    key = F.one_hot((batch.pitch - PIANO_LOW).clamp(0, N_KEYS - 1), N_KEYS).to(on.dtype)  # (B, N, 88)
    key = key * ((batch.pitch >= PIANO_LOW) & (batch.pitch < PIANO_LOW + N_KEYS))[..., None].to(on.dtype)

    def soft_or(x: torch.Tensor) -> torch.Tensor:
        # 1 - prod(1 - x) over a key's notes; the clamp keeps log finite on hard 1s (value stays ~1).
        log_off = torch.einsum("bnk,bnt->bkt", key, torch.log1p(-x.clamp(max=1 - 1e-6)))
        return 1.0 - torch.exp(log_off)

    # Mean velocity where bumps of one key overlap (a unison), velocity x bump elsewhere.
    weight = torch.einsum("bnk,bnt->bkt", key, bump).clamp(min=1.0)
    velocity = torch.einsum("bnk,bnt->bkt", key, bump * pred["velocity"][..., None]) / weight
    frame = soft_or(held)
    # No pedal here, so S's "sustain" input is the key-down roll (S is called as S(onset, velocity, sustain)).
    return {"onset": soft_or(bump), "frame": frame, "velocity": velocity, "sustain": frame}
