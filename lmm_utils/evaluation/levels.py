"""Recording levels for the robustness table: T's recordings re-levelled to a quiet take, an ordinary recording and
a hot master. Shared by the Basic Pitch peer stage (which transcribes the re-levelled recordings in its own venv) and
evaluation.robustness (which scores h and the peer on them), so both hear exactly the same audio.

T's recordings average -38 dBFS RMS (range -54 to -24); ordinary recordings sit near -20 dBFS with peaks near 0.
Each recording is scaled in float (nothing clips) to LEVELS_DBFS RMS, so a row differs from another only by level.
"""
from __future__ import annotations

import numpy as np

LEVELS_DBFS = (-45.0, -25.0, -6.0)  # a quiet take, an ordinary recording, a hot master (RMS)
SILENT_RMS = 1e-6  # below this a recording is left as it is (scaling silence would only amplify dither)


def at_rms_dbfs(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """The recording scaled to `dbfs` RMS (float; may exceed full scale, nothing is clipped)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return audio if rms < SILENT_RMS else (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def level_folder(dbfs: float) -> str:
    """A peer's folder of transcriptions of T re-levelled to `dbfs` (data/peers/<peer>/T_at_-45dBFS)."""
    return f"T_at_{dbfs:+.0f}dBFS"


__all__ = ["LEVELS_DBFS", "SILENT_RMS", "at_rms_dbfs", "level_folder"]
