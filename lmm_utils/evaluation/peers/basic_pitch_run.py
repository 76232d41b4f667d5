"""Transcribe a folder of recordings with Basic Pitch (Bittner et al., ICASSP 2022) -> <out>/<stem>.mid.

Runs in .venv-bp (`make basic-pitch`), which has basic-pitch, onnxruntime and the few packages its ONNX
path imports -- not torch, not the project's dependencies; only the standard library and lmm_utils.core.io
(stdlib only) are imported from here.

    .venv-bp/bin/python -m lmm_utils.evaluation.peers.basic_pitch_run data/audio/T data/peers/basic_pitch/T

Basic Pitch's own defaults are used (onset 0.5, frame 0.3, minimum note 127.7 ms, melodia trick): a peer
is run as its users run it, never tuned on T. The last line printed is a JSON summary.
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


def transcribe_folder(audio_dir: Path, out_dir: Path, limit: int | None = None) -> dict:
    logging.disable(logging.WARNING)  # basic_pitch warns at import about every backend it does not find
    import basic_pitch  # deferred: runs in .venv-bp, the peer's own environment
    from basic_pitch.inference import Model, predict  # deferred: runs in .venv-bp, the peer's own environment
    from tqdm import tqdm  # deferred: runs in .venv-bp, the peer's own environment

    from lmm_utils.core.io import atomic_path  # deferred: runs in .venv-bp, the peer's own environment

    model_path = basic_pitch.build_icassp_2022_model_path(basic_pitch.FilenameSuffix.onnx)
    model = Model(model_path)
    files = sorted(f for f in audio_dir.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, start = {}, time.time()
    for f in tqdm(files, desc=f"basic-pitch {audio_dir.name}", mininterval=2.0):
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


def _version() -> str:
    from importlib.metadata import version  # deferred: runs in .venv-bp, the peer's own environment

    return version("basic-pitch")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lmm_utils.evaluation.peers.basic_pitch_run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("audio_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--limit", type=int, default=None, help="only the first N files (smoke tests)")
    args = p.parse_args(argv)
    if not args.audio_dir.is_dir():
        sys.exit(f"error: {args.audio_dir} is not a folder")
    summary = transcribe_folder(args.audio_dir, args.out_dir, args.limit)
    print(json.dumps(summary))
    sys.exit(1 if summary["failed"] and not summary["written"] else 0)


if __name__ == "__main__":
    main()
