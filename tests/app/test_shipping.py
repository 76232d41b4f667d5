"""Shipped models: the run of a tiny fake sweep with the most pairs is picked (no score read), copied with its frozen
LMs and a provenance.json; the CLI falls back to the shipped model (and says so), or names the command that fills it."""
import hashlib
import importlib.util
import json
from pathlib import Path

import factories
import pytest
import soundfile as sf
import torch

from lmm_utils.app import cli, shipping
from lmm_utils.evaluation.scoring import discover_runs

ROOT = Path(__file__).resolve().parents[2]
NOW = shipping.dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=shipping.dt.UTC)
ABC = "X:1\nT:tune\nM:3/4\nL:1/8\nK:G\nGAB c2d|e2d c2B|\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Four runs: lmm-K4-s0 has the most pairs of the preferred methods; cycle has more pairs but is not preferred,
    and has no h.pt; one h unscored."""
    runs = tmp_path_factory.mktemp("sweep") / "runs"
    factories.trained_run(runs, "supervised", 1, 0, h_note_f1=0.4, g_note_f1=0.6)
    factories.trained_run(runs, "lmm", 4, 0, h_note_f1=0.7, g_note_f1=0.3, torch_seed=1)
    factories.trained_run(runs, "lmm", 4, 1, h_note_f1=None, g_note_f1=0.2)
    factories.trained_run(runs, "cycle", 16, 0, h_note_f1=0.9, g_note_f1=0.1, checkpoints=("g",))
    return runs


@pytest.fixture(scope="module")
def shipped(sweep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shipped")
    shipping.ship(sweep, "default", out, root=sweep.parent, now=NOW)
    return out


def test_pick_takes_the_most_pairs_of_the_preferred_methods_and_reads_no_score(sweep, tmp_path):
    runs = discover_runs(sweep)
    for kind in ("h", "g"):
        chosen = shipping.pick(runs, kind)
        assert chosen.run.name == "lmm-K4-s0" and chosen.run.path == sweep / "lmm" / "lmm-K4-s0"
    assert shipping.pick(runs, "g", None).run.name == "cycle-K16-s0"  # no preference: the most pairs of any method
    assert shipping.pick(runs, "g", ("supervised", "lmm")).run.name == "lmm-K4-s0"  # pairs first, then preference
    assert shipping.pick(runs, "h", ("surface",)).run.name == "lmm-K4-s0"  # none of them in the sweep: any method
    # a better T score never wins over more pairs; the lowest seed breaks ties
    other = tmp_path / "runs"
    factories.trained_run(other, "supervised", 2, 1, h_note_f1=0.10)
    factories.trained_run(other, "supervised", 2, 0, h_note_f1=0.05)
    factories.trained_run(other, "supervised", 1, 0, h_note_f1=0.99)
    assert shipping.pick(discover_runs(other), "h").run.name == "supervised-K2-s0"
    with pytest.raises(shipping.ShippingError, match="no run with h.pt"):
        shipping.pick([r for r in runs if r.method == "cycle"], "h")


def test_ship_writes_checkpoints_and_provenance(sweep, shipped):
    prov = json.loads((shipped / "provenance.json").read_text())
    assert {"profile", "date", "git_commit", "git_dirty", "runs_dir", "h", "g"} <= set(prov)
    assert prov["profile"] == "default" and prov["date"] == "2025-01-02T03:04:05+00:00"
    for kind, run in (("h", "lmm-K4-s0"), ("g", "lmm-K4-s0")):
        e = prov[kind]
        assert {"run", "method", "K", "seed", "rule", "metrics", "sha256", "lm"} <= set(e)
        assert e["run"] == run and e["lm"] is None
        assert (shipped / f"{kind}.pt").read_bytes() == (sweep / run.split("-K")[0] / run / f"{kind}.pt").read_bytes()
        assert e["sha256"] == hashlib.sha256((shipped / f"{kind}.pt").read_bytes()).hexdigest()
    assert prov["h"]["rule"] == {"text": shipping.RULE, "preferred_methods": ["lmm", "supervised"]}
    assert prov["h"]["metrics"]["T"]["note_f1"] == 0.7 and prov["h"]["metrics"]["T_timbre"]["note_f1"] == pytest.approx(0.63)
    assert prov["g"]["metrics"]["T"]["note_f1"] == 0.3 and prov["g"]["metrics"]["T"]["velocity_mae"] == 9.0
    line = shipping.describe(prov, "h")
    assert "lmm-K4-s0" in line and "K=4" in line and "profile default" in line and "T_timbre 0.630" in line
    assert "the most pairs, no score read" in line


def test_ship_copies_the_frozen_lm_an_lm_checkpoint_reads(tmp_path):
    lm = tmp_path / "data/lm/A"
    lm.mkdir(parents=True)
    (lm / "lm.pt").write_bytes(b"frozen LM^A")
    (lm / "info.json").write_text("{}")
    run = factories.trained_run(tmp_path / "data/runs", "lmm", 2, 0, h_note_f1=0.5, g_note_f1=0.5)
    ck = {"kind": "lm_transcriber", "lm": "data/lm/A", "lm_md5": hashlib.md5(b"frozen LM^A").hexdigest(),
          "state_dict": {"w": torch.zeros(2)}}
    torch.save(ck, run / "h.pt")
    prov = shipping.ship(tmp_path / "data/runs", "tiny", tmp_path / "out", root=tmp_path)
    assert prov["h"]["lm"] == {"source": "data/lm/A", "shipped": "lm/A", "md5": ck["lm_md5"]}
    assert (tmp_path / "out/lm/A/lm.pt").read_bytes() == b"frozen LM^A" and (tmp_path / "out/lm/A/info.json").is_file()
    assert torch.load(tmp_path / "out/h.pt", weights_only=True)["lm"] == "lm/A"  # relative to the shipped folder
    (lm / "lm.pt").write_bytes(b"retrained since")
    with pytest.raises(shipping.ShippingError, match="not the LM"):
        shipping.ship(tmp_path / "data/runs", "tiny", tmp_path / "out", root=tmp_path)
    with pytest.raises(shipping.ShippingError, match="no run folders"):
        shipping.ship(tmp_path / "nothing", "tiny", tmp_path / "out2", root=tmp_path)


def test_ship_models_script(sweep, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("ship_models", ROOT / "scripts/ship_models.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--runs", str(sweep), "--profile", "default", "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert "h: lmm-K4-s0" in capsys.readouterr().out and not (tmp_path / "o").exists()
    assert script.main(["--runs", str(sweep), "--profile", "default", "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o/provenance.json").read_text())["g"]["run"] == "lmm-K4-s0"
    assert script.main(["--runs", str(sweep), "--profile", "default", "--out", str(tmp_path / "s"),
                        "--methods", "supervised"]) == 0
    assert json.loads((tmp_path / "s/provenance.json").read_text())["h"]["run"] == "supervised-K1-s0"
    assert script.main(["--runs", str(tmp_path / "none"), "--profile", "default", "--out", str(tmp_path / "o")]) == 1


# --- the CLI ------------------------------------------------------------------------------------------------

@pytest.fixture
def outside_project(tmp_path, monkeypatch) -> Path:
    """A user's folder: no dvc.yaml above it, so no trained run."""
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "a.wav", factories.tone(16000, 1.0), 16000)
    (tmp_path / "t.abc").write_text(ABC)
    return tmp_path


def test_cli_falls_back_to_the_shipped_model_and_says_so(shipped, outside_project, monkeypatch, capsys):
    monkeypatch.setattr(shipping, "SHIPPED_DIR", shipped)
    assert cli.main(["transcribe", "a.wav", "-o", "midi", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"h: the shipped model {shipped / 'h.pt'} (no trained run in" in err and "run lmm-K4-s0" in err
    assert (outside_project / "midi/a.mid").is_file()
    assert cli.main(["perform", "t.abc", "-o", "t.mid"]) == 0
    assert "g: the shipped model" in capsys.readouterr().err and (outside_project / "t.mid").is_file()


def test_cli_shipped_flag_wins_over_the_project_runs(shipped, sweep, outside_project, monkeypatch, capsys):
    monkeypatch.setattr(shipping, "SHIPPED_DIR", shipped)
    project = outside_project / "project"
    factories.trained_run(project / "data/runs", "lmm", 1, 0, h_note_f1=0.2)
    monkeypatch.setattr(cli, "_root", lambda: project)
    assert cli.main(["transcribe", "a.wav", "-o", "midi", "-q"]) == 0
    assert f"h: {project / 'data/runs/lmm/lmm-K1-s0'} (the project's run with the most pairs" in capsys.readouterr().err
    assert cli.main(["transcribe", "a.wav", "-o", "midi", "-q", "--shipped"]) == 0
    assert f"h: the shipped model {shipped / 'h.pt'} (given with --shipped)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --run and --shipped exclude each other
        cli.main(["transcribe", "a.wav", "-o", "midi", "--shipped", "--run", "x"])


def test_cli_without_a_shipped_model_names_the_ship_command(outside_project, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shipping, "SHIPPED_DIR", tmp_path / "empty")
    assert cli.main(["transcribe", "a.wav", "-o", "midi"]) == 1
    err = capsys.readouterr().err
    assert "no trained run" in err and shipping.SHIP_COMMAND in err
    assert cli.main(["perform", "t.abc", "-o", "t.mid", "--shipped"]) == 1
    assert shipping.SHIP_COMMAND in capsys.readouterr().err


def test_help_says_the_default(capsys):
    for cmd in ("transcribe", "perform"):
        with pytest.raises(SystemExit):
            cli.main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "else (no trained run here) the shipped model" in out and "--shipped" in out


def test_the_package_folder_is_empty_or_a_complete_shipment():
    """The committed folder: the README that says how to fill it, and, once filled, provenance and both checkpoints."""
    d = shipping.SHIPPED_DIR
    assert shipping.SHIP_COMMAND in (d / "README.md").read_text()
    if (d / "provenance.json").is_file():
        prov = shipping.load_provenance(d)
        for kind in shipping.MODELS:
            ck, _ = shipping.shipped_model(kind, d)
            assert prov[kind]["sha256"] == hashlib.sha256(ck.read_bytes()).hexdigest()
    toml = (ROOT / "pyproject.toml").read_text()
    assert '"lmm_utils.app" = ["shipped/*.pt", "shipped/*.json", "shipped/*.md", "shipped/lm/*/*"]' in toml
