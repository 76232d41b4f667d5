"""Transcribe a folder of recordings with Basic Pitch (Bittner et al., ICASSP 2022) -> <out>/<stem>.mid.

Runs in .venv-bp (`make basic-pitch`), which has basic-pitch, onnxruntime and the few packages its ONNX
path imports -- not torch, not the project's dependencies; only the standard library and lmm_utils.core.io
(stdlib only) are imported from here.

    .venv-bp/bin/python -m lmm_utils.evaluation.peers.basic_pitch_run data/audio/T data/peers/basic_pitch/T \
        data/audio/T_timbre data/peers/basic_pitch/T_timbre

Any number of (recordings folder, MIDI folder) pairs: the model is loaded once for all of them (the references stage
passes every pool and level in one call; a process per folder cost ~4 s of start and model load each).
Basic Pitch's own defaults are used (onset 0.5, frame 0.3, minimum note 127.7 ms, melodia trick): a peer
is run as its users run it, never tuned on T. The last line printed is a JSON list, one summary per pair.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")
SETTINGS = {"onset_threshold": 0.5, "frame_threshold": 0.3, "minimum_note_length": 127.70, "melodia_trick": True}


def load_model(threads: int = 0):
    """Basic Pitch's ONNX model -> (model, its path). threads: onnxruntime's intra-op threads (0: its default, one per
    core), so that shards side by side do not each spin a thread on every core."""
    logging.disable(logging.WARNING)  # basic_pitch warns at import about every backend it does not find
    import basic_pitch  # deferred: runs in .venv-bp, the peer's own environment
    from basic_pitch.inference import Model  # deferred: runs in .venv-bp, the peer's own environment

    model_path = basic_pitch.build_icassp_2022_model_path(basic_pitch.FilenameSuffix.onnx)
    if not threads:
        return Model(model_path), model_path
    import onnxruntime as ort  # deferred: runs in .venv-bp, the peer's own environment

    session = ort.InferenceSession  # Model builds its session with no options: give it ours, then put it back
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    ort.InferenceSession = lambda path, sess_options=None, **kw: session(path, sess_options or options, **kw)
    try:
        return Model(model_path), model_path
    finally:
        ort.InferenceSession = session


def audio_files(audio_dir: Path, limit: int | None = None) -> list[Path]:
    """The recordings Basic Pitch reads from a folder: its audio suffixes, sorted, the first `limit`."""
    return sorted(f for f in Path(audio_dir).iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)[:limit]


def transcribe_folder(audio_dir: Path, out_dir: Path, limit: int | None = None, loaded=None,
                      shard: tuple[int, int] = (0, 1)) -> dict:
    """One folder of recordings -> <out_dir>/<stem>.mid; `loaded` = load_model() (loaded here when None). shard (i, n):
    only files i, i + n, i + 2n, ... of the folder's sorted list (n processes share a folder)."""
    from basic_pitch.inference import predict  # deferred: runs in .venv-bp, the peer's own environment
    from tqdm import tqdm  # deferred: runs in .venv-bp, the peer's own environment

    from lmm_utils.core.io import atomic_path  # deferred: runs in .venv-bp, the peer's own environment

    model, model_path = loaded or load_model()
    files = audio_files(audio_dir, limit)[shard[0]::shard[1]]
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, start = {}, time.time()
    for f in tqdm(files, desc=f"basic-pitch {out_dir.name}", mininterval=2.0):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per file
                _, midi, _ = predict(str(f), model, **SETTINGS)
            with atomic_path(out_dir / f"{f.stem}.mid") as tmp:
                midi.write(str(tmp))
        except Exception as exc:  # a bad file is reported, the batch goes on
            failed[f.name] = f"{type(exc).__name__}: {exc}"
    return {"files": len(files), "written": len(files) - len(failed), "failed": failed,
            "seconds": round(time.time() - start, 1), "model": f"basic-pitch {_version()} ONNX ({model_path.name})",
            "settings": SETTINGS}


def warm_up(loaded=None) -> float:
    """Transcribe two seconds of a synthetic two-note chord once -> seconds. On a fresh .venv-bp this compiles the
    numba code of librosa that Basic Pitch reaches (~25 s on this machine) into the venv's cache, at
    install time (`make basic-pitch`) instead of inside the references stage, where each shard would compile it."""
    import tempfile  # deferred: only the install-time warm-up writes a file

    import numpy as np  # deferred: runs in .venv-bp, the peer's own environment
    import soundfile as sf  # deferred: runs in .venv-bp, the peer's own environment

    sr = 22050
    t = np.arange(2 * sr) / sr
    chord = 0.2 * (np.sin(2 * np.pi * 261.63 * t) + np.sin(2 * np.pi * 392.0 * t)) * np.exp(-t)
    with tempfile.TemporaryDirectory() as tmp:
        audio_dir = Path(tmp) / "audio"
        audio_dir.mkdir()
        sf.write(audio_dir / "warm_up.wav", chord.astype(np.float32), sr)
        start = time.time()
        summary = transcribe_folder(audio_dir, Path(tmp) / "midi", loaded=loaded)
    if folder_failed(summary):
        raise RuntimeError(f"Basic Pitch warm-up failed: {summary['failed']}")
    return time.time() - start


def folder_pairs(folders: list[Path]) -> list[tuple[Path, Path]]:
    """[audio_dir, out_dir, audio_dir, out_dir, ...] -> [(audio_dir, out_dir), ...]; a clear error otherwise."""
    if not folders or len(folders) % 2:
        raise ValueError(f"expected (recordings folder, MIDI folder) pairs, got {len(folders)} path(s)")
    pairs = list(zip(folders[::2], folders[1::2]))
    missing = [str(a) for a, _ in pairs if not a.is_dir()]
    if missing:
        raise ValueError(f"not a folder: {', '.join(missing)}")
    return pairs


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N; a clear error otherwise."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N (e.g. 0/2), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def _version() -> str:
    from importlib.metadata import version  # deferred: runs in .venv-bp, the peer's own environment

    return version("basic-pitch")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lmm_utils.evaluation.peers.basic_pitch_run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="*", metavar="AUDIO_DIR OUT_DIR",
                   help="one or more pairs: a folder of recordings, the folder its MIDI files go to")
    p.add_argument("--limit", type=int, default=None, help="only the first N files of each folder (smoke tests)")
    p.add_argument("--shard", default="0/1", help="I/N: files I, I+N, I+2N, ... of each folder (N processes share them)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default, every core)")
    p.add_argument("--warm-up", action="store_true",
                   help="transcribe a synthetic chord once (compiles numba's caches at install time), no folders")
    args = p.parse_args(argv)
    if args.warm_up:
        print(f"basic-pitch warm-up: {warm_up(load_model(args.threads)):.1f} s")
        return
    try:
        pairs = folder_pairs(args.folders)
        shard = parse_shard(args.shard)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    loaded = load_model(args.threads)
    summaries = [transcribe_folder(a, o, args.limit, loaded, shard) for a, o in pairs]
    print(json.dumps(summaries))
    # a shard sees only part of a folder: whether a whole folder failed is for the caller to decide from the merge
    sys.exit(1 if shard[1] == 1 and any(folder_failed(s) for s in summaries) else 0)


def folder_failed(summary: dict) -> bool:
    """Every file of the folder failed (some were there, none written)."""
    return bool(summary["failed"]) and not summary["written"]


if __name__ == "__main__":
    main()
