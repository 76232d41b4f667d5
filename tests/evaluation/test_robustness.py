"""The robustness table: h and the Basic Pitch peer at three recording levels, on T_timbre and on T_noisy; T_noisy
rows only where the data has T_noisy; a peer that did not run has no rows; the peer stage transcribes T's
recordings re-levelled exactly as h hears them."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import Performance, PerformedNote, write_midi
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.evaluation import robustness
from lmm_utils.evaluation.levels import LEVELS_DBFS, level_folder
from lmm_utils.evaluation.peers import stage as peers

SR = 16000


def _truth() -> Truth:
    perf = Performance([PerformedNote(57, 0.1, 0.6, 80), PerformedNote(64, 0.7, 1.2, 80)])
    return Truth({"a": perf, "b": perf}, {"a": "essenFolksong", "b": "bachChorales"})


def _peer(root: Path, truth: Truth, folders: dict[str, float], available: bool = True) -> Path:
    """data/peers/basic_pitch/<folder>/<id>.mid keeping a fraction of the true notes (1.0 = all, 0.5 = the first)."""
    d = root / "basic_pitch"
    d.mkdir(parents=True)
    (d / "status.json").write_text(json.dumps({"available": available}))
    for folder, keep in folders.items():
        (d / folder).mkdir()
        for i, p in truth.perf.items():
            write_midi(Performance(p.notes[:max(1, int(len(p.notes) * keep))]), d / folder / f"{i}.mid")
    return root


def test_peer_rows_cover_the_folders_it_has_with_their_spread(tmp_path):
    truth = _truth()
    folders = {"T": 1.0, **{level_folder(lv): keep for lv, keep in zip(LEVELS_DBFS, (0.5, 1.0, 1.0))},
               "T_timbre": 1.0}  # no T_noisy: a peer run before T_noisy existed
    rows = robustness.robustness_table({}, EvaluationData(tmp_path), truth, peers_dir=_peer(tmp_path, truth, folders))
    alls = {r["recordings"]: r for r in rows if r["subset"] == "all"}
    assert set(alls) == {"T as recorded", "T at -45 dBFS", "T at -25 dBFS", "T at -6 dBFS", "T_timbre as recorded"}
    assert {r["method"] for r in rows} == {"basic_pitch (peer)"} and {r["run"] for r in rows} == {"peer"}
    assert alls["T at -45 dBFS"]["note_f1"] == pytest.approx(2 / 3) and alls["T at -6 dBFS"]["note_f1"] == 1.0
    assert alls["T as recorded"]["level_spread"] == pytest.approx(1 / 3)
    assert {r["subset"] for r in rows} == {"all", "folk", "chorales"}


def test_a_peer_that_did_not_run_has_no_rows(tmp_path):
    truth = _truth()
    root = _peer(tmp_path, truth, {"T": 1.0}, available=False)
    assert robustness.robustness_table({}, EvaluationData(tmp_path), truth, peers_dir=root) == []
    assert robustness.robustness_table({}, EvaluationData(tmp_path), truth, peers_dir=tmp_path / "none") == []


def _recordings(root: Path, pools: tuple[str, ...], ids: list[str]) -> None:
    t = np.arange(SR) / SR
    for pool in pools:
        (root / "data/audio" / pool).mkdir(parents=True)
        for k, i in enumerate(ids):
            sf.write(root / "data/audio" / pool / f"{i}.flac", 0.01 * (k + 1) * np.sin(2 * np.pi * 220 * t), SR)


def test_h_rows_have_t_noisy_only_where_the_data_has_it(tmp_path):
    import torch

    from lmm_utils.methods.wrappers import make_h
    from lmm_utils.models.transcriber import TranscriberConfig

    truth = _truth()
    torch.manual_seed(0)
    h = make_h(TranscriberConfig.tiny(), FeatureConfig())
    _recordings(tmp_path / "old", ("T", "T_timbre"), truth.ids)
    _recordings(tmp_path / "new", ("T", "T_timbre", "T_noisy"), truth.ids)
    old = robustness.h_rows(h, EvaluationData(tmp_path / "old"), truth, FeatureConfig())
    new = robustness.h_rows(h, EvaluationData(tmp_path / "new"), truth, FeatureConfig())
    assert "T_noisy as recorded" not in {r["recordings"] for r in old}
    assert {r["recordings"] for r in new} == {c[0] for c in robustness.conditions()}


def test_peer_stage_transcribes_t_at_each_level(tmp_path, monkeypatch):
    """With Basic Pitch present (its subprocess faked), each pool with recordings and each level gets a folder;
    the re-levelled files are float WAV at the asked RMS; T_noisy without recordings: skipped."""
    _recordings(tmp_path, ("T", "T_timbre"), ["a", "b"])
    heard: dict[str, list[float]] = {}

    def fake_transcribe(py, root, jobs, limit):
        out = []
        for audio_dir, out_dir in jobs:
            out_dir.mkdir(parents=True)
            files = sorted(Path(audio_dir).iterdir())
            heard[out_dir.name] = [20 * np.log10(np.sqrt(np.mean(sf.read(f)[0] ** 2))) for f in files]
            for f in files:
                write_midi(Performance([]), out_dir / f"{f.stem}.mid")
            out.append({"files": len(files), "written": len(files)})
        return out

    monkeypatch.setattr(peers, "bp_python", lambda root: Path("/fake/python"))
    monkeypatch.setattr(peers, "transcribe", fake_transcribe)
    status = peers.run(tmp_path)
    assert set(status["pools"]) == {"T", "T_timbre", *(level_folder(lv) for lv in LEVELS_DBFS)}
    for lv in LEVELS_DBFS:
        assert heard[level_folder(lv)] == pytest.approx([lv, lv], abs=1e-3)
    assert (tmp_path / peers.OUT / level_folder(-6.0) / "a.mid").is_file()
    assert not (tmp_path / peers.OUT / "T_noisy").exists()


def test_robustness_items_restrict_the_relevelled_runs_and_the_table_to_one_subset(tmp_path, monkeypatch):
    """evaluation.robustness_items: Basic Pitch's level runs and the table's rows cover the same stratified subset
    (EvaluationData.eval_ids), while the as-recorded pools stay whole; None keeps everything."""
    _recordings(tmp_path, ("T", "T_timbre"), ["a", "b"])
    monkeypatch.setattr(EvaluationData, "eval_ids", lambda self, n=None: ["b"] if n else ["a", "b"])
    heard: dict[str, list[str]] = {}

    def fake_transcribe(py, root, jobs, limit):
        for audio_dir, out_dir in jobs:
            out_dir.mkdir(parents=True)
            heard[out_dir.name] = sorted(f.stem for f in Path(audio_dir).iterdir())
        return [{"files": len(heard[o.name]), "written": len(heard[o.name])} for _, o in jobs]

    monkeypatch.setattr(peers, "bp_python", lambda root: Path("/fake/python"))
    monkeypatch.setattr(peers, "transcribe", fake_transcribe)
    peers.run(tmp_path, robustness_items=1)
    assert heard["T"] == ["a", "b"] and all(heard[level_folder(lv)] == ["b"] for lv in LEVELS_DBFS)
    data = EvaluationData(tmp_path)
    assert robustness.subset_truth(data, _truth(), 1).ids == ["b"]
    assert robustness.subset_truth(data, _truth(), None).ids == _truth().ids


def test_items_restrict_the_peer_pools_to_the_runs_subset_and_the_robustness_one(tmp_path, monkeypatch):
    """items (mapping.eval.max_items): each pool is transcribed on the runs' scored subset plus the robustness subset
    only -- one Basic Pitch call for every folder -- and the status says how many excerpts that is."""
    _recordings(tmp_path, ("T", "T_timbre"), ["a", "b", "c", "d"])
    monkeypatch.setattr(EvaluationData, "eval_ids",
                        lambda self, n=None: {None: ["a", "b", "c", "d"], 1: ["c"], 2: ["a", "b"]}[n])
    calls: list[list[str]] = []
    heard: dict[str, list[str]] = {}

    def fake_transcribe(py, root, jobs, limit):
        calls.append([o.name for _, o in jobs])
        for audio_dir, out_dir in jobs:
            heard[out_dir.name] = sorted(f.stem for f in Path(audio_dir).iterdir())
        return [{"files": len(heard[o.name]), "written": len(heard[o.name])} for _, o in jobs]

    monkeypatch.setattr(peers, "bp_python", lambda root: Path("/fake/python"))
    monkeypatch.setattr(peers, "transcribe", fake_transcribe)
    status = peers.run(tmp_path, robustness_items=1, items=2)
    assert len(calls) == 1 and set(calls[0]) == {"T", "T_timbre", *(level_folder(lv) for lv in LEVELS_DBFS)}
    assert heard["T"] == heard["T_timbre"] == ["a", "b", "c"] and status["items"] == 3
    assert all(heard[level_folder(lv)] == ["c"] for lv in LEVELS_DBFS)
    assert peers.run(tmp_path, robustness_items=1, items=None)["items"] is None
    assert heard["T"] == ["a", "b", "c", "d"]


def test_basic_pitch_run_takes_folder_pairs_and_refuses_an_odd_count(tmp_path):
    from lmm_utils.evaluation.peers.basic_pitch_run import folder_pairs

    (tmp_path / "a").mkdir()
    assert folder_pairs([tmp_path / "a", tmp_path / "out"]) == [(tmp_path / "a", tmp_path / "out")]
    with pytest.raises(ValueError, match="pairs"):
        folder_pairs([tmp_path / "a", tmp_path / "out", tmp_path / "a"])
    with pytest.raises(ValueError, match="not a folder"):
        folder_pairs([tmp_path / "nope", tmp_path / "out"])


def test_h_rows_read_the_runs_own_transcriptions_of_as_recorded_pools_and_transcribe_the_rest(tmp_path):
    """An as-recorded excerpt the run transcribed is scored from its predictions (the notes its table scored), an
    excerpt it lacks and every re-levelled take are transcribed by h."""
    from lmm_utils.evaluation.predictions import StoredSystem

    truth = _truth()
    _recordings(tmp_path, ("T", "T_timbre"), truth.ids)
    asked: list[int] = []

    class CountingH:
        def transcribe(self, logmel, cfg=None):
            asked.append(logmel.shape[1])
            return Performance([])

    exact = {i: truth.perf[i].to_dict() for i in truth.ids}
    stored = {"T": StoredSystem(exact), "T_timbre": StoredSystem({truth.ids[0]: exact[truth.ids[0]]})}
    rows = robustness.h_rows(CountingH(), EvaluationData(tmp_path), truth, FeatureConfig(), stored=stored)
    f1 = {r["recordings"]: r["note_f1"] for r in rows if r["subset"] == "all"}
    assert f1["T as recorded"] == 1.0  # read back: the truth itself, as stored
    n = len(truth.ids)
    assert len(asked) == n * len(LEVELS_DBFS) + (n - 1)  # every level, and T_timbre's excerpt the run lacks
    assert f1["T at -25 dBFS"] == 0.0


def test_basic_pitch_shards_parse_and_refuse_nonsense():
    from lmm_utils.evaluation.peers.basic_pitch_run import parse_shard

    assert parse_shard("1/2") == (1, 2) and parse_shard("0/1") == (0, 1)
    for bad in ("2/2", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_peer_transcription_runs_a_shard_per_core_and_merges_each_folders_summaries(tmp_path, monkeypatch):
    """Two cores: two Basic Pitch processes, each with --shard i/2 and one onnxruntime thread; each folder's summary
    adds the shards' files, joins their failures and keeps the longest shard's seconds."""
    (tmp_path / "in").mkdir()
    for k in range(5):
        (tmp_path / "in" / f"x{k}.flac").write_bytes(b"")
    fake = _fake_basic_pitch(tmp_path, written="2")
    monkeypatch.setattr(peers, "usable_cores", lambda: 2)
    (out,) = peers.transcribe(fake, tmp_path, [(tmp_path / "in", tmp_path / "out")], limit=None)
    assert out == {"files": 5, "written": 4, "failed": {"x1.flac": "bad"}, "seconds": 2.0, "model": "fake"}
    for i in (0, 1):
        args = json.loads((tmp_path / f"python.{i}-2").read_text())
        assert args[args.index("--threads") + 1] == "1" and str(tmp_path / "in") in args
    # one shard failing on all of its files is not the folder failing: only the merge can say that
    fake = _fake_basic_pitch(tmp_path, written="0 if i else 2")
    assert peers.transcribe(fake, tmp_path, [(tmp_path / "in", tmp_path / "out")], limit=None)[0]["written"] == 2
    with pytest.raises(RuntimeError, match="every file"):
        peers.transcribe(_fake_basic_pitch(tmp_path, written="0", fail_all=True), tmp_path,
                         [(tmp_path / "in", tmp_path / "out")], limit=None)
    monkeypatch.setattr(peers, "usable_cores", lambda: 8)  # no more shards than files
    peers.transcribe(_fake_basic_pitch(tmp_path, written="1"), tmp_path, [(tmp_path / "in", tmp_path / "out")], limit=3)
    assert (tmp_path / "python.2-3").is_file() and not list(tmp_path.glob("python.*-8"))


def _fake_basic_pitch(tmp_path, written: str, fail_all: bool = False):
    """A stand-in for .venv-bp's python: records its arguments per shard, prints one summary (file counts by shard)."""
    fake = tmp_path / "python"
    failed = "{f'x{i}.flac': 'bad'}" if not fail_all else "{f'y{i}.flac': 'bad'}"
    fake.write_text("#!/usr/bin/env python3\n"
                    "import json, sys\n"
                    "args = sys.argv[1:]\n"
                    "shard = args[args.index('--shard') + 1] if '--shard' in args else '0/1'\n"
                    "open(sys.argv[0] + '.' + shard.replace('/', '-'), 'w').write(json.dumps(args))\n"
                    "i = int(shard.split('/')[0])\n"
                    f"failed = {failed} if (i or {fail_all}) else {{}}\n"
                    f"print(json.dumps([{{'files': 2 + i, 'written': {written}, 'failed': failed,\n"
                    "                   'seconds': 1.0 + i, 'model': 'fake'}]))\n")
    fake.chmod(0o755)
    return fake


def test_a_peer_folder_never_asked_for_some_excerpts_is_left_out_not_scored_as_silence(tmp_path):
    """The references stage transcribes the runs' subset: a truth with more excerpts leaves that peer system out
    (named in the note); a file the peer failed on is still an empty transcription."""
    from lmm_utils.evaluation.scoring import score_peers

    truth = _truth()
    peers_dir = _peer(tmp_path, Truth({"a": truth.perf["a"]}, {"a": truth.collection["a"]}), {"T": 1.0})
    rows, notes = score_peers(peers_dir, truth, cache_dir=None)
    assert rows == [] and notes["basic_pitch"]["not_transcribed"] == {"T": 1}
    (peers_dir / "basic_pitch/status.json").write_text(
        json.dumps({"available": True, "pools": {"T": {"failed": {"b.flac": "x"}}}}))
    rows, notes = score_peers(peers_dir, truth, cache_dir=None)
    assert rows and "not_transcribed" not in notes["basic_pitch"]


def test_basic_pitch_run_needs_folders_unless_warming_up(capsys):
    """`--warm-up` (make basic-pitch) takes no folders; without it, no folders is an error, not a silent no-op."""
    from lmm_utils.evaluation.peers.basic_pitch_run import main

    with pytest.raises(SystemExit, match="pairs"):
        main([])


def test_a_run_is_re_transcribed_with_the_decoding_it_recorded(tmp_path):
    """The re-levelled rows decode as the run's own predictions did: metrics.json's `decode`; a run made before the
    record decoded without harmonic suppression."""
    from lmm_utils.models.transcriber import DecodeConfig

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    (old / "metrics.json").write_text(json.dumps({"run": "old"}))
    (new / "metrics.json").write_text(json.dumps({"run": "new", "decode": {"harmonic_ratio": 0.6, "min_frames": 3}}))
    assert robustness.run_decoding(old) == DecodeConfig(harmonic_ratio=0.0)
    assert robustness.run_decoding(new) == DecodeConfig(harmonic_ratio=0.6, min_frames=3)
