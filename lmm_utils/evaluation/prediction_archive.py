"""A run's predictions in the committed results folders (reports/<profile>/predictions/<run>.npz.xz): the same note
lists as the run's own predictions.json.gz (evaluation.predictions), lossless, in integer columns.

Why a second form: the paper profile's 264 runs come to 96 MB as gzip'd JSON, over the 50 MB the results issue allows
a committed folder; as columns of small integers (onsets as steps from the previous note, offsets as durations) under
xz they take ~2.5x less. The file is a plain .npz (numpy's zip of .npy arrays) compressed with xz, so anyone reads
it with numpy and the standard library alone:

    import lzma, io, numpy as np
    z = np.load(io.BytesIO(lzma.decompress(open("lmm-K0-s0.npz.xz", "rb").read())))
    z["h.ids"], z["h.n_notes"], z["h.pitch"], z["h.onset_step"], z["h.duration"], z["h.velocity"], ...

Per system s (h, h_timbre, h_noisy, g), excerpt by excerpt in the order of `s.ids`: `s.n_notes` notes, whose
pitch, onset (cumulative sum of onset_step within the excerpt, in TICK-second units), offset (onset + duration) and
velocity are the columns; `s.n_pedal` pedal events with their `pedal_time` (ticks) and `pedal_down`. Times in the
run's file are rounded to 10 us (core.motion.Performance.to_dict), so integer ticks of 10 us hold them exactly, and
decode(encode(doc)) == doc (checked for every run when a folder is collected).
"""
from __future__ import annotations

import io
import lzma
import zipfile
from pathlib import Path

import numpy as np

ARCHIVE_SUFFIX = ".npz.xz"
TICKS_PER_SECOND = 100_000  # 10 us: the resolution of a run's predictions file
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed member time: the same predictions give the same bytes


def _ticks(seconds: np.ndarray) -> np.ndarray:
    return np.rint(seconds * TICKS_PER_SECOND).astype(np.int64)


def encode(systems: dict[str, dict[str, dict]]) -> dict[str, np.ndarray]:
    """{system: {id: {"notes": [[pitch, onset, offset, velocity]], "pedal": [[time, down]]}}} -> named columns."""
    arrays: dict[str, np.ndarray] = {}
    for s, perfs in sorted(systems.items()):
        ids = sorted(perfs)
        notes = [np.asarray(perfs[i]["notes"], np.float64).reshape(-1, 4) for i in ids]
        pedal = [np.asarray(perfs[i].get("pedal", []), np.float64).reshape(-1, 2) for i in ids]
        n = np.concatenate(notes) if notes else np.zeros((0, 4))
        onset = [_ticks(x[:, 1]) for x in notes]
        steps = np.concatenate([np.diff(o, prepend=0) for o in onset]) if notes else np.zeros(0, np.int64)
        p = np.concatenate(pedal) if pedal else np.zeros((0, 2))
        arrays.update({
            f"{s}.ids": np.array(ids, dtype=str),
            f"{s}.n_notes": np.array([len(x) for x in notes], np.int32),
            f"{s}.pitch": n[:, 0].astype(np.uint8),
            f"{s}.onset_step": steps.astype(np.int32),
            f"{s}.duration": (_ticks(n[:, 2]) - _ticks(n[:, 1])).astype(np.int32),
            f"{s}.velocity": n[:, 3].astype(np.uint8),
            f"{s}.n_pedal": np.array([len(x) for x in pedal], np.int32),
            f"{s}.pedal_time": _ticks(p[:, 0]).astype(np.int32),
            f"{s}.pedal_down": p[:, 1].astype(np.uint8),
        })
    return arrays


def _seconds(ticks: np.ndarray) -> list[float]:
    # ticks / 1e5 is the double nearest the decimal the run's file wrote (both are correctly rounded)
    return [int(t) / TICKS_PER_SECOND for t in ticks]


def decode(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, dict]]:
    """encode's inverse: the systems' documents as the run's predictions file holds them."""
    systems = sorted({k.rsplit(".", 1)[0] for k in arrays})
    out: dict[str, dict[str, dict]] = {}
    for s in systems:
        ids = [str(i) for i in arrays[f"{s}.ids"]]
        for count, column in (("n_notes", "pitch"), ("n_pedal", "pedal_time")):
            if int(arrays[f"{s}.{count}"].sum()) != len(arrays[f"{s}.{column}"]) or len(arrays[f"{s}.{count}"]) != len(ids):
                raise ValueError(f"system {s}: {count} does not match the {column} column (a damaged archive)")
        note_ends = np.cumsum(arrays[f"{s}.n_notes"])
        pedal_ends = np.cumsum(arrays[f"{s}.n_pedal"])
        out[s] = {}
        for k, i in enumerate(ids):
            a, b = (note_ends[k - 1] if k else 0), note_ends[k]
            onset = np.cumsum(arrays[f"{s}.onset_step"][a:b].astype(np.int64))
            offset = onset + arrays[f"{s}.duration"][a:b]
            pa, pb = (pedal_ends[k - 1] if k else 0), pedal_ends[k]
            out[s][i] = {
                "notes": [[int(p), on, off, int(v)] for p, on, off, v in
                          zip(arrays[f"{s}.pitch"][a:b], _seconds(onset), _seconds(offset), arrays[f"{s}.velocity"][a:b])],
                "pedal": [[t, int(d)] for t, d in zip(_seconds(arrays[f"{s}.pedal_time"][pa:pb]),
                                                      arrays[f"{s}.pedal_down"][pa:pb])],
            }
    return out


def write_archive(systems: dict[str, dict[str, dict]], path: str | Path) -> None:
    """The systems' documents -> <path> (.npz.xz), refusing any that would not decode to the same document."""
    arrays = encode(systems)
    if decode(arrays) != systems:
        raise ValueError(f"{path}: these predictions do not survive the archive's integer columns (times finer than "
                         f"1/{TICKS_PER_SECOND} s, or values out of range?); nothing was written")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # stored: xz compresses the whole
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr, allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME), member.getvalue())
    Path(path).write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def read_archive(path: str | Path) -> dict[str, dict[str, dict]]:
    """<path> (.npz.xz) -> {system: {id: performance dict}} (a clear error on a torn or foreign file)."""
    try:
        with np.load(io.BytesIO(lzma.decompress(Path(path).read_bytes())), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return decode(arrays)
    except (OSError, EOFError, ValueError, KeyError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable predictions archive ({type(exc).__name__}: {exc})") from exc


__all__ = ["ARCHIVE_SUFFIX", "TICKS_PER_SECOND", "encode", "decode", "write_archive", "read_archive"]
