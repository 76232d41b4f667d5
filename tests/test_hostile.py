"""Hostile inputs, each with the clear message or the skip-and-report it gets: broken score files in a user
folder, odd audio (96 kHz, clipped, an hour long in bounded memory), broken params.yaml, broken checkpoints
given to the CLI, and notebooks whose parameters cell no longer matches params.yaml."""
import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import factories
import nbformat
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from lmm_utils.app import cli
from lmm_utils.app.inference import ChunkConfig, InputError, score_from_file, transcribe_file
from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS, Performance, PerformedNote, write_midi
from lmm_utils.core.params import ParamsError, load_params
from lmm_utils.data.corpus import list_user_works, parse_works
from lmm_utils.mapping.run import draw_pairs
from lmm_utils.pipeline.checks import KNOWN, Class, check_section
from lmm_utils.pipeline.stage import StageError, check_notebook_parameters

ROOT = Path(__file__).resolve().parents[1]

MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><key><fifths>0</fifths></key>
<time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
<note><pitch><step>G</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
</measure></part></score-partwise>
"""
ABC = "X:1\nT:tune\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|FEDC|]\n"
KERN = "**kern\n*M4/4\n=1\n4c\n4d\n4e\n4f\n==\n*-\n"


def _midi_bytes(tmp_path: Path, n_notes: int = 32) -> bytes:
    perf = Performance([PerformedNote(60 + i % 12, 0.25 * i, 0.25 * i + 0.2, 80) for i in range(n_notes)])
    write_midi(perf, tmp_path / "_.mid")
    return (tmp_path / "_.mid").read_bytes()


def _good_files(tmp_path: Path) -> dict[str, bytes]:
    return {"mid": _midi_bytes(tmp_path), "musicxml": MUSICXML.encode(), "abc": ABC.encode(), "krn": KERN.encode()}


# --- score files in a user folder -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["mid", "musicxml", "abc", "krn"])
def test_broken_score_files_are_skipped_with_their_reason(tmp_path, fmt):
    good = _good_files(tmp_path)[fmt]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"good.{fmt}").write_bytes(good)
    (folder / f"empty.{fmt}").write_bytes(b"")
    (folder / f"random.{fmt}").write_bytes(np.random.default_rng(0).integers(0, 256, 256, dtype=np.uint8).tobytes())
    cut = {"mid": len(good) // 2, "musicxml": len(good) // 2, "abc": ABC.index("K:"), "krn": KERN.index("==")}[fmt]
    (folder / f"truncated.{fmt}").write_bytes(good[:cut])
    (folder / f"huge.{fmt}").write_bytes(good + (b" " * 4096 if fmt != "mid" else b"\0" * 4096))
    works = list_user_works([str(folder)], max_mb=len(good) / 2**20 + 0.002)  # huge = over this limit
    pieces, skipped = parse_works(works, workers=1)
    assert [p.id for p in pieces] == ["user-mine-good"]
    reasons = {s["id"].removeprefix("user-mine-"): s["reason"] for s in skipped}
    assert set(reasons) == {"empty", "random", "truncated", "huge"}
    assert reasons["empty"] == "empty file"
    assert "over the" in reasons["huge"] and "corpus.max_file_mb" in reasons["huge"]
    expected_random = {"mid": "not a MIDI file", "musicxml": "not a MusicXML file", "abc": "not a text file",
                       "krn": "not a text file"}[fmt]
    assert expected_random in reasons["random"]
    expected_truncated = {"mid": "truncated MIDI file", "musicxml": "ParseError", "abc": "no K: (key) field",
                          "krn": "truncated kern file"}[fmt]
    assert expected_truncated in reasons["truncated"]


def test_user_files_sharing_a_name_get_distinct_ids(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    for name, data in (("tune.abc", ABC), ("tune.krn", KERN), ("sub/tune.abc", ABC)):
        (folder / name).write_text(data)
    ids = [w.id for w in list_user_works([str(folder)])]
    assert sorted(ids) == ["user-mine-sub_tune", "user-mine-tune_abc", "user-mine-tune_krn"]


def test_perform_refuses_a_truncated_or_huge_score(tmp_path):
    good = _midi_bytes(tmp_path)
    (tmp_path / "cut.mid").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="truncated MIDI file"):
        score_from_file(tmp_path / "cut.mid")
    (tmp_path / "ok.mid").write_bytes(good)
    with pytest.raises(InputError, match="over the"):
        score_from_file(tmp_path / "ok.mid", max_mb=len(good) / 2**20 / 2)


# --- audio --------------------------------------------------------------------------------------------------

class _LoudnessH:
    """A stand-in h (a trained one is not needed to test the reading): key C4 down wherever there is energy."""
    feat = FeatureConfig()

    def logits(self, logmel):
        active = torch.from_numpy(logmel.max(axis=0) > -2.0)
        out = {k: torch.full((N_KEYS, logmel.shape[1]), -10.0) for k in ("onset", "frame", "velocity")}
        out["frame"][60 - 21] = torch.where(active, 10.0, -10.0)
        out["onset"][60 - 21, :1] = 10.0
        return out


def _tone(sr: int, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    return factories.tone(sr, seconds, amplitude=amplitude)


def test_96k_audio_is_resampled_and_read(tmp_path):
    sf.write(tmp_path / "hi.wav", _tone(96000, 1.5), 96000, subtype="PCM_24")
    stats: dict = {}
    perf = transcribe_file(_LoudnessH(), tmp_path / "hi.wav", stats=stats)
    assert stats["sample_rate"] == 96000 and stats["duration"] == pytest.approx(1.5)
    assert [n.pitch for n in perf.notes] == [60]
    assert stats["clipped_fraction"] == 0.0


def test_clipped_audio_is_transcribed_with_a_warning(tmp_path, capsys):
    from lmm_utils.methods.checkpoints import save_h
    from lmm_utils.methods.wrappers import make_h
    from lmm_utils.models.transcriber import TranscriberConfig

    sf.write(tmp_path / "hot.wav", np.clip(_tone(16000, 2.0, amplitude=3.0), -1, 1), 16000)
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    save_h(make_h(TranscriberConfig.tiny(), FeatureConfig()), run / "h.pt")
    assert cli.main(["transcribe", str(tmp_path / "hot.wav"), "-o", str(tmp_path / "out"), "--run", str(run)]) == 0
    assert "is clipped" in capsys.readouterr().err
    assert (tmp_path / "out" / "hot.mid").is_file()


def test_an_hour_of_audio_is_read_in_bounded_memory(tmp_path, monkeypatch):
    import lmm_utils.app.inference as inference

    sr, hour = 8000, 3600
    rng = np.random.default_rng(0)
    with sf.SoundFile(tmp_path / "hour.wav", "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(hour // 60):  # written a minute at a time: the test itself stays small too
            f.write((0.05 * rng.standard_normal(sr * 60)).astype(np.float32))
    feat = FeatureConfig()

    def loudness_frames(audio, cfg):  # the reading is under test, not the log-mel: a cheap stand-in, same shape
        frames = np.abs(audio[: len(audio) // cfg.hop_length * cfg.hop_length]).reshape(-1, cfg.hop_length)
        return np.repeat(np.log(frames.mean(axis=1) + 1e-5)[None], cfg.n_mels, axis=0).astype(np.float32)

    monkeypatch.setattr(inference, "log_mel", loudness_frames)
    sf.write(tmp_path / "warm.wav", _tone(sr, 1.0), sr)
    transcribe_file(_LoudnessH(), tmp_path / "warm.wav")  # imports (librosa, soxr) are not the file's memory
    whole_file_as_float = hour * feat.sample_rate * 4  # decoding it at once at 16 kHz would take 230 MB
    tracemalloc.start()
    try:
        stats: dict = {}
        transcribe_file(_LoudnessH(), tmp_path / "hour.wav", ChunkConfig(60.0, 2.0), stats=stats)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats["duration"] == pytest.approx(hour)
    assert peak < whole_file_as_float / 10, f"peak {peak / 2**20:.0f} MiB: the file was not read window by window"


# --- params.yaml --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, mutate, message", [
    ("mapping", lambda s: s.pop("Ks"), r"mapping\.Ks is missing"),
    ("mapping", lambda s: s.update(Ks=[0, "four"]), r"mapping\.Ks must be a non-empty list of whole numbers"),
    ("mapping", lambda s: s.update(methods=["lmm", "magic"]), "unknown method 'magic'"),
    ("mapping", lambda s: s["method"].update(steps=-5), r"mapping\.method\.steps must be a whole number > 0"),
    ("mapping", lambda s: s["method"].update(lr="fast"), r"mapping\.method\.lr must be a number"),
    ("mapping", lambda s: s["eval"].update(max_items=0), r"mapping\.eval\.max_items must be a whole number > 0"),
    ("pretrain", lambda s: s["train"].update(batch_size=2.5), r"pretrain\.train\.batch_size must be a whole number"),
    ("pretrain", lambda s: s.update(val_fraction=1.5), r"pretrain\.val_fraction must be in \[0, 1\]"),
    ("pretrain", lambda s: s["model"].update(n_layer=None), r"pretrain\.model\.n_layer must be set"),
    ("synth", lambda s: s.update(n_random_excerpts=-1), r"synth\.n_random_excerpts must be a whole number > 0"),
    ("features", lambda s: s.pop("sample_rate"), r"features\.sample_rate is missing"),
    ("split", lambda s: s["fractions"].update(T=0.5), "must sum to 1"),
    ("split", lambda s: s["excerpts"].update(max_per_piece=-2), r"max_per_piece must be a whole number > 0"),
    ("corpus", lambda s: s.update(max_file_mb=0), r"corpus\.max_file_mb must be > 0"),
    ("evaluation", lambda s: s.update(confidence=95), r"evaluation\.confidence must be in \[0, 1\]"),
    ("evaluation", lambda s: s.update(robustness_items="48"), r"evaluation\.robustness_items must be a whole number > 0"),
    ("mapping", lambda s: s["lmm"].update(recon_eq=1.5), r"mapping\.lmm\.recon_eq must be one of \[0, 1, 2\]"),
    ("mapping", lambda s: s.update(workers=-1), r"mapping\.workers must be >= 0"),
    # a typo'd key is refused, with the closest known key named (it would otherwise be silently ignored)
    ("mapping", lambda s: s["method"].update(stpes=100), r"mapping\.method\.stpes is not a known key \(did you mean 'steps'\?\)"),
    ("mapping", lambda s: s.update(seed=[0]), r"mapping\.seed is not a known key \(did you mean 'seeds'\?\)"),
    ("mapping", lambda s: s["lmm"].update(lmM_trian={}), r"mapping\.lmm\.lmM_trian is not a known key \(did you mean 'lmM_train'\?\)"),
    ("perform", lambda s: s["pianist"].update(pedal_probability=0.5), r"perform\.pianist\.pedal_probability is not a known key"),
    ("synth", lambda s: s["neural"].update(chanels=4), r"synth\.neural\.chanels is not a known key \(did you mean 'channels'\?\)"),
    ("evaluation", lambda s: s["oracle_lmM"]["train"].update(step=3), r"evaluation\.oracle_lmM\.train\.step is not a known key"),
    ("split", lambda s: s["fractions"].update(V=0.0), r"split\.fractions\.V is not a known key"),
])
def test_bad_params_name_the_key_at_fault(name, mutate, message):
    params = load_params(ROOT / "params.yaml")
    mutate(params[name])
    with pytest.raises(ParamsError, match=message):
        check_section(name, params[name])


def test_every_section_of_params_and_profiles_passes_its_checks():
    from lmm_utils.core.params import deep_merge

    base = load_params(ROOT / "params.yaml")
    for profile in [None, *sorted((ROOT / "profiles").glob("*.yaml"))]:
        params = deep_merge(base, load_params(profile)) if profile else base
        for name, sec in params.items():
            check_section(name, sec)


def test_every_config_class_the_schema_names_exists():
    def walk(node):
        if isinstance(node, Class):
            assert node.keys(), node.ref
        elif isinstance(node, dict):
            for sub in node.values():
                walk(sub)
    walk(KNOWN)


def _dict_paths(value, path=()):
    """Every path to a mapping inside a params section (list items included)."""
    if isinstance(value, dict):
        yield path
        for key, sub in value.items():
            yield from _dict_paths(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _dict_paths(sub, (*path, i))


def test_a_typo_at_any_depth_of_any_section_is_refused():
    import copy

    params = load_params(ROOT / "params.yaml")
    n = 0
    for name, sec in params.items():
        for path in _dict_paths(sec):
            broken = copy.deepcopy(sec)
            target = broken
            for key in path:
                target = target[key]
            target["zz_typo"] = 1
            where = name + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)
            with pytest.raises(ParamsError, match=re.escape(f"{where}.zz_typo is not a known key")):
                check_section(name, broken)
            n += 1
    assert n > 40  # every section, every nested mapping (mapping.lmm.lmM_train, perform.conditions.soundfonts[0], ...)


def test_synth_kinds_accept_the_fit_keys_and_refuse_what_the_stage_sets():
    from lmm_utils.pipeline.checks import check_known_keys
    from lmm_utils.synth.fit import FIT_KEYS

    stage_sets = ("seed", "threads", "piano_dropout")
    for kind in ("baseline", "additive", "neural"):
        check_known_keys({k: 1 for k in FIT_KEYS if k not in stage_sets}, KNOWN["synth"][kind], f"synth.{kind}")
        with pytest.raises(ParamsError, match=rf"synth\.{kind}\.piano_dropout is not a known key"):
            check_known_keys({"piano_dropout": 0.5}, KNOWN["synth"][kind], f"synth.{kind}")


def test_the_stage_runner_checks_params_without_importing_torch():
    """The runner is a process of its own before each stage's kernel: torch there is ~2 s per stage, for nothing.
    With $CI set (as on CI machines) pyfluidsynth prints where it found its library: that must not reach stdout."""
    code = ("import sys; from lmm_utils.pipeline import stage; from lmm_utils.core.params import load_params; "
            f"p = load_params({str(ROOT / 'params.yaml')!r}); "
            "[stage.check_section(s, p[s]) for s in ('corpus', 'real_data', 'split', 'engrave')]; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "CI": "1"})
    assert out.stdout.strip() == "False"


def test_a_section_no_stage_reads_is_refused():
    with pytest.raises(ParamsError, match="no stage reads a section 'mapp' \\(did you mean 'mapping'\\?\\)"):
        check_section("mapp", {})


def test_more_pairs_than_the_pool_holds_is_refused():
    with pytest.raises(ValueError, match="K=5 pairs asked for, but the pair pool P holds 3"):
        draw_pairs(["a", "b", "c"], 5, seed=0)


def test_a_stage_with_broken_params_stops_before_it_runs(tmp_path, monkeypatch):
    from lmm_utils.pipeline import stage

    (tmp_path / "lmm_utils").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    params = load_params(ROOT / "params.yaml")
    params["mapping"]["seeds"] = [0, -1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"stage error: params.yaml: mapping\.seeds"):
        stage.main([str(ROOT / "notebooks/07_map.ipynb"), "--sections", "mapping,features"])
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


def test_a_stage_with_a_mistyped_key_stops_before_it_runs_and_names_it(tmp_path, monkeypatch):
    from lmm_utils.pipeline import stage

    (tmp_path / "lmm_utils").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    params = load_params(ROOT / "params.yaml")
    params["mapping"]["method"]["stpes"] = params["mapping"]["method"].pop("steps")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = (tmp_path / "params.yaml").read_text()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"mapping\.method\.stpes is not a known key \(did you mean 'steps'\?\)"):
        stage.main([str(ROOT / "notebooks/07_map.ipynb"), "--sections", "mapping,features"])
    assert (tmp_path / "params.yaml").read_text() == before  # nothing lost: the file is left as the user wrote it
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


# --- checkpoints given to the CLI ---------------------------------------------------------------------------

def test_missing_truncated_and_foreign_checkpoints_are_clear_errors(tmp_path, capsys):
    from lmm_utils.methods.checkpoints import save_g, save_h
    from lmm_utils.methods.wrappers import make_g, make_h
    from lmm_utils.models.performer import PerformerConfig
    from lmm_utils.models.transcriber import TranscriberConfig

    sf.write(tmp_path / "a.wav", _tone(16000, 1.0), 16000)
    args = ["transcribe", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "--run"]
    assert cli.main([*args, str(tmp_path / "nowhere")]) == 1
    assert "no such folder" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    assert cli.main([*args, str(run)]) == 1
    assert "has no h.pt" in capsys.readouterr().err
    torch.manual_seed(0)
    save_h(make_h(TranscriberConfig.tiny(), FeatureConfig()), run / "whole.pt")
    whole = (run / "whole.pt").read_bytes()
    (run / "h.pt").write_bytes(whole[: len(whole) // 2])
    assert cli.main([*args, str(run)]) == 1
    assert "not a readable h checkpoint" in capsys.readouterr().err
    save_g(make_g(PerformerConfig.tiny()), run / "h.pt")  # a g checkpoint under h's name
    assert cli.main([*args, str(run)]) == 1
    assert "not a readable h checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.mid").exists()


# --- notebooks whose parameters cell drifted from params.yaml -----------------------------------------------

def _notebook(tmp_path: Path, params_source: str, tagged: bool = True, later: str = "print(split)") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "lmm", "language": "python", "display_name": "Python (lmm)"}
    nb.metadata["language_info"] = {"name": "python"}
    cell = nbformat.v4.new_code_cell(params_source)
    if tagged:
        cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(later)]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_notebook_parameters_cell_checks(tmp_path):
    split = load_params(ROOT / "params.yaml")["split"]
    same = _notebook(tmp_path, f"split = {split!r}")
    assert check_notebook_parameters(same, {"split": split}) == []
    edited = _notebook(tmp_path, f"split = {dict(split, seed=7)!r}")
    assert check_notebook_parameters(edited, {"split": split}) == [
        "nb.ipynb: split.seed = 7 in the notebook, 0 in params.yaml"]
    with pytest.raises(StageError, match="no cell tagged 'parameters'"):
        check_notebook_parameters(_notebook(tmp_path, f"split = {split!r}", tagged=False), {"split": split})
    with pytest.raises(StageError, match=r"does not define \['split'\]"):
        check_notebook_parameters(_notebook(tmp_path, "splits = {}"), {"split": split})
    with pytest.raises(StageError, match="assigns \\['split'\\] again"):
        check_notebook_parameters(_notebook(tmp_path, f"split = {split!r}", later="split = {'seed': 3}"),
                                  {"split": split})


@pytest.mark.slow
def test_an_edited_parameters_cell_does_not_override_params_yaml(tmp_path, monkeypatch, capsys):
    """Run a notebook whose default disagrees with params.yaml through the stage runner: params.yaml wins."""
    from lmm_utils.pipeline import stage

    (tmp_path / "lmm_utils").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params.yaml").write_text("engrave: {height: 160, workers: 0}\n")
    nb = _notebook(tmp_path / "notebooks", "engrave = {'height': 99, 'workers': 0}",
                   later="import json; open('seen.json', 'w').write(json.dumps(engrave))")
    monkeypatch.chdir(tmp_path)
    stage.main([str(nb.relative_to(tmp_path)), "--sections", "engrave"])
    assert json.loads((tmp_path / "seen.json").read_text())["height"] == 160
    assert "engrave.height = 99 in the notebook, 160 in params.yaml" in capsys.readouterr().err
    assert (tmp_path / "reports" / "nb.ipynb").is_file()
