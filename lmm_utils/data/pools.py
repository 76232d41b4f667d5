"""The four disjoint pools and the one door to the data.

U_V  unpaired scores           (training may read: scores, engravings)
U_A  unpaired audio            (training may read: audio only -- never its scores or motion)
P    the pair pool             (a mapping run reads the score + audio of its own K draws)
T    test                      (evaluation only: score, audio, T_timbre audio, ground-truth motion)

Pieces are split, not excerpts, and duplicates are removed first, so no tune reaches two pools.
Training code gets data through `TrainingData`, which refuses what a training stage may not read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from lmm_utils.core import paths
from lmm_utils.core.io import read_json, read_jsonl
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.corpus import Piece
from lmm_utils.data.excerpts import stable_seed

POOLS = paths.POOLS


class SplitError(ValueError):
    pass


class LeakageError(PermissionError):
    """Training code asked for data it must never see (test data, ground-truth motion, U_A scores)."""


def check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    missing = [p for p in POOLS if p not in fractions]
    extra = [p for p in fractions if p not in POOLS]
    if missing or extra:
        raise SplitError(f"split.fractions needs exactly the pools {list(POOLS)}; missing {missing}, unknown {extra}")
    bad = {p: f for p, f in fractions.items() if not isinstance(f, (int, float)) or f <= 0}
    if bad:
        raise SplitError(f"split.fractions must be positive numbers; got {bad}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise SplitError(f"split.fractions must sum to 1 (they sum to {total:.4f}): {fractions}")
    return {p: float(fractions[p]) for p in POOLS}


def split_pieces(pieces: list[Piece], fractions: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Assign each piece to one pool, stratified by collection so every pool holds every collection."""
    fractions = check_fractions(fractions)
    pools: dict[str, list[str]] = {p: [] for p in POOLS}
    by_collection: dict[str, list[str]] = {}
    for piece in pieces:
        by_collection.setdefault(piece.collection, []).append(piece.id)
    for collection, ids in sorted(by_collection.items()):
        ids = sorted(ids)
        order = np.random.default_rng(stable_seed(seed, collection)).permutation(len(ids))
        counts = _allocate(len(ids), fractions)
        cursor = 0
        for pool in POOLS:
            pools[pool] += [ids[i] for i in order[cursor:cursor + counts[pool]]]
            cursor += counts[pool]
    return {p: sorted(v) for p, v in pools.items()}


def _allocate(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder allocation; T and P get one piece each first when there are enough pieces."""
    counts = {p: int(np.floor(n * f)) for p, f in fractions.items()}
    rest = n - sum(counts.values())
    for p in sorted(fractions, key=lambda p: n * fractions[p] - counts[p], reverse=True)[:rest]:
        counts[p] += 1
    for needy in ("T", "P"):
        if counts[needy] == 0 and n >= len(POOLS):
            donor = max(counts, key=counts.get)
            counts[donor] -= 1
            counts[needy] += 1
    return counts


def check_disjoint(splits: dict) -> None:
    """Raise if a piece, an excerpt or a melody hash appears in two pools."""
    for key in ("pieces", "excerpts", "hashes"):
        seen: dict[str, str] = {}
        for pool in POOLS:
            for item in splits["pools"][pool][key]:
                ident = item["id"] if isinstance(item, dict) else item
                if ident in seen and seen[ident] != pool:
                    raise SplitError(f"{key[:-1]} {ident!r} is in both {seen[ident]} and {pool}")
                if ident in seen:
                    raise SplitError(f"{key[:-1]} {ident!r} appears twice in {pool}")
                seen[ident] = pool


@dataclass
class TrainingData:
    """What a training stage may read. Everything else raises `LeakageError`.

    Scores of U_V and P, audio of U_A and P, and nothing of T; never motion. A mapping run also
    restricts P to its own K draws with `restrict_pairs`.
    """

    root: Path = Path(".")
    allowed_pairs: frozenset[str] | None = None  # None: the whole pair pool (e.g. for LM pretraining)

    SCORE_POOLS = ("U_V", "P")
    AUDIO_POOLS = ("U_A", "P")

    def restrict_pairs(self, excerpt_ids: list[str]) -> TrainingData:
        return TrainingData(self.root, frozenset(excerpt_ids))

    def _check(self, pool: str, kind: str, allowed: tuple[str, ...]) -> None:
        if pool not in allowed:
            raise LeakageError(f"Training code may not read {kind} of pool {pool!r} (allowed: {allowed}).")

    def scores(self, pool: str) -> list[ScoreExcerpt]:
        self._check(pool, "scores", self.SCORE_POOLS)
        rows = read_jsonl(self.root / paths.scores_file(pool))
        return [ScoreExcerpt.from_dict(r) for r in rows if self._pair_ok(pool, r["id"])]

    def audio_ids(self, pool: str) -> list[str]:
        self._check(pool, "audio", self.AUDIO_POOLS)
        ids = [r["id"] for r in read_jsonl(self.root / paths.AUDIO_DIR / pool / "conditions.jsonl")]
        return [i for i in ids if self._pair_ok(pool, i)]

    def audio(self, pool: str, excerpt_id: str) -> tuple[np.ndarray, int]:
        self._check(pool, "audio", self.AUDIO_POOLS)
        if not self._pair_ok(pool, excerpt_id):
            raise LeakageError(f"Excerpt {excerpt_id!r} is not one of this run's K pairs.")

        audio, sr = sf.read(self.root / paths.audio_path(pool, excerpt_id), dtype="float32")
        return audio, sr

    def motion(self, pool: str):
        raise LeakageError("No training code may read ground-truth motion (M); only evaluation reads T's.")

    def _pair_ok(self, pool: str, excerpt_id: str) -> bool:
        return pool != "P" or self.allowed_pairs is None or excerpt_id in self.allowed_pairs


def load_splits(root: Path = Path(".")) -> dict:
    return read_json(root / paths.SPLITS)
