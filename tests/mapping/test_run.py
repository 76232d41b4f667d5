"""mapping.run.predict hears every recording pool the data has: h_noisy where T_noisy exists, and, on data made
before T_noisy, no h_noisy at all (absent -- not an empty transcription scored as zero)."""
import json
from pathlib import Path

import factories
import numpy as np
import soundfile as sf

from lmm_utils.core.motion import Performance, PerformedNote
from lmm_utils.core.score import ScoreNote
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.mapping.run import predict

SR = 16000
IDS = ("a", "b", "c")


class _H:
    def __init__(self):
        self.heard = 0

    def transcribe(self, logmel, cfg=None):
        self.heard += 1
        return Performance([PerformedNote(60, 0.0, 0.5, 64)])


class _G:
    def perform(self, scores):
        return [Performance([]) for _ in scores]


def _project(root: Path, pools: tuple[str, ...]) -> EvaluationData:
    (root / "data/scores").mkdir(parents=True)
    (root / "data/scores/T.jsonl").write_text("".join(
        json.dumps(factories.excerpt([ScoreNote(60, 0.0, 1.0, 0)], id=i, collection="essenFolksong").to_dict()) + "\n"
        for i in IDS))
    t = np.arange(SR // 2) / SR
    for pool in pools:
        (root / "data/audio" / pool).mkdir(parents=True)
        for i in IDS:
            sf.write(root / "data/audio" / pool / f"{i}.flac", 0.1 * np.sin(2 * np.pi * 262 * t), SR)
    return EvaluationData(root)


def test_predict_hears_t_noisy_only_where_the_data_has_it(tmp_path):
    h = _H()
    preds, ids = predict({"h": h, "g": _G()}, _project(tmp_path / "old", ("T", "T_timbre")))
    assert ids == list(IDS) and set(preds) == {"h", "h_timbre", "g"} and h.heard == 2 * len(IDS)
    preds, _ = predict({"h": _H(), "g": _G()}, _project(tmp_path / "new", ("T", "T_timbre", "T_noisy")))
    assert set(preds) == {"h", "h_timbre", "h_noisy", "g"} and sorted(preds["h_noisy"]) == list(IDS)
