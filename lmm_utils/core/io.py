"""Small file helpers. Every output is written to a temporary name and renamed when complete, so an
interrupted stage never leaves a file that looks finished."""
from __future__ import annotations

import json
import math
import numbers
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole folder under a temporary name, then swap it in (replacing any old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def jsonable(x):
    """JSON-safe for metrics files: NaN/inf -> None, numpy scalars -> numbers, tuples -> lists, other objects
    -> str (dvc metrics and strict JSON both choke on NaN)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (int, np.integer)):
        return int(x)
    return str(x)


def write_json(obj, path: str | Path) -> None:
    """Atomically, as strict JSON (jsonable: NaN -> null, numpy -> numbers)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=False) + "\n")


MAX_HEADLINE = 10  # numbers per headline file: `dvc metrics show` sets the keys of all files side by side, as columns


def write_headline(values: dict, path: str | Path, digits: int = 4) -> dict:
    """A stage's headline metrics (the file DVC declares as `metrics:`): flat, at most MAX_HEADLINE keys, each a
    number, a short string or None (left out); floats rounded to `digits` decimals. -> what was written."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            raise TypeError(f"headline {key!r}: {type(value).__name__} is not a number or a string")
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif isinstance(value, numbers.Real):
            if not math.isfinite(value):
                continue
            value = round(float(value), digits)
        out[key] = value
    if len(out) > MAX_HEADLINE:
        raise ValueError(f"{len(out)} headline numbers for {path} (at most {MAX_HEADLINE}): {sorted(out)}")
    write_json(out, path)
    return out


def is_timing_key(key: str) -> bool:
    """Wall-clock measurements written beside results (*seconds*, *per_s, synth's `speed` block): they differ
    between two runs of the same computation, so content fingerprints leave them out."""
    return "seconds" in key or key.endswith("per_s") or key == "speed"


def untimed(obj):
    """A JSON value without its timing keys (at any depth)."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not is_timing_key(k)}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_jsonl(rows: Iterable[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
