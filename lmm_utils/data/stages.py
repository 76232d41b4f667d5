"""The benchmark data stages: corpus -> split -> engrave -> perform. Each function is one stage's work,
writes its outputs atomically and returns a small summary for the data card."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from lmm_utils.core import paths
from lmm_utils.core.filecheck import DEFAULT_MAX_MB
from lmm_utils.core.io import atomic_dir, read_jsonl, write_json, write_jsonl
from lmm_utils.core.motion import Performance, write_midi
from lmm_utils.core.parallel import parallel_map
from lmm_utils.core.params import check_corpus, check_engrave, check_perform, check_split
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.corpus import (
    CorpusError,
    deduplicate,
    list_user_works,
    list_works,
    load_pieces,
    parse_works,
    save_pieces,
)
from lmm_utils.data.engrave import EngraveConfig, engrave
from lmm_utils.data.evaluation import NOISY_POOL, TIMBRE_POOL
from lmm_utils.data.excerpts import ExcerptConfig, make_excerpts, stable_seed
from lmm_utils.data.music21_compat import add_bundle_iteration
from lmm_utils.data.pianist import PianistConfig, perform
from lmm_utils.data.pools import POOLS, check_disjoint, split_pieces
from lmm_utils.data.render import (
    FluidRenderer,
    RecordingConditions,
    check_fluidsynth,
    find_soundfont,
    record_audio_results,
)
from lmm_utils.data.sources import pipeline as real  # corpus.source: maestro_asap = real recordings
from lmm_utils.data.sources.perform import build_real_performances

ENGRAVED_POOLS = ("U_V", "P", "T")
PERFORMED_POOLS = ("U_A", "P", "T")


# ---------------------------------------------------------------- stage: corpus

def build_corpus(section: dict, real_data: dict | None = None) -> dict:

    check_corpus(section)
    if real.check_source(section) != "music21":
        return real.build_real_corpus(section, real_data or {})
    collections = list(section["collections"])
    add_bundle_iteration()  # list_works walks music21's catalogue: linear with this, quadratic (~20 s) without
    works = list_works(collections, section.get("max_works_per_collection"), section["seed"],
                       section.get("max_works_by_collection")) if collections else []
    works += list_user_works(section.get("user_folders") or [], section.get("max_file_mb", DEFAULT_MAX_MB))
    if not works:
        raise CorpusError("No works selected: corpus.collections and corpus.user_folders are both empty.")
    pieces, skipped = parse_works(works, section.get("workers", 0))
    if not pieces:
        first = "; ".join(f"{Path(s['source']).name}: {s['reason']}" for s in skipped[:3])
        raise CorpusError(f"None of the {len(works)} works could be parsed (nothing was written). First reasons: {first}")
    with atomic_dir(paths.CORPUS_DIR) as tmp:
        save_pieces(pieces, tmp / "works.jsonl.gz")
        write_json(skipped, tmp / "skipped.json")
    return {"works_listed": len(works), "parsed": len(pieces), "skipped": len(skipped),
            "per_collection": dict(Counter(p.collection for p in pieces))}


# ---------------------------------------------------------------- stage: split

def build_split(section: dict) -> dict:
    check_split(section)
    if real.is_real_corpus():  # the corpus stage read MAESTRO / ASAP
        return real.build_real_split(section)
    pieces = load_pieces(paths.CORPUS_DIR / "works.jsonl.gz")
    unique, dropped = deduplicate(pieces)
    assignment = split_pieces(unique, section["fractions"], section["seed"])
    cfg = ExcerptConfig.from_params(section["excerpts"])
    by_id = {p.id: p for p in unique}
    splits = {"seed": section["seed"], "fractions": section["fractions"], "duplicates_dropped": dropped, "pools": {}}
    excerpts_by_pool: dict[str, list[ScoreExcerpt]] = {}
    for pool in POOLS:
        excerpts = []
        for pid in assignment[pool]:
            excerpts += make_excerpts(by_id[pid], cfg, section["seed"])
        excerpts_by_pool[pool] = excerpts
        splits["pools"][pool] = {
            "pieces": [{"id": pid, "collection": by_id[pid].collection, "hash": by_id[pid].melody_hash}
                       for pid in assignment[pool]],
            "hashes": sorted({by_id[pid].melody_hash for pid in assignment[pool]}),
            "excerpts": [e.id for e in excerpts],
        }
    check_disjoint(splits)
    if not excerpts_by_pool["T"] or not excerpts_by_pool["P"]:
        raise ValueError("The split left pool T or P without excerpts: add works (corpus.max_works_per_collection) "
                         "or lower split.excerpts.n_bars.")
    with atomic_dir(paths.SCORES_DIR) as tmp:
        for pool, excerpts in excerpts_by_pool.items():
            write_jsonl((e.to_dict() for e in excerpts), tmp / f"{pool}.jsonl")
    write_json(splits, paths.SPLITS)
    return {"pieces": len(pieces), "duplicates_dropped": len(dropped),
            **{f"{pool}_pieces": len(assignment[pool]) for pool in POOLS},
            **{f"{pool}_excerpts": len(excerpts_by_pool[pool]) for pool in POOLS}}


def load_scores(pool: str) -> list[ScoreExcerpt]:
    """All excerpts of a pool. For data-preparation and evaluation code; training goes through pools.TrainingData."""
    return [ScoreExcerpt.from_dict(r) for r in read_jsonl(paths.scores_file(pool))]


# ---------------------------------------------------------------- stage: engrave

@dataclass
class _EngraveJob:
    excerpt: ScoreExcerpt
    out_dir: Path
    cfg: EngraveConfig


def _engrave_one(job: _EngraveJob) -> tuple[str, str | None]:
    try:
        png, boxes, xml = engrave(job.excerpt, job.cfg)
    except Exception as exc:  # one bad excerpt must not sink the batch
        return job.excerpt.id, f"{type(exc).__name__}: {exc}"
    stem = job.out_dir / job.excerpt.id
    stem.with_suffix(".png").write_bytes(png)
    stem.with_suffix(".musicxml").write_text(xml)
    write_json({"id": job.excerpt.id, "height": job.cfg.height, "boxes": boxes}, stem.with_suffix(".json"))
    return job.excerpt.id, None


def build_engravings(section: dict) -> dict:
    check_engrave(section)
    cfg = EngraveConfig.from_params(section)
    summary, failed = {}, []
    with atomic_dir(paths.ENGRAVINGS_DIR) as tmp:
        for pool in section.get("pools", ENGRAVED_POOLS):
            (tmp / pool).mkdir()
            jobs = [_EngraveJob(e, tmp / pool, cfg) for e in load_scores(pool)]
            results = list(parallel_map(_engrave_one, jobs, section.get("workers", 0), f"engrave {pool}", "excerpt"))
            failed += [{"id": i, "pool": pool, "reason": r} for i, r in results if r]
            summary[f"{pool}_engraved"] = sum(r is None for _, r in results)
        write_json(failed, tmp / "failed.json")
    summary["engrave_failed"] = len(failed)
    return summary


# ---------------------------------------------------------------- stage: perform (M and A)

def sample_conditions(section: dict, rng: np.random.Generator) -> RecordingConditions:
    c = section["conditions"]
    choices = [(sf["file"], preset) for sf in c["soundfonts"] for preset in sf["presets"]]
    soundfont, preset = choices[int(rng.integers(len(choices)))]
    noisy = rng.random() < c["noise_prob"]
    return RecordingConditions(
        soundfont=soundfont, preset=int(preset),
        reverb_room=float(rng.uniform(*c["reverb_room"])), reverb_level=float(rng.uniform(*c["reverb_level"])),
        gain_db=float(rng.uniform(*c["gain_db"])), eq_tilt_db=float(rng.uniform(*c["eq_tilt_db"])),
        noise_snr_db=float(rng.uniform(*c["noise_snr_db"])) if noisy else None,
        noise_seed=int(rng.integers(2**31)),
    )


def sample_timbre_variety(variety: dict, cond: RecordingConditions, rng: np.random.Generator) -> RecordingConditions:
    """`cond` with a per-excerpt piano and recording chain drawn from perform.conditions.timbre_variety: generator
    offsets (filter, envelope, tuning), chorus, velocity curve, a random EQ curve, wider rooms, mild compression.
    The caller gives it its own random stream, so the draws of sample_conditions (and T's) stay as they were."""
    def draw(key: str) -> float:
        return float(rng.uniform(*variety[key]))

    chorus = rng.random() < variety["chorus_prob"]
    compressed = rng.random() < variety["compress_prob"]
    return replace(
        cond, filter_fc_cents=draw("filter_fc_cents"), filter_q_cb=draw("filter_q_cb"), attack_tc=draw("attack_tc"),
        decay_tc=draw("decay_tc"), release_tc=draw("release_tc"), detune_cents=draw("detune_cents"),
        chorus_level=draw("chorus_level") if chorus else 0.0, velocity_gamma=draw("velocity_gamma"),
        eq_bands_db=tuple(float(g) for g in rng.uniform(*variety["eq_band_db"], size=int(variety["eq_bands"]))),
        reverb_room=draw("reverb_room"), reverb_level=draw("reverb_level"),
        compress_ratio=draw("compress_ratio") if compressed else 1.0,
        compress_threshold_db=draw("compress_threshold_db"))


def recording_conditions(section: dict, pool: str, excerpt_id: str, rng: np.random.Generator) -> RecordingConditions:
    """How an excerpt of `pool` is recorded: sample_conditions from the excerpt's stream `rng`, plus, for the pools
    perform.conditions.timbre_variety lists (when active), the variety from a stream of its own."""
    cond = sample_conditions(section, rng)
    variety = section["conditions"].get("timbre_variety") or {}
    if variety.get("active") and pool in variety.get("pools", []):
        cond = sample_timbre_variety(variety, cond, np.random.default_rng(stable_seed(section["seed"], "variety", excerpt_id)))
    return cond


def noisy_conditions(noisy: dict, cond: RecordingConditions, rng: np.random.Generator) -> RecordingConditions:
    """T_noisy: a T recording made again in a reverberant room with background noise (perform.noisy); the piano,
    EQ and level stay T's."""
    return replace(cond, reverb_room=float(rng.uniform(*noisy["reverb_room"])),
                   reverb_level=float(rng.uniform(*noisy["reverb_level"])),
                   noise_snr_db=float(rng.uniform(*noisy["noise_snr_db"])), noise_seed=int(rng.integers(2**31)))


def derived_t_jobs(section: dict, t_jobs: list[_RenderJob], audio_dir: Path) -> dict[str, list[_RenderJob]]:
    """T's performances recorded again, for evaluation only: T_timbre on the held-out piano, T_noisy (when
    perform.noisy is set) in a reverberant, noisy room. Each has its own random stream per excerpt."""
    timbre = section["timbre_soundfont"]
    conds = {TIMBRE_POOL: lambda j: replace(j.conditions, soundfont=timbre["file"], preset=int(timbre["preset"]))}
    if section.get("noisy"):
        conds[NOISY_POOL] = lambda j: noisy_conditions(
            section["noisy"], j.conditions, np.random.default_rng(stable_seed(section["seed"], NOISY_POOL, j.excerpt_id)))
    out = {}
    for pool, make in conds.items():
        (audio_dir / pool).mkdir()
        out[pool] = [_RenderJob(j.excerpt_id, j.performance, make(j), audio_dir / pool / f"{j.excerpt_id}.flac",
                                j.sample_rate) for j in t_jobs]
    return out


_renderer: FluidRenderer | None = None  # one per worker process (it checks for FluidSynth once)


@dataclass
class _RenderJob:
    excerpt_id: str
    performance: Performance
    conditions: RecordingConditions
    path: Path
    sample_rate: int


def _render_one(job: _RenderJob) -> tuple[str, float, str | None]:
    global _renderer

    try:
        if _renderer is None or _renderer.sample_rate != job.sample_rate:
            _renderer = FluidRenderer(job.sample_rate)
        audio = _renderer.render(job.performance, job.conditions)
        sf.write(job.path, audio, job.sample_rate, subtype="PCM_16", format="FLAC")
        return job.excerpt_id, len(audio) / job.sample_rate, None
    except Exception as exc:
        return job.excerpt_id, 0.0, f"{type(exc).__name__}: {exc}"


def build_performances(section: dict, sample_rate: int) -> dict:
    """Perform every excerpt of U_A, P and T (M), and record it (A); T also with the held-out piano (T_timbre) and in
    a reverberant, noisy room (T_noisy). U_A and P get the timbre variety (perform.conditions.timbre_variety)."""
    if real.is_real_split():  # real recordings: cut, not performed (lmm_utils/data/sources/perform.py)
        return build_real_performances(section, sample_rate)
    check_perform(section)
    check_fluidsynth()
    for sf_entry in section["conditions"]["soundfonts"] + [section["timbre_soundfont"]]:
        find_soundfont(sf_entry["file"])
    pianist = PianistConfig.from_params(section["pianist"])
    summary: dict = {}
    failed = []
    with atomic_dir(paths.MOTION_DIR) as motion_tmp, atomic_dir(paths.AUDIO_DIR) as audio_tmp:
        jobs_by_pool: dict[str, list[_RenderJob]] = {}
        for pool in PERFORMED_POOLS:
            (motion_tmp / pool).mkdir()
            (audio_tmp / pool).mkdir()
            rows, jobs = [], []
            for ex in load_scores(pool):
                rng = np.random.default_rng(stable_seed(section["seed"], ex.id))
                # rolls draw from a stream of their own: turning them on leaves the recording conditions' draws as they were
                perf = perform(ex, pianist, rng, roll_rng=np.random.default_rng(stable_seed(section["seed"], ex.id, "roll")))
                cond = recording_conditions(section, pool, ex.id, rng)
                write_midi(perf, motion_tmp / pool / f"{ex.id}.mid")
                rows.append({"id": ex.id, "performance": perf.to_dict()})
                jobs.append(_RenderJob(ex.id, perf, cond, audio_tmp / pool / f"{ex.id}.flac", sample_rate))
            write_jsonl(rows, motion_tmp / f"{pool}.jsonl")
            jobs_by_pool[pool] = jobs
        jobs_by_pool.update(derived_t_jobs(section, jobs_by_pool["T"], audio_tmp))
        for pool, jobs in jobs_by_pool.items():
            results = list(parallel_map(_render_one, jobs, section.get("workers", 0), f"render {pool}", "excerpt",
                                        start_method="forkserver", in_process_ok=False))
            record_audio_results(pool, results, ((j.excerpt_id, j.conditions.to_dict()) for j in jobs),
                                 audio_tmp / pool, summary, failed)
        write_json(failed, audio_tmp / "failed.json")
    summary["render_failed"] = len(failed)
    return summary
