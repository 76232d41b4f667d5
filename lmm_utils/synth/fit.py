"""Fitting and judging the piano synthesizer S (models/synth.py).

S learns the *instrument*, never the music: it is fitted only on random note sequences (random pitches,
timings, velocities, chords, re-strikes and pedal) rendered by FluidSynth with the benchmark pianos, and
judged on the test pool's ground-truth motion against a clean FluidSynth rendering of the same motion.

  random_performance      one random excerpt of motion
  make_random_pairs       render many of them (multiprocessing, tqdm) -> SynthPairs (roll, log-mel, piano)
  load_pool_pairs         a pool's ground-truth motion + its clean re-rendering -> SynthPairs
  fit_synth               calibrate the level, then the project's training loop (train.py) on log-mel L1
  TemplateBaseline        the trivial per-pitch average-template synthesizer (no dynamics), same loop
  evaluate_synth          log-mel L1 and spectral convergence per excerpt
  gradient_check          autograd vs central finite differences, per input and for the parameters
  measure_speed           frames/s, real-time factor, forward+backward time
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from lmm_utils.core.io import atomic_path
from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.models.synth import SynthBase, harmonic_log_templates
from lmm_utils.core.motion import N_KEYS, PIANO_HIGH, PIANO_LOW, PedalEvent, Performance, PerformedNote, to_roll
from lmm_utils.data.render import RecordingConditions

Piano = tuple[str, int]  # (soundfont file, preset)


# ---------------------------------------------------------------- random motion

@dataclass(frozen=True)
class RandomMotionConfig:
    seconds: float = 10.0
    notes_per_s: tuple[float, float] = (0.5, 10.0)  # onset rate, log-uniform per excerpt
    chord_prob: float = 0.3  # an onset is a chord of 2..max_chord notes within an octave and a half
    max_chord: int = 5
    repeat_prob: float = 0.15  # re-strike one of the last few pitches
    duration_s: tuple[float, float] = (0.04, 4.0)  # key-down time, log-uniform
    velocity: tuple[int, int] = (8, 127)  # excerpt mean uniform in this range, notes spread +-15 around it
    pedal_prob: float = 0.3  # share of excerpts with sustain-pedal use

    @classmethod
    def from_params(cls, section: dict) -> "RandomMotionConfig":
        kw = {f.name: section[f.name] for f in fields(cls) if f.name in section}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
        if "excerpt_seconds" in section:
            kw["seconds"] = float(section["excerpt_seconds"])
        return cls(**kw)


def random_performance(rng: np.random.Generator, cfg: RandomMotionConfig) -> Performance:
    """Random notes over the whole keyboard, no two overlapping notes on one key (a re-strike cuts the
    previous press short, as a pianist's would), everything released before cfg.seconds."""
    end = cfg.seconds - 0.05
    lo, hi = np.log(cfg.notes_per_s)
    rate = float(np.exp(rng.uniform(lo, hi)))
    mean_vel = rng.uniform(*cfg.velocity)
    notes: list[list] = []  # [pitch, onset, offset, velocity]
    last: dict[int, int] = {}  # pitch -> index of its latest note
    t = rng.exponential(1.0 / rate) * rng.uniform(0, 1)
    dlo, dhi = np.log(cfg.duration_s)
    while t < end - 0.1:
        size = int(rng.integers(2, cfg.max_chord + 1)) if rng.random() < cfg.chord_prob else 1
        if notes and rng.random() < cfg.repeat_prob:
            recent = [n[0] for n in notes[-6:]]
            pitches = {int(rng.choice(recent))}
        else:
            centre = int(rng.integers(PIANO_LOW, PIANO_HIGH + 1))
            pitches = {centre}
            while len(pitches) < size:
                pitches.add(int(np.clip(centre + rng.integers(-18, 19), PIANO_LOW, PIANO_HIGH)))
        for p in sorted(pitches):
            on = t + (rng.uniform(0, 0.015) if size > 1 else 0.0)
            if p in last:
                prev = notes[last[p]]
                if prev[2] > on - 0.01:
                    if on - 0.01 - prev[1] < 0.02:
                        continue  # too soon after the previous press of this key
                    prev[2] = on - 0.01
            off = min(on + float(np.exp(rng.uniform(dlo, dhi))), end)
            vel = int(np.clip(round(rng.normal(mean_vel, 15.0)), 1, 127))
            last[p] = len(notes)
            notes.append([p, on, off, vel])
        t += rng.exponential(1.0 / rate)
    if not notes:
        notes.append([int(rng.integers(PIANO_LOW, PIANO_HIGH + 1)), 0.1, min(1.0, end), int(mean_vel)])
    pedal: list[PedalEvent] = []
    if rng.random() < cfg.pedal_prob:
        p_t = rng.uniform(0.0, 2.0)
        while p_t < end - 0.3:
            up = min(p_t + rng.uniform(0.5, 3.0), end)
            pedal += [PedalEvent(p_t, True), PedalEvent(up, False)]
            p_t = up + rng.uniform(0.05, 1.5)
    perf = [PerformedNote(int(p), float(on), float(off), int(v)) for p, on, off, v in notes]
    perf.sort(key=lambda n: (n.onset, n.pitch))
    return Performance(notes=perf, pedal=pedal)


# ---------------------------------------------------------------- rendering to (roll, log-mel) pairs

@dataclass
class SynthPairs:
    """Rolls and log-mels of N excerpts, padded to the longest (lengths says how many frames are real).

    Stored compactly (rolls as uint8 0..127/0..1, log-mel as float16): 256 ten-second excerpts are ~70 MB.
    """

    onset: torch.Tensor  # (N, 88, T) uint8 0/1
    velocity: torch.Tensor  # (N, 88, T) uint8 MIDI velocity on onset frames
    sustain: torch.Tensor  # (N, 88, T) uint8 0/1 (key or pedal holds the sound)
    logmel: torch.Tensor  # (N, n_mels, T) float16
    piano: torch.Tensor  # (N,) long: index into the fitting pianos, -1 = another piano
    lengths: torch.Tensor  # (N,) long
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.onset.shape[0]

    def batch(self, idx: torch.Tensor | list[int]) -> tuple[torch.Tensor, ...]:
        """(onset, velocity, sustain, piano, logmel) as float tensors, ready for S."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return (self.onset[idx].float(), self.velocity[idx].float() / 127.0, self.sustain[idx].float(),
                self.piano[idx], self.logmel[idx].float())

    def item(self, i: int) -> tuple[torch.Tensor, ...]:
        """One excerpt cut to its real length, batch dimension 1."""
        n = int(self.lengths[i])
        return tuple(x[..., :n] if x.dim() == 3 else x for x in self.batch([i]))

    @classmethod
    def stack(cls, items: list[dict], log_floor: float) -> "SynthPairs":
        n_frames = max(it["logmel"].shape[-1] for it in items)

        def pad(x: np.ndarray, value: float) -> np.ndarray:
            return np.pad(x, ((0, 0), (0, n_frames - x.shape[-1])), constant_values=value)

        return cls(
            onset=torch.from_numpy(np.stack([pad(it["onset"], 0) for it in items])),
            velocity=torch.from_numpy(np.stack([pad(it["velocity"], 0) for it in items])),
            sustain=torch.from_numpy(np.stack([pad(it["sustain"], 0) for it in items])),
            logmel=torch.from_numpy(np.stack([pad(it["logmel"], math.log(log_floor)) for it in items])),
            piano=torch.tensor([it["piano"] for it in items], dtype=torch.long),
            lengths=torch.tensor([it["logmel"].shape[-1] for it in items], dtype=torch.long),
            ids=[it["id"] for it in items],
        )


_RENDERER = None


def _renderer(sample_rate: int):
    global _RENDERER
    if _RENDERER is None or _RENDERER.sample_rate != sample_rate:
        from lmm_utils.data.render import FluidRenderer

        _RENDERER = FluidRenderer(sample_rate)
    return _RENDERER


def render_pair(perf: Performance, cond: RecordingConditions, feat: FeatureConfig, seconds: float | None = None,
                tail: float = 1.0) -> tuple[dict, np.ndarray]:
    """Render one performance and cut it into a (roll, log-mel) pair on the same frame grid.

    seconds: exact length of the rendering (notes must end before it); None = duration + tail.
    Returns (pair dict with uint8 rolls and float16 log-mel, the audio).
    """
    if seconds is not None:
        tail = max(0.0, seconds - perf.duration)
    audio = _renderer(feat.sample_rate).render(perf, cond, tail=tail)
    mel = log_mel(audio, feat)
    roll = to_roll(perf, feat.fps, n_frames=mel.shape[-1])
    pair = {
        "onset": roll["onset"].astype(np.uint8),
        "velocity": np.round(roll["velocity"] * 127).astype(np.uint8),
        "sustain": roll["sustain"].astype(np.uint8),
        "logmel": mel.astype(np.float16),
        "peak": float(np.abs(audio).max(initial=0.0)),
    }
    return pair, audio


def _random_job(job: tuple) -> dict:
    seed, index, piano_index, piano, motion_cfg, feat = job
    rng = np.random.default_rng([seed, index])
    perf = random_performance(rng, motion_cfg)
    cond = RecordingConditions(soundfont=piano[0], preset=int(piano[1]))
    pair, _ = render_pair(perf, cond, feat, seconds=motion_cfg.seconds)
    pair.update(id=f"random-{seed}-{index}", piano=piano_index, n_notes=len(perf.notes))
    return pair


def _pool_job(job: tuple) -> dict:
    excerpt_id, perf_dict, cond, piano_index, feat = job
    perf = Performance.from_dict(perf_dict)
    pair, _ = render_pair(perf, cond, feat)
    pair.update(id=excerpt_id, piano=piano_index, n_notes=len(perf.notes))
    return pair


def _parallel(fn, jobs: list, workers: int, desc: str) -> list:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        return [fn(j) for j in tqdm(jobs, desc=desc, unit="excerpt")]
    # Each worker keeps one FluidRenderer (soundfonts loaded once); torch stays single-threaded there.
    with get_context("fork").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc, unit="excerpt"))


def make_random_pairs(n: int, seed: int, pianos: list[Piano], feat: FeatureConfig,
                      motion_cfg: RandomMotionConfig, workers: int = 0, start: int = 0,
                      desc: str = "render random motion") -> SynthPairs:
    """Render n random excerpts (indices start..start+n), cycling through the fitting pianos."""
    jobs = [(seed, i, i % len(pianos), tuple(pianos[i % len(pianos)]), motion_cfg, feat)
            for i in range(start, start + n)]
    return SynthPairs.stack(_parallel(_random_job, jobs, workers, desc), feat.log_floor)


def clean_conditions(cond: dict) -> RecordingConditions:
    """The same piano with the recording chain removed: no reverb, EQ, gain change or noise."""
    return RecordingConditions(soundfont=cond["soundfont"], preset=int(cond.get("preset", 0)),
                               bank=int(cond.get("bank", 0)))


def load_pool_pairs(pool: str, pianos: list[Piano], feat: FeatureConfig, workers: int = 0,
                    limit: int | None = None, piano_override: Piano | None = None,
                    root: str | Path = ".") -> SynthPairs:
    """A pool's ground-truth motion (data/motion/<pool>.jsonl) and a clean re-rendering of it with each
    excerpt's own piano (data/audio/<pool>/conditions.jsonl), or with `piano_override` for all of them
    (e.g. the held-out piano). limit: only the first `limit` excerpts."""
    root = Path(root)
    motion = [json.loads(line) for line in open(root / "data" / "motion" / f"{pool}.jsonl") if line.strip()]
    conds: dict[str, dict] = {}
    if piano_override is None:
        for line in open(root / "data" / "audio" / pool / "conditions.jsonl"):
            if line.strip():
                row = json.loads(line)
                conds[row["id"]] = row["conditions"]
    index = {(sf, int(pr)): i for i, (sf, pr) in enumerate(pianos)}
    jobs = []
    for row in motion[:limit]:
        if piano_override is None:
            cond = clean_conditions(conds[row["id"]])
        else:
            cond = RecordingConditions(soundfont=piano_override[0], preset=int(piano_override[1]))
        jobs.append((row["id"], row["performance"], cond, index.get((cond.soundfont, cond.preset), -1), feat))
    name = pool if piano_override is None else f"{pool} on {piano_override[0]}:{piano_override[1]}"
    return SynthPairs.stack(_parallel(_pool_job, jobs, workers, f"re-render {name} cleanly"), feat.log_floor)


def pool_available(pool: str, root: str | Path = ".") -> bool:
    root = Path(root)
    return (root / "data" / "motion" / f"{pool}.jsonl").is_file() and \
        (root / "data" / "audio" / pool / "conditions.jsonl").is_file()


def render_pool_excerpt(pool: str, excerpt_id: str, sample_rate: int = 16000, root: str | Path = ".") -> np.ndarray:
    """Clean FluidSynth audio of one pool excerpt's ground-truth motion on its own piano (for listening)."""
    root = Path(root)

    def find(path: Path) -> dict:
        with open(path) as f:
            return next(row for row in map(json.loads, filter(str.strip, f)) if row["id"] == excerpt_id)

    perf = Performance.from_dict(find(root / "data" / "motion" / f"{pool}.jsonl")["performance"])
    cond = clean_conditions(find(root / "data" / "audio" / pool / "conditions.jsonl")["conditions"])
    return _renderer(sample_rate).render(perf, cond)


def pool_piano_names(pool: str, root: str | Path = ".") -> dict[str, str]:
    """excerpt id -> 'soundfont:preset' of its recording."""
    out = {}
    for line in open(Path(root) / "data" / "audio" / pool / "conditions.jsonl"):
        if line.strip():
            row = json.loads(line)
            out[row["id"]] = f"{row['conditions']['soundfont']}:{row['conditions'].get('preset', 0)}"
    return out


# ---------------------------------------------------------------- baseline

@dataclass
class BaselineConfig:
    n_pianos: int = 4


class TemplateBaseline(SynthBase):
    """Trivial S: while a key sounds (sustain), it adds its one average log-mel template -- no velocity,
    no attack, no decay, no release. Fitted with the same loop and loss as S (so it is the best static
    template per pitch in log-mel L1); what it misses is what S's dynamics are for."""

    kind = "template-baseline"

    def __init__(self, cfg: BaselineConfig | None = None, feat: FeatureConfig | None = None):
        super().__init__(cfg or BaselineConfig(), feat or FeatureConfig())
        self.tmpl = nn.Parameter(harmonic_log_templates(self.feat, 1))  # the neural kind's data-free start

    def templates(self) -> torch.Tensor:
        return torch.exp(self.tmpl).expand(self.n_pianos + 1, -1, -1, -1)  # one template for every piano

    def envelopes(self, onset, velocity, sustain, keys, pianos) -> torch.Tensor:
        return sustain.unsqueeze(-1)


# ---------------------------------------------------------------- fitting

@torch.no_grad()
def calibrate_level(model: SynthBase, pairs: SynthPairs, n: int = 16) -> float:
    """Shift the model's overall level (its EQ) so its total mel power on a few excerpts matches the
    data's: a gradient-free first step that keeps the fit from starting decades away in level."""
    idx = list(range(min(n, len(pairs))))
    o, v, s, piano, y = pairs.batch(idx)
    pred = model.mel_power(o, v, s, piano).double().sum()
    target = (torch.exp(y.double()) - model.feat.log_floor).clamp(min=0).sum()
    shift = float(torch.log(target / pred.clamp(min=1e-30)))
    model.eq.add_(shift)
    return shift


def logmel_l1_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    o, v, s, piano, y = batch
    return (model(o, v, s, piano=piano) - y).abs().mean()


def fit_synth(model: SynthBase, train_pairs: SynthPairs, val_pairs: SynthPairs | None, section: dict,
              progress: bool = True) -> dict:
    """Fit S on random pairs with the project's training loop; section = the kind's fitting settings
    (steps, batch, lr, ...; see params.yaml synth.<kind>). Returns the loop's history."""
    from lmm_utils.training.loop import TrainConfig, train

    cfg = TrainConfig(
        steps=int(section["steps"]), batch_size=int(section["batch"]), lr=float(section["lr"]),
        min_lr=float(section.get("min_lr", float(section["lr"]) / 10)), warmup=int(section.get("warmup", 10)),
        weight_decay=0.0, grad_clip=float(section.get("grad_clip", 0.0)),
        eval_every=max(1, int(section.get("eval_every", section["steps"]))), eval_batches=1,
        log_every=max(1, int(section.get("log_every", 10))), seed=int(section.get("seed", 0)),
        device="cpu", precision="fp32",  # log-power dynamics need fp32; S is small enough for the CPU
        threads=int(section.get("threads", 1)),  # train.py's default: 1 thread on a small shared CPU
    )
    shift = calibrate_level(model, train_pairs)
    val = val_pairs if val_pairs is not None and len(val_pairs) else None

    piano_dropout = float(section.get("piano_dropout", 0.0))

    def get_batch(split: str, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        if split == "val":
            return val.batch(list(range(min(len(val), cfg.batch_size))))
        o, v, s, piano, y = train_pairs.batch(torch.randint(len(train_pairs), (cfg.batch_size,), generator=g))
        # Some excerpts are synthesized by the average piano (piano -1), so that the instrument downstream
        # stages use when they do not know the piano is itself fitted to the mixture of pianos.
        drop = torch.rand(len(piano), generator=g) < piano_dropout
        return o, v, s, torch.where(drop, -1, piano), y

    t0 = time.perf_counter()
    hist = train(model, get_batch, cfg, loss_fn=logmel_l1_loss, has_val=val is not None, progress=progress)
    hist["fit_seconds"] = time.perf_counter() - t0
    hist["level_calibration"] = shift
    model.eval()
    return hist


# ---------------------------------------------------------------- evaluation

def spectral_metrics(pred: torch.Tensor, target: torch.Tensor, log_floor: float) -> dict[str, float]:
    """For one excerpt's (n_mels, T) log-mels: mean |log-mel difference| (nats) over all bins and over
    the frames where the target sounds (> 40 dB above the floor somewhere), and spectral convergence
    || |S| - |Y| ||_F / || |Y| ||_F on mel magnitudes (sqrt of power)."""
    pred, target = pred.double(), target.double()
    diff = (pred - target).abs()
    active = target.amax(0) > math.log(log_floor) + math.log(1e4)
    mag_p = (torch.exp(pred) - log_floor).clamp(min=0).sqrt()
    mag_t = (torch.exp(target) - log_floor).clamp(min=0).sqrt()
    return {
        "logmel_l1": float(diff.mean()),
        "logmel_l1_active": float(diff[:, active].mean()) if bool(active.any()) else float("nan"),
        "spectral_convergence": float(torch.linalg.norm(mag_p - mag_t) / torch.linalg.norm(mag_t).clamp(min=1e-12)),
    }


@torch.no_grad()
def evaluate_synth(model: SynthBase, pairs: SynthPairs, use_piano: bool = False, progress: bool = False) -> list[dict]:
    """Per-excerpt spectral metrics of model(roll) against the pairs' log-mel (each at its real length).
    use_piano: give S the excerpt's piano index (else the average piano)."""
    model.eval()
    rows = []
    for i in tqdm(range(len(pairs)), desc="evaluate", disable=not progress):
        o, v, s, piano, y = pairs.item(i)
        pred = model(o, v, s, piano=piano if use_piano else None)
        rows.append({"id": pairs.ids[i], "piano": int(pairs.piano[i]),
                     **spectral_metrics(pred[0], y[0], model.feat.log_floor)})
    return rows


@torch.no_grad()
def predict_item(model: SynthBase, pairs: SynthPairs, i: int, use_piano: bool = False) -> np.ndarray:
    """S's (n_mels, T) log-mel for excerpt i of pairs."""
    o, v, s, piano, _ = pairs.item(i)
    return model.eval()(o, v, s, piano=piano if use_piano else None)[0].numpy()


def summarize(rows: list[dict], keys: tuple[str, ...] = ("logmel_l1", "logmel_l1_active", "spectral_convergence")) -> dict:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys} | {"n": len(rows)}


def markdown_table(rows: dict[str, dict], digits: int = 3) -> str:
    """{row name: {column: value}} -> a markdown table (columns from the first row)."""
    cols = list(next(iter(rows.values())).keys()) if rows else []
    fmt = lambda x: f"{x:.{digits}g}" if isinstance(x, float) else str(x)  # noqa: E731
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for name, r in rows.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------- gradient check

def gradient_check(model: SynthBase, frames: int = 40, seed: int = 0, eps: float = 1e-6,
                   n_directions: int = 3) -> dict[str, float]:
    """Directional derivatives of a random linear functional of S's log-mel: autograd vs central finite
    differences, in float64, for each input (onset, velocity, sustain) and for all parameters at once.
    Returns the worst relative error per target (~1e-6 or less = the gradients are right)."""
    import copy

    m = copy.deepcopy(model).double().eval()
    g = torch.Generator().manual_seed(seed)
    shape = (1, N_KEYS, frames)
    # Soft, interior inputs (kinks of clamps and interpolation grids are avoided with probability 1).
    inputs = {
        "onset": 0.05 + 0.9 * torch.rand(shape, generator=g, dtype=torch.float64) * (torch.rand(shape, generator=g) < 0.1),
        "velocity": 0.1 + 0.8 * torch.rand(shape, generator=g, dtype=torch.float64),
        "sustain": 0.05 + 0.9 * torch.rand(shape, generator=g, dtype=torch.float64),
    }
    weight = torch.randn(1, m.feat.n_mels, frames, generator=g, dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (m(inputs["onset"], inputs["velocity"], inputs["sustain"]) * weight).sum()

    params = [p for p in m.parameters() if p.requires_grad]
    for x in inputs.values():
        x.requires_grad_(True)
    grads = torch.autograd.grad(loss(), list(inputs.values()) + params)
    out = {}
    with torch.no_grad():
        targets = [(name, [x], [gr]) for (name, x), gr in zip(inputs.items(), grads)]
        targets.append(("parameters", params, list(grads[len(inputs):])))
        for name, tensors, tgrads in targets:
            worst = 0.0
            for _ in range(n_directions):
                dirs = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in tensors]
                analytic = sum(float((gr * d).sum()) for gr, d in zip(tgrads, dirs))
                for t, d in zip(tensors, dirs):
                    t.add_(eps * d)
                up = float(loss())
                for t, d in zip(tensors, dirs):
                    t.sub_(2 * eps * d)
                down = float(loss())
                for t, d in zip(tensors, dirs):
                    t.add_(eps * d)
                numeric = (up - down) / (2 * eps)
                worst = max(worst, abs(analytic - numeric) / max(abs(numeric), abs(analytic), 1e-12))
            out[name] = worst
    return out


# ---------------------------------------------------------------- speed

def measure_speed(model: nn.Module, batch: int = 16, seconds: float = 10.0, repeats: int = 3,
                  seed: int = 0) -> dict[str, float]:
    """Best-of-repeats wall time on a random roll of `batch` excerpts of `seconds`: forward without
    gradients (frames/s and real-time factor = seconds of audio per second of compute) and
    forward + backward with gradients to the inputs (as in the play-listen-correct loop)."""
    fps = model.feat.fps
    t = int(seconds * fps) + 1
    g = torch.Generator().manual_seed(seed)
    onset = (torch.rand(batch, N_KEYS, t, generator=g) < 0.01).float()
    vel = onset * torch.rand(batch, N_KEYS, t, generator=g)
    sus = (torch.rand(batch, N_KEYS, t, generator=g) < 0.15).float()
    model.eval()
    with torch.no_grad():
        model(onset, vel, sus)  # warm-up (tables, allocator)
        fwd = min(_timed(lambda: model(onset, vel, sus)) for _ in range(repeats))
    inputs = [x.clone().requires_grad_(True) for x in (onset, vel, sus)]

    def step():
        model.zero_grad(set_to_none=True)
        model(*inputs).mean().backward()

    step()
    both = min(_timed(step) for _ in range(repeats))
    frames = batch * t
    return {
        "batch": batch, "seconds_per_excerpt": seconds, "threads": torch.get_num_threads(),
        "forward_s": fwd, "forward_frames_per_s": frames / fwd, "real_time_factor": batch * seconds / fwd,
        "forward_backward_s": both,
    }


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- plots

def plot_spectrograms(panels: dict[str, np.ndarray], path: str | Path | None, title: str = "",
                      vmin: float = -11.5):
    """Log-mel panels side by side (same colour scale), e.g. {'FluidSynth': y, 'additive S': ...}."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    return fig


def plot_fit_curves(histories: dict[str, dict], path: str | Path | None):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    return fig


__all__ = [
    "RandomMotionConfig", "random_performance", "SynthPairs", "render_pair", "make_random_pairs",
    "clean_conditions", "load_pool_pairs", "pool_available", "render_pool_excerpt", "pool_piano_names", "predict_item", "markdown_table", "BaselineConfig", "TemplateBaseline", "calibrate_level",
    "logmel_l1_loss", "fit_synth", "spectral_metrics", "evaluate_synth", "summarize", "gradient_check",
    "measure_speed", "plot_spectrograms", "plot_fit_curves",
]
