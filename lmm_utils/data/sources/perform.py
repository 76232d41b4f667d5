"""The perform stage for real recordings: cut each excerpt's motion and audio out of its recording.

For every row of data/scores/segments.jsonl (pools U_A, P, T):
    data/motion/<pool>/<id>.mid + motion/<pool>.jsonl   the performance MIDI's key presses and sustain
                                                        pedal in [start, end), shifted to start at 0
    data/audio/<pool>/<id>.flac                         the same stretch of the recording, mono, resampled
                                                        to features.sample_rate (16 kHz), PCM 16
    data/audio/<pool>/conditions.jsonl                  {"id", "conditions": {"source", "audio", "start", "end"}}

T_timbre is not made: it re-records T's performances on a held-out synthesizer piano, which has no
counterpart for a real recording (MAESTRO is one piano, a Yamaha Disklavier, throughout).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from lmm_utils.core import paths
from lmm_utils.core.io import atomic_dir, read_jsonl, write_json, write_jsonl
from lmm_utils.core.motion import Performance, read_midi, write_midi
from lmm_utils.core.parallel import parallel_map
from lmm_utils.data.render import record_audio_results
from lmm_utils.data.sources.pipeline import PERFORMED, SEGMENTS_FILE
from lmm_utils.data.sources.segments import cut_performance, read_audio_segment


@dataclass
class _AudioJob:
    excerpt_id: str
    source: str
    start: float
    end: float
    path: Path
    sample_rate: int


def _cut_audio(job: _AudioJob) -> tuple[str, float, str | None]:

    try:
        audio = read_audio_segment(job.source, job.start, job.end, job.sample_rate)
        sf.write(job.path, audio, job.sample_rate, subtype="PCM_16", format="FLAC")
        return job.excerpt_id, len(audio) / job.sample_rate, None
    except Exception as exc:  # one bad file must not sink the batch; it is listed in failed.json
        return job.excerpt_id, 0.0, f"{type(exc).__name__}: {exc}"


def build_real_performances(section: dict, sample_rate: int) -> dict:

    by_pool: dict[str, list[dict]] = defaultdict(list)
    for row in read_jsonl(SEGMENTS_FILE):
        by_pool[row["pool"]].append(row)
    summary: dict = {}
    failed: list[dict] = []
    midi_cache: dict[str, Performance] = {}
    with atomic_dir(paths.MOTION_DIR) as motion_tmp, atomic_dir(paths.AUDIO_DIR) as audio_tmp:
        for pool in PERFORMED:
            (motion_tmp / pool).mkdir()
            (audio_tmp / pool).mkdir()
            rows, jobs = [], []
            for seg in sorted(by_pool[pool], key=lambda s: (s["midi"], s["start"])):
                if seg["midi"] not in midi_cache:
                    midi_cache.clear()  # segments are sorted by file: keep one parsed MIDI at a time
                    midi_cache[seg["midi"]] = read_midi(seg["midi"])
                perf = cut_performance(midi_cache[seg["midi"]], seg["start"], seg["end"])
                write_midi(perf, motion_tmp / pool / f"{seg['id']}.mid")
                rows.append({"id": seg["id"], "performance": perf.to_dict()})
                jobs.append(_AudioJob(seg["id"], seg["audio"], seg["start"], seg["end"],
                                      audio_tmp / pool / f"{seg['id']}.flac", sample_rate))
            write_jsonl(sorted(rows, key=lambda r: r["id"]), motion_tmp / f"{pool}.jsonl")
            results = list(parallel_map(_cut_audio, jobs, section.get("workers", 0), f"cut audio {pool}", "excerpt"))
            record_audio_results(
                pool, results,
                ((j.excerpt_id, {"source": "recording", "audio": j.source, "start": j.start, "end": j.end})
                 for j in sorted(jobs, key=lambda j: j.excerpt_id)),
                audio_tmp / pool, summary, failed)
        write_json(failed, audio_tmp / "failed.json")
    summary["render_failed"] = len(failed)
    return summary


__all__ = ["build_real_performances"]
