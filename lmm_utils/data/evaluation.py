"""The one door to evaluation data: T's scores, its recordings (T; T_timbre, the same performances on a piano no
training data used; T_noisy, the same in a reverberant room with background noise) and ground-truth motion (M) of
every pool.

    ev = EvaluationData(root)
    ids = ev.eval_ids(max_items=32)                  # the fixed, hash-ordered subset of T every run is scored on
    truth = ev.truth(ids)                            # T's true performances + collections, for scoring
    mel = ev.logmel("T_timbre", ids[0], feat)        # what h hears
    ev.motion("P"), ev.motion("U_A")                 # ground truth of other pools: labelled diagnostics only

It sits beside `pools.TrainingData` (the door training code gets, which refuses all of this). Past the data stages
that write them (01-04, `data.stages`), no module of the package opens data/motion/*, data/scores/T.jsonl or
data/audio/{T,T_timbre,T_noisy} but through this door; a test checks that no
module under lmm_utils/methods or lmm_utils/training imports this one. It lives in `data` because the data card
(stage 04) and the LM reports (stage 06) read T too, and must not import a later stage's package.

Reads are memoised per instance (one object per stage is cheap to keep around).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from lmm_utils.core import paths
from lmm_utils.core.io import read_jsonl
from lmm_utils.core.motion import Performance
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.corpus import family
from lmm_utils.data.excerpts import stable_seed

if TYPE_CHECKING:  # core.features imports torch; the data card reads T without it
    from lmm_utils.core.features import FeatureConfig

TEST_POOL = "T"
TIMBRE_POOL = "T_timbre"  # T's performances recorded on the held-out piano
NOISY_POOL = "T_noisy"  # T's performances recorded again with heavy reverb and background noise (5-15 dB SNR)
RECORDING_POOLS = (TEST_POOL, TIMBRE_POOL, NOISY_POOL)
# What an excerpt needs to be evaluated. T_noisy came later: data made before it has none, and is scored without it.
REQUIRED_POOLS = (TEST_POOL, TIMBRE_POOL)


@dataclass
class Truth:
    """True performances of the excerpts scored, with their collections (evaluation only)."""
    perf: dict[str, Performance]  # by excerpt id
    collection: dict[str, str]

    @property
    def ids(self) -> list[str]:
        return sorted(self.perf)

    def restrict(self, ids: list[str] | None) -> Truth:
        """The truth on `ids` (those it has); None or empty: unchanged."""
        if not ids:
            return self
        keep = [i for i in ids if i in self.perf]
        return Truth({i: self.perf[i] for i in keep}, {i: self.collection[i] for i in keep})

    def fingerprint(self) -> str:
        """Changes with the excerpts, their performances and their collections (scores key caches on it)."""
        blob = json.dumps({i: [self.collection.get(i), self.perf[i].to_dict()] for i in self.ids}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


class EvaluationData:
    """What evaluation (and the reports of stages 04 and 06) may read that training may not."""

    def __init__(self, root: str | Path = "."):
        self.root = Path(root)
        self._memo: dict[tuple, object] = {}

    def _once(self, key: tuple, load):
        if key not in self._memo:
            self._memo[key] = load()
        return self._memo[key]

    # --- scores --------------------------------------------------------------------------------------------
    def scores(self, pool: str = TEST_POOL) -> dict[str, ScoreExcerpt]:
        """A pool's score excerpts by id, in file order."""
        return self._once(("scores", pool), lambda: {
            r["id"]: ScoreExcerpt.from_dict(r) for r in read_jsonl(self.root / paths.scores_file(pool))})

    def collections(self, pool: str = TEST_POOL) -> dict[str, str]:
        return {i: s.collection for i, s in self.scores(pool).items()}

    # --- ground-truth motion -------------------------------------------------------------------------------
    def motion(self, pool: str = TEST_POOL) -> dict[str, Performance]:
        """True performances by id, in file order. Of T: what everything is scored against; of P and U_A:
        diagnostics only (how good a run's pseudo-motion or self-training labels were), never fed back."""
        return self._once(("motion", pool), lambda: {
            r["id"]: Performance.from_dict(r["performance"]) for r in read_jsonl(self.root / paths.motion_file(pool))})

    def truth(self, ids: list[str] | None = None, pool: str = TEST_POOL) -> Truth:
        """The true performances (of `ids`, else of every excerpt with motion) and their collections
        ("unknown" for an excerpt the pool's scores lack)."""
        perf = self.motion(pool)
        scores_file = self.root / paths.scores_file(pool)
        coll = self.collections(pool) if scores_file.is_file() else {}
        truth = Truth(dict(perf), {i: coll.get(i, "unknown") for i in perf})
        return truth.restrict(ids) if ids is not None else truth

    # --- recordings ----------------------------------------------------------------------------------------
    def audio_path(self, pool: str, excerpt_id: str) -> Path:
        return self.root / paths.audio_path(pool, excerpt_id)

    def audio_dir(self, pool: str) -> Path:
        """A pool's recordings folder (for tools that take a folder, e.g. the Basic Pitch peer)."""
        return self.root / paths.AUDIO_DIR / pool

    def audio_files(self, pool: str) -> list[Path]:
        return sorted(self.audio_dir(pool).glob("*.flac"))

    def audio_ids(self, pool: str) -> list[str]:
        """Excerpts with a recording in `pool`, sorted by id."""
        return [f.stem for f in self.audio_files(pool)]

    def audio(self, pool: str, excerpt_id: str) -> tuple[np.ndarray, int]:
        import soundfile as sf  # deferred: only the stages that listen need libsndfile loaded

        audio, sr = sf.read(self.audio_path(pool, excerpt_id), dtype="float32")
        return audio, sr

    def logmel(self, pool: str, excerpt_id: str, feat: FeatureConfig) -> np.ndarray:
        """Log-mel (n_mels, frames) of a recording, mixed to mono; its sample rate must be the features'.
        Computed once per process and file version (_LOGMEL_CACHE): a grid of runs predicts the same recordings."""
        from lmm_utils.core.features import log_mel  # deferred: torch (see the TYPE_CHECKING import)

        path = self.audio_path(pool, excerpt_id)
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size, feat)
        if key not in _LOGMEL_CACHE:
            audio, sr = self.audio(pool, excerpt_id)
            if sr != feat.sample_rate:
                raise ValueError(f"{pool}/{excerpt_id}: {sr} Hz, features expect {feat.sample_rate} Hz")
            _LOGMEL_CACHE.put(key, log_mel(audio.mean(1) if audio.ndim == 2 else audio, feat))
        return _LOGMEL_CACHE[key].copy()

    def logmels(self, pool: str, feat: FeatureConfig, ids: list[str] | None = None, limit: int | None = None,
                progress: bool = False) -> dict[str, np.ndarray]:
        """Log-mel of `ids` (default: every recording of the pool, by id), the first `limit` of them."""
        ids = (self.audio_ids(pool) if ids is None else list(ids))[:limit]
        if not ids:
            raise FileNotFoundError(f"no audio for pool {pool} in {self.audio_dir(pool)}")
        return {i: self.logmel(pool, i, feat)
                for i in tqdm(ids, desc=f"log-mel {pool}", disable=not progress, mininterval=2.0)}

    def has_recordings(self, pool: str, ids: list[str]) -> bool:
        """Whether `pool` has a recording of every one of `ids` (False for T_noisy on data made before it)."""
        return bool(ids) and all(self.audio_path(pool, i).is_file() for i in ids)

    def has_pool(self, pool: str) -> bool:
        """Whether a pool has true motion and recording conditions (what S's report on it reads)."""
        return (self.root / paths.motion_file(pool)).is_file() and (self.audio_dir(pool) / "conditions.jsonl").is_file()

    def conditions(self, pool: str) -> dict[str, dict]:
        """How each recording of a pool was made (data/audio/<pool>/conditions.jsonl), by id."""
        return self._once(("conditions", pool), lambda: {
            r["id"]: r.get("conditions", {}) for r in read_jsonl(self.audio_dir(pool) / "conditions.jsonl")})

    def engraving_path(self, excerpt_id: str, pool: str = TEST_POOL) -> Path:
        return self.root / paths.ENGRAVINGS_DIR / pool / f"{excerpt_id}.png"

    # --- the excerpts evaluated ----------------------------------------------------------------------------
    def eval_ids(self, max_items: int | None = None) -> list[str]:
        """T's excerpts evaluated: every one with notes and the REQUIRED_POOLS recordings (T, T_timbre); with max_items,
        a fixed subset stratified by family -- each family (folk, chorales, polyphony) gets its share of max_items (largest
        remainder), taken in a seed-independent hash order, so every run and every method is scored on the same
        ones and the families keep T's proportions -- returned sorted."""
        scores = self.scores(TEST_POOL)
        ids = [i for i, s in scores.items() if s.notes and all(self.audio_path(p, i).is_file() for p in REQUIRED_POOLS)]
        ids.sort(key=lambda i: stable_seed("eval", i))
        if not max_items or max_items >= len(ids):
            return sorted(ids)
        groups: dict[str, list[str]] = {}
        for i in ids:
            groups.setdefault(family(scores[i].collection), []).append(i)
        share = {f: max_items * len(g) / len(ids) for f, g in groups.items()}
        take = {f: int(np.floor(v)) for f, v in share.items()}
        for f in sorted(share, key=lambda f: (take[f] - share[f], f))[:max_items - sum(take.values())]:
            take[f] += 1
        return sorted(i for f, g in groups.items() for i in g[:take[f]])


class _BoundedCache(dict):
    """A dict that forgets its oldest entries past max_bytes (log-mels of T and T_timbre: ~65 MB at 128 excerpts)."""

    def __init__(self, max_bytes: int):
        super().__init__()
        self.max_bytes, self.nbytes = max_bytes, 0

    def put(self, key, value: np.ndarray) -> None:
        self[key] = value
        self.nbytes += value.nbytes
        while self.nbytes > self.max_bytes and len(self) > 1:
            oldest = next(iter(self))
            self.nbytes -= self.pop(oldest).nbytes


_LOGMEL_CACHE = _BoundedCache(max_bytes=512 * 2**20)


__all__ = ["EvaluationData", "Truth", "TEST_POOL", "TIMBRE_POOL", "NOISY_POOL", "RECORDING_POOLS", "REQUIRED_POOLS"]
