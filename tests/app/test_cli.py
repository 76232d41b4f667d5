"""The `lmm` command line on tiny untrained checkpoints built here: transcribe (sample rates, stereo, silence,
bad files, long files in windows), perform (MusicXML / ABC / MIDI), evaluate (MIDI / TSV, corrupt input)."""
import json
import subprocess
import sys
from pathlib import Path

import factories
import numpy as np
import pytest
import soundfile as sf
import torch

from lmm_utils.app import cli
from lmm_utils.app.inference import ChunkConfig, read_notes, score_from_file, transcribe_file, windows
from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS, Performance, PerformedNote, read_midi, write_midi
from lmm_utils.models.harmonics import HARMONIC_RATIO
from lmm_utils.models.transcriber import DecodeConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from lmm_utils.methods.checkpoints import save_g, save_h
    from lmm_utils.methods.wrappers import make_g, make_h
    from lmm_utils.models.performer import PerformerConfig
    from lmm_utils.models.transcriber import TranscriberConfig

    d = tmp_path_factory.mktemp("runs") / "lmm-K1-s0"
    d.mkdir()
    torch.manual_seed(0)
    save_h(make_h(TranscriberConfig.tiny(), FeatureConfig()), d / "h.pt")
    save_g(make_g(PerformerConfig.tiny()), d / "g.pt")
    return d


def _tone(sr: int, seconds: float, channels: int = 1, start: float = 0.3, stop: float | None = None) -> np.ndarray:
    return factories.tone(sr, seconds, start=start, stop=stop, channels=channels)


def test_help_of_every_command():
    for argv in (["--help"], ["transcribe", "--help"], ["perform", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0
    out = subprocess.run([sys.executable, "-m", "lmm_utils.app.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "transcribe" in out.stdout


def test_transcribe_batch_formats_and_bad_files(run_dir, tmp_path, capsys):
    files = {"silent.wav": (np.zeros(16000 * 2), 16000), "stereo44k.wav": (_tone(44100, 2.0, 2), 44100),
             "low8k.flac": (_tone(8000, 1.5), 8000)}
    for name, (x, sr) in files.items():
        sf.write(tmp_path / name, x, sr)
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    inputs = [str(tmp_path / n) for n in ("silent.wav", "notes.wav", "stereo44k.wav", "low8k.flac", "missing.wav")]
    code = cli.main(["transcribe", *inputs, "-o", str(tmp_path / "out"), "--run", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 1  # two inputs failed, the batch went on
    assert "not a readable audio file" in err and "no such file" in err and "2 of 5 input(s) failed" in err
    assert f"h: {run_dir} (given with --run)" in err
    for stem in ("silent", "stereo44k", "low8k"):
        assert (tmp_path / "out" / f"{stem}.mid").is_file()
    assert read_midi(tmp_path / "out" / "silent.mid").notes == []  # silence gives no notes
    assert not (tmp_path / "out" / "notes.mid").exists()
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_transcribe_all_good_exits_zero(run_dir, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _tone(22050, 1.0), 22050)
    assert cli.main(["transcribe", str(tmp_path / "a.wav"), "-o", str(tmp_path), "--run", str(run_dir), "-q"]) == 0
    assert f"as the methods decode (harmonic suppression at ratio {HARMONIC_RATIO:g})" in capsys.readouterr().err
    assert cli.main(["transcribe", str(tmp_path / "a.wav"), "-o", str(tmp_path), "--run", str(run_dir), "-q",
                     "--harmonics", "0"]) == 0
    assert "decoding: no harmonic suppression" in capsys.readouterr().err
    assert cli.main(["transcribe", str(tmp_path / "a.wav"), "-o", str(tmp_path), "--run", str(run_dir),
                     "--harmonics", "-1"]) == 2


class _EnergyH:
    """A stand-in h: key C4 is down wherever the log-mel has energy; onset where it starts."""
    feat = FeatureConfig()

    def logits(self, logmel):
        active = torch.from_numpy(logmel.max(axis=0) > -2.0)
        start = active & ~torch.cat([torch.tensor([False]), active[:-1]])
        out = {k: torch.full((N_KEYS, logmel.shape[1]), -10.0) for k in ("onset", "frame", "velocity")}
        out["frame"][60 - 21] = torch.where(active, 10.0, -10.0)
        out["onset"][60 - 21] = torch.where(start, 10.0, -10.0)
        return out


def test_long_file_in_windows_stitches_held_notes(tmp_path):
    sf.write(tmp_path / "long.wav", _tone(16000, 35.0, start=3.0, stop=30.0), 16000)
    cfg = ChunkConfig(chunk=10.0, margin=2.0)
    assert len(windows(35.0, cfg)) == 4
    perf = transcribe_file(_EnergyH(), tmp_path / "long.wav", cfg)
    assert len(perf.notes) == 1  # one note across four windows, not one per window
    n = perf.notes[0]
    assert n.pitch == 60 and abs(n.onset - 3.0) < 0.1 and abs(n.offset - 30.0) < 0.15


class _PartialH(_EnergyH):
    """_EnergyH plus C5 (C4's octave) with a weaker onset (p = 0.6 against ~1), as a partial heard as a note."""

    def logits(self, logmel):
        out = _EnergyH.logits(self, logmel)
        c4, c5 = 60 - 21, 72 - 21
        out["frame"][c5] = out["frame"][c4]
        out["onset"][c5] = torch.where(out["onset"][c4] > 0, 0.4055, -10.0)  # sigmoid(0.4055) = 0.6
        return out


def test_harmonic_suppression_drops_a_partials_onset_in_the_file_path(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(16000, 3.0, start=0.5, stop=2.5), 16000)
    off = DecodeConfig(harmonic_ratio=0.0)
    assert sorted(n.pitch for n in transcribe_file(_PartialH(), tmp_path / "a.wav", decode_cfg=off).notes) == [60, 72]
    assert [n.pitch for n in transcribe_file(_PartialH(), tmp_path / "a.wav").notes] == [60]  # the default: on


def test_windows_cover_the_file():
    w = windows(45.0, ChunkConfig(20.0, 2.0))
    assert [c[2:] for c in w] == [(0.0, 20.0), (20.0, 40.0), (40.0, 45.0)]
    assert w[1][:2] == (18.0, 42.0) and w[-1][1] == 45.0


MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><key><fifths>0</fifths></key>
<time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef></attributes>
<direction><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>90</per-minute></metronome></direction-type></direction>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>G</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
</measure></part></score-partwise>
"""
ABC = "X:1\nT:tune\nM:3/4\nL:1/8\nK:G\nGAB c2d|e2d c2B|\n"


def test_perform_musicxml_abc_and_midi(run_dir, tmp_path, capsys):
    (tmp_path / "s.musicxml").write_text(MUSICXML)
    (tmp_path / "t.abc").write_text(ABC)
    score, notes = score_from_file(tmp_path / "s.musicxml")
    assert [n.pitch for n in score.notes] == [60, 64, 67] and score.tempo_bpm == 90 and score.dynamics == [(0.0, "mf")]
    assert cli.main(["perform", str(tmp_path / "s.musicxml"), "-o", str(tmp_path / "s.mid"), "--run", str(run_dir)]) == 0
    perf = read_midi(tmp_path / "s.mid")
    assert sorted(n.pitch for n in perf.notes) == [60, 64, 67]
    assert abs((perf.notes[1].onset - perf.notes[0].onset) - 60 / 90) < 0.05  # untrained g = the plain tempo
    assert cli.main(["perform", str(tmp_path / "t.abc"), "-o", str(tmp_path / "t.mid"), "--plain", "--tempo", "120"]) == 0
    assert len(read_midi(tmp_path / "t.mid").notes) == 9
    assert "no dynamics marks" in capsys.readouterr().err
    # a performance MIDI file is a score too (music21 quantizes it)
    assert cli.main(["perform", str(tmp_path / "s.mid"), "-o", str(tmp_path / "again.mid"), "--plain"]) == 0


def test_tempo_written_as_text_is_read(tmp_path):
    """The project's engravings write the metronome mark as text ("♩ = 72"), not as a <metronome>."""
    xml = MUSICXML.replace("<metronome><beat-unit>quarter</beat-unit><per-minute>90</per-minute></metronome>",
                           "<words>♩ = 72</words>")
    (tmp_path / "w.musicxml").write_text(xml)
    score, notes = score_from_file(tmp_path / "w.musicxml")
    assert score.tempo_bpm == 72 and any("text mark" in n for n in notes)


def test_perform_bad_inputs(run_dir, tmp_path, capsys):
    (tmp_path / "bad.musicxml").write_text("<score-partwise><oops")
    (tmp_path / "x.pdf").write_text("%PDF")
    assert cli.main(["perform", str(tmp_path / "bad.musicxml"), "-o", str(tmp_path / "o.mid"), "--plain"]) == 1
    assert cli.main(["perform", str(tmp_path / "x.pdf"), "-o", str(tmp_path / "o.mid"), "--plain"]) == 1
    err = capsys.readouterr().err
    assert "not a readable score" in err and "unsupported score format" in err
    assert not (tmp_path / "o.mid").exists()


def test_run_resolution(run_dir, tmp_path):
    """Without --run: the project's run with the most pairs, lmm before supervised, the lowest seed (the shipped
    model's rule, shipping.RULE); no score is read, so a run without metrics.json counts too."""
    root = tmp_path
    runs = root / "data" / "runs"
    runs.mkdir(parents=True)
    with pytest.raises(cli.CLIError, match="no trained run"):
        cli.resolve_run(None, "h", root)
    for name in ("lmm-K1-s0", "lmm-K16-s0"):  # no metrics.json yet
        (runs / name).mkdir()
        (runs / name / "h.pt").write_bytes((run_dir / "h.pt").read_bytes())
    path, why = cli.resolve_run(None, "h", root)
    assert path.name == "lmm-K16-s0" and "most pairs" in why
    scores = {"lmm-K1-s0": 0.4, "lmm-K4-s0": 0.7, "basis-K16-s0": 0.6, "supervised-K16-s1": 0.95,
              "supervised-K16-s0": 0.9}
    for name, f1 in scores.items():
        d = runs / name
        d.mkdir(exist_ok=True)
        for kind in ("h", "g") if name != "lmm-K1-s0" else ("h",):
            (d / f"{kind}.pt").write_bytes((run_dir / "h.pt").read_bytes())
        (d / "metrics.json").write_text(json.dumps({"h": {"T": {"all": {"note_f1": f1}}}}))
    path, why = cli.resolve_run(None, "h", root)
    assert path.name == "lmm-K16-s0" and "(lmm, K=16, seed 0)" in why
    # lmm-K16-s0 has no g.pt: supervised (preferred over basis) at K = 16, its lowest seed, whatever the scores say
    assert cli.resolve_run(None, "g", root)[0].name == "supervised-K16-s0"
    assert cli.resolve_run("lmm-K1-s0", "h", root)[0].name == "lmm-K1-s0"
    with pytest.raises(cli.CLIError, match="has no g.pt"):
        cli.resolve_run("lmm-K1-s0", "g", root)
    with pytest.raises(cli.CLIError, match="no such folder"):
        cli.resolve_run("nope", "h", root)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "h.pt").write_bytes(b"not a checkpoint")
    sf.write(tmp_path / "a.wav", _tone(16000, 1.0), 16000)
    assert cli.main(["transcribe", str(tmp_path / "a.wav"), "-o", str(tmp_path), "--run", str(tmp_path)]) == 1
    assert "not a readable h checkpoint" in capsys.readouterr().err


def _perf() -> Performance:
    return Performance([PerformedNote(60, 0.5, 1.0, 80), PerformedNote(64, 0.5, 1.2, 70), PerformedNote(67, 1.0, 1.5, 90)])


def test_evaluate_identical_midi_and_tsv(tmp_path, capsys):
    write_midi(_perf(), tmp_path / "ref.mid")
    assert cli.main(["evaluate", str(tmp_path / "ref.mid"), str(tmp_path / "ref.mid"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["note_f1"] == 1.0 and m["note_offset_f1"] == 1.0 and m["frame_f1"] == 1.0 and m["n_ref"] == 3
    (tmp_path / "est.tsv").write_text("onset\toffset\tpitch\tvelocity\n0.51\t1.0\t60\t80\n1.0\t1.5\t67\t90\n")
    assert cli.main(["evaluate", str(tmp_path / "ref.mid"), str(tmp_path / "est.tsv"), "--performance"]) == 0
    out = capsys.readouterr().out
    assert "F1" in out and "DTW-aligned" in out
    line = [ln for ln in out.splitlines() if ln.startswith("note (onset")][0]
    assert float(line.split()[-1]) == pytest.approx(0.8)  # 2 of 3 notes: P = 1, R = 2/3
    # Hz pitches are converted
    (tmp_path / "hz.tsv").write_text("0.5 1.0 261.63\n0.5 1.2 329.63\n1.0 1.5 392.0\n")
    assert [n.pitch for n in read_notes(tmp_path / "hz.tsv").notes] == [60, 64, 67]


def test_evaluate_corrupt_and_unsupported(tmp_path, capsys):
    write_midi(_perf(), tmp_path / "ref.mid")
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (tmp_path / "x.json").write_text("{}")
    (tmp_path / "bad.tsv").write_text("0.5 1.0 60\n0.5 oops 61\n")
    for est, msg in (("bad.mid", "not a readable MIDI file"), ("x.json", "unsupported note file"),
                     ("bad.tsv", "not numbers"), ("gone.mid", "no such file")):
        assert cli.main(["evaluate", str(tmp_path / "ref.mid"), str(tmp_path / est)]) == 1
        assert msg in capsys.readouterr().err


def test_console_script_is_declared(root):
    text = (root / "pyproject.toml").read_text()
    assert 'lmm = "lmm_utils.app.cli:main"' in text


def test_perform_help_names_the_shipped_g(capsys):
    from lmm_utils.app import cli

    with pytest.raises(SystemExit):
        cli.main(["perform", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    prov = json.loads((Path(cli.__file__).parent / "shipped" / "provenance.json").read_text())
    assert f"is run {prov['g']['run']}" in out and "no score read" in out
