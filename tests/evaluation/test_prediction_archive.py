"""evaluation.prediction_archive: the committed folders' predictions, lossless against the run's own file."""
import io
import lzma

import numpy as np
import pytest

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.evaluation.prediction_archive import decode, encode, read_archive, write_archive
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, read_predictions_doc, write_predictions


def _doc(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    perfs = {}
    for i in range(5):
        onsets = np.sort(rng.uniform(0, 20, rng.integers(0, 40)))
        notes = [PerformedNote(int(rng.integers(21, 109)), float(t), float(t + rng.uniform(0.01, 3)),
                               int(rng.integers(1, 128))) for t in onsets]
        if i == 1:
            notes.append(PerformedNote(60, 5.0, 5.5, 64))  # out of onset order, as a decoder may give
        pedal = [PedalEvent(1.234567, True), PedalEvent(2.5, False)] if i == 2 else []
        perfs[f"x{i}"] = Performance(notes, pedal)
    write_predictions({"h": perfs, "g": {"x0": perfs["x0"]}, "h_noisy": {}}, tmp_path / PREDICTIONS_FILE)
    return read_predictions_doc(tmp_path / PREDICTIONS_FILE)


def test_archive_reads_back_the_same_document(tmp_path):
    doc = _doc(tmp_path)
    assert decode(encode(doc)) == doc  # every float to the bit: 10-us ticks hold the run file's rounded times
    write_archive(doc, tmp_path / "r.npz.xz")
    assert read_archive(tmp_path / "r.npz.xz") == doc
    assert read_predictions_doc(tmp_path / "r.npz.xz") == doc  # the one reader takes both forms
    again = tmp_path / "again.npz.xz"
    write_archive(doc, again)
    assert again.read_bytes() == (tmp_path / "r.npz.xz").read_bytes()  # deterministic bytes


def test_archive_is_a_plain_npz_under_xz(tmp_path):
    doc = _doc(tmp_path, seed=1)
    write_archive(doc, tmp_path / "r.npz.xz")
    z = np.load(io.BytesIO(lzma.decompress((tmp_path / "r.npz.xz").read_bytes())))
    assert list(z["h.ids"]) == sorted(doc["h"]) and int(z["h.n_notes"].sum()) == sum(len(p["notes"]) for p in
                                                                                    doc["h"].values())


def test_archive_refuses_what_it_cannot_hold_and_a_torn_file(tmp_path):
    with pytest.raises(ValueError, match="do not survive"):
        write_archive({"h": {"x": {"notes": [[60, 0.1234567, 0.5, 70]], "pedal": []}}}, tmp_path / "r.npz.xz")
    (tmp_path / "torn.npz.xz").write_bytes(b"not xz")
    with pytest.raises(ValueError, match="not a readable predictions archive"):
        read_archive(tmp_path / "torn.npz.xz")
