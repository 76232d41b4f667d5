"""lmm_utils.mapping (draws, run, summary) and lmm_utils.methods on a tiny synthetic project (a few excerpts per
pool, sine-tone "recordings", tiny LMs and a tiny S, all made here): nested draws, the data guard and the
evaluation door, every method for 2 steps, the run folder and its scores, determinism, and the summary table."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tiny_project
import torch
from factories import TINY_MAP

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.io import jsonable
from lmm_utils.core.motion import Performance
from lmm_utils.core.paths import parse_run_name
from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.data.pools import LeakageError, TrainingData
from lmm_utils.evaluation import scoring
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, read_predictions
from lmm_utils.mapping import draws, summary
from lmm_utils.mapping import run as mapping

FEAT = tiny_project.FEAT
SR = tiny_project.SR
POOL_SIZES = tiny_project.POOL_SIZES
_score, _perform, _render = tiny_project.score, tiny_project.perform, tiny_project.render


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return tiny_project.make_tiny_project(tmp_path_factory.mktemp("tiny_project"))


# --- draws ------------------------------------------------------------------------------------------------

def test_draws_are_nested_seeded_and_bounded():
    pool = [f"x{i:03d}" for i in range(50)]
    d16 = draws.draw_pairs(pool, 16, seed=3)
    assert draws.draw_pairs(pool, 4, 3) == d16[:4] and draws.draw_pairs(pool, 1, 3) == d16[:1]
    assert draws.draw_pairs(list(reversed(pool)), 16, 3) == d16  # order of the pool does not matter
    assert draws.draw_pairs(pool, 16, 4) != d16
    assert len(set(d16)) == 16 and draws.draw_pairs(pool, 0, 3) == []
    with pytest.raises(ValueError):
        draws.draw_pairs(pool, 51, 0)


def test_sweep_and_run_params():
    sw = draws.sweep({"methods": ["a", "b-no_x"], "Ks": [0, 4], "seeds": [1]})
    assert sw == [("a", 0, 1), ("a", 4, 1), ("b-no_x", 0, 1), ("b-no_x", 4, 1)]
    base = {"device": "cpu", "method": {"steps": 3}}
    p = draws.run_params(base, 7)
    assert p["method"] == {"steps": 3, "seed": 7, "device": "cpu"} and base["method"] == {"steps": 3}


def test_pair_pool_and_restricted_data(tiny_root):
    pool = draws.pair_pool(tiny_root)
    assert len(pool) == POOL_SIZES["P"]
    draw = draws.draw_pairs(pool, 2, 0)
    data = TrainingData(tiny_root).restrict_pairs(draw)
    assert sorted(s.id for s in data.scores("P")) == sorted(draw)
    other = next(i for i in pool if i not in draw)
    with pytest.raises(LeakageError):
        data.audio("P", other)


# --- the guard --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ask", ["scores_T", "audio_T", "motion", "scores_U_A"])
def test_a_method_asking_for_test_data_or_motion_raises(tiny_root, monkeypatch, ask):
    from lmm_utils import methods

    def greedy(data, synth, params, feat, progress, off):
        {"scores_T": lambda: data.scores("T"), "audio_T": lambda: data.audio_ids("T"),
         "motion": lambda: data.motion("P"), "scores_U_A": lambda: data.scores("U_A")}[ask]()

    monkeypatch.setitem(methods.RUNNERS, "greedy", greedy)
    with pytest.raises(LeakageError):
        methods.run_method("greedy", TrainingData(tiny_root).restrict_pairs([]), None, {})
    with pytest.raises(TypeError):
        methods.run_method("supervised", object(), None, {})


ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"lmm_utils.data.evaluation", "lmm_utils.data.pianist"}


def _imports(path: Path) -> set[str]:
    """Modules and names a source file imports (anywhere in it), as dotted strings."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names} | {a.name for a in node.names}
    return out


def _forbidden(names: set[str]) -> list[str]:
    return sorted(n for n in names if n in FORBIDDEN or n.split(".")[-1] == "EvaluationData"
                  or any(n.startswith(m + ".") for m in FORBIDDEN))


@pytest.mark.parametrize("folder", ["methods", "training"])
def test_training_code_never_imports_the_evaluation_door_or_the_pianist(folder):
    """Training reads data only through TrainingData: no module under methods/ or training/ imports
    EvaluationData (from lmm_utils.data.evaluation or its re-export in lmm_utils.evaluation) or the pianist."""
    files = sorted((ROOT / "lmm_utils" / folder).rglob("*.py"))
    assert files
    for f in files:
        assert not _forbidden(_imports(f)), f"{f.relative_to(ROOT)} imports {_forbidden(_imports(f))}"


@pytest.mark.parametrize("source", ["from lmm_utils.data.evaluation import EvaluationData\n",
                                    "from lmm_utils.evaluation import EvaluationData\n",
                                    "import lmm_utils.data.pianist\n",
                                    "def f():\n    from lmm_utils.data import evaluation\n"])
def test_the_leakage_check_catches_an_import(tmp_path, source):
    (tmp_path / "m.py").write_text(source)
    assert _forbidden(_imports(tmp_path / "m.py"))


def test_method_names_and_ablations():
    from lmm_utils.methods import check_method

    assert check_method("lmm-no_lmA-no_recon").off == ("lmA", "recon")
    for bad in ("nonsense", "lmm-lmA", "lmm-no_"):
        with pytest.raises(ValueError):
            check_method(bad)


# --- every method, 2 steps --------------------------------------------------------------------------------

METHODS = ["supervised", "synth_pairs", "surface", "cycle", "lmm", "lmm-no_lmM", "lmm-no_lmA", "lmm-no_recon",
           "lmm-no_selftrain", "surface-no_lmA", "basis", "basis_both"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("K", [0, 2])
def test_each_method_runs_two_steps(tiny_root, method, K):
    from lmm_utils.methods.wrappers import GModel, HModel

    r = mapping.train_run(method, K, 0, TINY_MAP, {}, root=tiny_root)
    assert isinstance(r["h"], HModel) and isinstance(r["g"], GModel)
    assert len(r["draw"]) == K and set(r["pseudo"]) == set(r["draw"])
    mel = log_mel(_render(_perform(_score("T", 0, np.random.default_rng(1)), np.random.default_rng(2))), FEAT)
    perf = r["h"].transcribe(mel)
    assert isinstance(perf, Performance)
    s = _score("T", 1, np.random.default_rng(3))
    assert len(r["g"].perform([s])[0].notes) == len(s.notes)


def test_lmm_ablation_turns_its_terms_off(tiny_root):
    r = mapping.train_run("lmm-no_lmA", 2, 0, TINY_MAP, {}, root=tiny_root)
    t = r["info"]["terms"]
    assert not t["lmA"] and t["lmA_prior"] and t["lmV"] and t["recon"]  # LM^A leaves h, still judges g
    assert r["h"].lm is None and r["g"].lm is not None
    t = mapping.train_run("lmm-no_lmA-no_lmA_prior", 2, 0, TINY_MAP, {}, root=tiny_root)["info"]["terms"]
    assert not t["lmA"] and not t["lmA_prior"]
    with_lmA = {**TINY_MAP, "lmm": {**TINY_MAP["lmm"], "lmA": True}}  # off by default; on, h reads LM^A's features
    r = mapping.train_run("lmm", 2, 0, with_lmA, {}, root=tiny_root)
    assert r["info"]["terms"]["lmA"] and r["h"].lm is not None
    with pytest.raises(ValueError):
        mapping.train_run("lmm-no_nonsense", 0, 0, TINY_MAP, {}, root=tiny_root)


def test_lmm_density_prior_sets_its_target_from_generic_performances_and_trains(tiny_root):
    off = mapping.train_run("lmm", 2, 0, TINY_MAP, {}, root=tiny_root)["info"]
    assert not off["terms"]["density"] and "density_target" not in off  # off by default
    on = {**TINY_MAP, "lmm": {**TINY_MAP["lmm"], "density": True, "recon": False}}  # density alone still has crops
    info = mapping.train_run("lmm", 2, 0, on, {}, root=tiny_root)["info"]
    rates = info["density_target"]
    assert info["terms"]["density"] and 0 < rates["onset"] < rates["key_down"] < 0.2  # a few keys of 88
    assert all(np.isfinite(info["loss_h"]))


def test_lmm_ranks_labels_with_the_pretrained_lmM_unless_told_to_learn_one(tiny_root):
    r = mapping.train_run("lmm", 2, 0, TINY_MAP, {}, root=tiny_root)
    assert r["info"]["lmM_source"] == "data/lm/M" and r["info"]["lmM"] is None  # frozen, not saved per run
    assert np.isfinite(r["info"]["selftrain"]["score"]).any()
    own = {**TINY_MAP, "lmm": {**TINY_MAP["lmm"], "lmM_source": "run"}}
    r = mapping.train_run("lmm", 2, 0, own, {}, root=tiny_root)
    assert "lmM_source" not in r["info"] and r["info"]["lmM"].info["sources"]["h_U_A"] > 0
    with pytest.raises(ValueError, match="lmM_source"):
        mapping.train_run("lmm", 2, 0, {**TINY_MAP, "lmm": {**TINY_MAP["lmm"], "lmM_source": "oracle"}}, {},
                          root=tiny_root)


# --- a whole run: folder layout, metrics, determinism -----------------------------------------------------

H_KEYS = {"note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"}
G_KEYS = {"note_f1", "aligned_note_f1", "tempo_log_error", "velocity_mae"}


def _run(root: Path, out: Path, method="lmm", K=2, seed=0) -> dict:
    return mapping.run(method, K, seed, TINY_MAP, {}, root=root, runs_dir=out / "runs", metrics_dir=out / "metrics")


def test_run_folder_layout_and_metrics_keys(tiny_root, tmp_path):
    from lmm_utils.methods.checkpoints import load_g, load_h

    m = _run(tiny_root, tmp_path)
    d = tmp_path / "runs" / "lmm" / "lmm-K2-s0"
    t_ids = sorted(json.loads(line)["id"] for line in (tiny_root / "data/scores/T.jsonl").read_text().splitlines())
    for f in ("h.pt", "g.pt", "metrics.json", "draw.json"):
        assert (d / f).is_file(), f
    saved = read_predictions(d / PREDICTIONS_FILE)  # one compact file, not a MIDI file per excerpt
    assert not (d / "predictions").exists()
    for key in ("h", "h_timbre", "g"):
        assert sorted(saved[key]) == t_ids
        rows = json.loads((d / "scores" / f"{key}.json").read_text())["rows"]  # scored from that file
        assert [r["id"] for r in rows] == t_ids and {r["status"] for r in rows} == {"ok"}
    assert not (d / "lmM").exists()  # lmm ranks with the pretrained LM^M: no copy per run
    assert not list(tmp_path.glob("runs/lmm/.*"))  # no temporary folder left behind
    on_disk = json.loads((d / "metrics.json").read_text())
    assert on_disk["run"] == "lmm-K2-s0" and on_disk["K"] == 2 and len(on_disk["pairs"]) == 2
    for pool in ("T", "T_timbre"):
        assert {"all", "folk", "chorales", "essenFolksong", "bachChorales"} <= set(on_disk["h"][pool])
        assert H_KEYS <= set(on_disk["h"][pool]["all"])
    assert G_KEYS <= set(on_disk["g"]["T"]["all"]) and {"folk", "chorales"} <= set(on_disk["g"]["T"])
    assert "pseudo_motion" in on_disk["diagnostic"] and "lmM_selection" in on_disk["diagnostic"]
    assert {"spearman_lmM_vs_f1", "spearman_recon_vs_f1"} <= set(on_disk["diagnostic"]["lmM_selection"])
    assert "diagnostic" in on_disk["diagnostic"]["note"]
    assert on_disk["eval"]["n_T"] == len(t_ids) and on_disk["eval"]["seconds"] > 0
    flat = json.loads((tmp_path / "metrics" / "lmm" / "lmm-K2-s0.json").read_text())
    assert flat["h"]["T"]["all"]["note_f1"] == pytest.approx(m["h"]["T"]["all"]["note_f1"])
    assert set(flat["h"]["T"]) == {"all", "folk", "chorales"}  # families, not collections
    # one scoring path: metrics.json, the summary stage and the evaluate stage read the same rows
    truth = EvaluationData(tiny_root).truth()
    run = scoring.discover_runs(tmp_path / "runs")[0]
    by_eval = scoring.score_run(run, truth, cache_dir=None)
    assert jsonable(scoring.nest(by_eval)) == {k: on_disk[k] for k in ("h", "g")}
    by_summary = summary.read_run(d)
    assert jsonable({k: by_summary[k] for k in ("h", "g")}) == {k: on_disk[k] for k in ("h", "g")}
    # checkpoints come back and predict the same
    mel = log_mel(sf.read(tiny_root / "data/audio/T" / f"{t_ids[0]}.flac", dtype="float32")[0], FEAT)
    h = load_h(d / "h.pt", lm_root=tiny_root)
    g = load_g(d / "g.pt", lm_root=tiny_root)
    r = mapping.train_run("lmm", 2, 0, TINY_MAP, {}, root=tiny_root)
    for k, v in h.logits(mel).items():
        assert torch.allclose(v, r["h"].logits(mel)[k], atol=1e-5)
    s = ScoreExcerpt.from_dict(json.loads((tiny_root / "data/scores/T.jsonl").read_text().splitlines()[0]))
    assert g.perform([s])[0] == r["g"].perform([s])[0]


def _numbers(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in ("train", "eval")}


def test_same_seed_same_metrics(tiny_root, tmp_path):
    a = _run(tiny_root, tmp_path / "a", "cycle", 2, 1)
    b = _run(tiny_root, tmp_path / "b", "cycle", 2, 1)
    assert json.dumps(_numbers(a), sort_keys=True, default=str) == json.dumps(_numbers(b), sort_keys=True, default=str)
    assert a["train"]["final_loss_h"] == b["train"]["final_loss_h"]


def test_eval_subset_is_fixed(tiny_root):
    ev = EvaluationData(tiny_root)
    assert ev.eval_ids(2) == EvaluationData(tiny_root).eval_ids(2) == sorted(ev.eval_ids(2))
    assert set(ev.eval_ids(2)) < set(ev.eval_ids()) and len(ev.eval_ids()) == POOL_SIZES["T"]


def test_evaluation_door_reads_what_training_may_not(tiny_root):
    ev = EvaluationData(tiny_root)
    ids = ev.eval_ids()
    assert set(ev.motion("T")) == set(ids) and set(ev.motion("P")) == set(ev.scores("P"))
    truth = ev.truth(ids[:2])
    assert truth.ids == sorted(ids[:2]) and truth.collection[ids[0]] == ev.scores("T")[ids[0]].collection
    assert truth.fingerprint() != ev.truth().fingerprint() and truth.fingerprint() == ev.truth(ids[:2]).fingerprint()
    mel = ev.logmel("T_timbre", ids[0], FEAT)
    assert mel.shape[0] == FEAT.n_mels and ev.audio_ids("T_timbre") == sorted(ids)
    assert set(ev.logmels("T", FEAT, limit=2)) == set(sorted(ids)[:2])
    assert set(ev.conditions("T")) == set(ids)
    with pytest.raises(ValueError, match="Hz"):
        ev.logmel("T", ids[0], FeatureConfig(sample_rate=22050))


# --- summary ----------------------------------------------------------------------------------------------

def test_summarize_mean_std_over_seeds():
    def fake(method, K, seed, f1):
        return {"method": method, "K": K, "seed": seed, "train": {"seconds": 1.0},
                "h": {"T": {"all": {"note_f1": f1}}}, "g": {"T": {"all": {"aligned_note_f1": 0.5}}}, "diagnostic": {}}

    s = summary.summarize([fake("a", 1, 0, 0.2), fake("a", 1, 1, 0.4), fake("b", 0, 0, 0.1)])
    row = next(r for r in s["rows"] if r["method"] == "a")
    assert row["n_seeds"] == 2 and row["h"]["note F1"]["mean"] == pytest.approx(0.3)
    assert row["h"]["note F1"]["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert row["h"]["frame F1"]["mean"] is None
    md = summary.markdown(s, missing=["c-K0-s0"])
    assert "| a | 1 | 2 | 0.300 ± 0.141" in md and "c-K0-s0" in md
    assert summary.summary_metrics(s)["a-K1"]["h"]["note F1"] == pytest.approx(0.3)


def test_summary_headline_best_reference_and_the_lms_gains():
    def fake(method, K, f1, g_f1=0.5):
        return {"method": method, "K": K, "seed": 0, "train": {"seconds": 1.0}, "diagnostic": {},
                "h": {"T": {"all": {"note_f1": f1}}}, "g": {"T": {"all": {"note_f1": g_f1}}}}

    runs = [fake("supervised", 4, 0.5), fake("supervised", 16, 0.2), fake("lmm", 16, 0.3, 0.6),
            fake("lmm-no_lmA", 16, 0.9, 0.9), fake("lmm-no_lmV", 16, 0.25, 0.4), fake("surface", 64, 0.8)]
    head = summary.headline(summary.summarize(runs), [0, 4, 16, 64])
    # at K=16; the ablations are not candidates for the best method; gains = lmm minus its ablation
    assert head == pytest.approx({"h_f1_K16_best": 0.3, "best_K16": "lmm", "h_f1_K16_sup": 0.2,
                                  "gain_lmA": 0.3 - 0.9, "gain_lmV": 0.6 - 0.4})
    # without K=16 the sweep's largest K; a method without runs there is left out
    assert summary.headline(summary.summarize(runs[:2]), [0, 4]) == {"h_f1_K4_best": 0.5, "best_K4": "supervised",
                                                                      "h_f1_K4_sup": 0.5}
    assert summary.headline(summary.summarize(runs), [64])["h_f1_K64_sup"] is None  # write_headline drops None


def _fake_run(runs_dir: Path, name: str, f1s: list[float], collections: list[str]) -> None:
    """A run folder as the map stage leaves it: metrics.json (whose h block is stale on purpose) and rows."""
    method, K, seed = parse_run_name(name)
    d = runs_dir / method / name
    (d / "scores").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"run": name, "method": method, "K": K, "seed": seed,
                                                "train": {"seconds": 2.0}, "h": {"T": {"all": {"note_f1": 9.9}}},
                                                "diagnostic": {}}))
    rows = [{"id": f"x{i}", "collection": c, "family": family(c), "status": "ok", "note_f1": f}
            for i, (f, c) in enumerate(zip(f1s, collections))]
    (d / "scores" / "h.json").write_text(json.dumps({"fingerprint": "-", "rows": rows}))


def test_summary_stage_reads_the_runs_rows(tmp_path):
    colls = ["essenFolksong", "bachChorales", "oneills1850"]
    _fake_run(tmp_path / "data/runs", "a-K1-s0", [1.0, 0.0, 0.5], colls)
    _fake_run(tmp_path / "data/runs", "a-K1-s1", [0.5, 0.5, 0.5], colls)
    (tmp_path / "data/runs/a/a-K1-s2").mkdir()  # unfinished: no metrics.json, no scores
    sweep = {"methods": ["a"], "Ks": [1], "seeds": [0, 1, 2]}
    runs = summary.collect(sweep, tmp_path)
    assert [r["seed"] for r in runs] == [0, 1] and runs[0]["h"]["T"]["all"]["note_f1"] == pytest.approx(0.5)
    assert runs[0]["h"]["T"]["folk"]["note_f1"] == pytest.approx(0.75) and runs[0]["h"]["T"]["chorales"]["n"] == 1
    assert summary.missing_runs(sweep, tmp_path) == ["a-K1-s2"]
    s, md, missing = summary.write_summary(sweep, tmp_path)
    row = s["rows"][0]
    assert row["h"]["note F1"]["mean"] == pytest.approx(0.5) and row["h"]["note F1 chorales"]["mean"] == pytest.approx(0.25)
    assert missing == ["a-K1-s2"] and "a-K1-s2" in (tmp_path / "reports/summary.md").read_text()
    assert json.loads((tmp_path / "reports/metrics/summary.json").read_text())["a-K1"]["h"]["note F1"] == pytest.approx(0.5)
    assert json.loads((tmp_path / "reports/headline/map.json").read_text()) == {"h_f1_K1_best": 0.5, "best_K1": "a"}


def test_metric_tables_and_flat_metrics():
    group = {"note_f1": 0.5, "note_offset_f1": 0.25, "note_offset_velocity_f1": 0.1, "frame_f1": float("nan"), "n": 2}
    m = {"h": {"T": {"all": group, "folk": group, "essenFolksong": group}},
         "g": {"T": {"all": {"aligned_note_f1": 0.5, "n": 2}}}, "diagnostic": {"note": "x", "pseudo_motion": {"note_f1": 0.7}},
         "train": {"seconds": 1.0}, "eval": {"seconds": 2.0}}
    t = mapping.metric_tables(m)
    assert set(t["h"]) == {"h T all", "h T folk", "h T essenFolksong"} and t["diagnostic"] == {"pseudo_motion": {"note_f1": 0.7}}
    flat = mapping.flat_metrics(m)
    assert set(flat["h"]["T"]) == {"all", "folk"} and flat["h"]["T"]["all"]["frame_f1"] is None
    assert flat["diagnostic_pseudo_note_f1"] == 0.7 and json.dumps(flat, allow_nan=False)


# --- pieces -----------------------------------------------------------------------------------------------

def test_fast_decode_equals_decode():
    from lmm_utils.methods.wrappers import fast_decode
    from lmm_utils.models.transcriber import decode

    g = torch.Generator().manual_seed(0)
    out = {k: torch.randn(88, 120, generator=g) * 3 - 4 for k in ("onset", "frame", "velocity")}
    assert fast_decode(out, 50.0) == decode(out, 50.0)


def test_score_lm_features_follow_score_order(tiny_root):
    from lmm_utils.methods.lm_features import load_lm_features

    lmV = load_lm_features("V", tiny_root / "data/lm/V")
    s = _score("T", 1, np.random.default_rng(5))  # two voices: token order differs from score order
    feats = lmV(s)
    assert feats.shape == (len(s.notes), lmV.dim) and np.abs(feats).sum(1).min() > 0
    # the feature of a note is the hidden state right after its pitch token
    ids = lmV.lm.tokenizer.encode(s)
    names = lmV.lm.tokenizer.names(ids)
    h = lmV.lm.hidden(ids).numpy()
    for i, n in enumerate(s.notes):
        rows = [j for j in range(len(ids)) if np.allclose(h[j], feats[i], atol=1e-5)]
        assert rows and names[rows[0] - 1] == f"p:{n.pitch}"


def test_grid_runs_each_run_once_and_reuses_it_by_fingerprint(tiny_root, tmp_path):
    """One process runs a method's K x seed grid; a finished run with the same fingerprint is reused, a new K runs
    alone, and a change of the run's params (not of the sweep lists) runs it again."""
    from lmm_utils.mapping import grid

    kw = dict(root=tiny_root, runs_dir=tmp_path / "runs", metrics_dir=tmp_path / "metrics", log=None)
    first = grid.run_grid("supervised", [0], [0, 1], TINY_MAP, {}, **kw)
    assert [(r.name, r.reused) for r in first] == [("supervised-K0-s0", False), ("supervised-K0-s1", False)]
    assert first[0].metrics[grid.FINGERPRINT_KEY]
    assert first[0].metrics["decode"]["harmonic_ratio"] > 0  # how its predictions were decoded (robustness re-uses it)
    wider = {**TINY_MAP, "Ks": [0, 2], "methods": ["supervised", "lmm"]}  # the sweep lists are not a run's inputs
    second = grid.run_grid("supervised", [0, 2], [0, 1], wider, {}, **kw)
    assert [r.reused for r in second] == [True, True, False, False]
    assert second[0].metrics == first[0].metrics
    # the metric code changed since a run was scored (here: its saved rows carry another fingerprint): the run is
    # reused and re-scored from its saved predictions, not trained again
    h_scores = tmp_path / "runs/supervised/supervised-K0-s0/scores/h.json"
    saved = json.loads(h_scores.read_text())
    h_scores.write_text(json.dumps({**saved, "fingerprint": "old-metric-code", "rows": []}))
    again = grid.run_grid("supervised", [0], [0], TINY_MAP, {}, **kw)
    assert again[0].reused and json.loads(h_scores.read_text())["fingerprint"] == saved["fingerprint"]
    assert json.loads(h_scores.read_text())["rows"] == saved["rows"]
    changed = {**TINY_MAP, "method": {**TINY_MAP["method"], "lr": TINY_MAP["method"].get("lr", 0.003) * 2}}
    third = grid.run_grid("supervised", [0], [0], changed, {}, **kw)
    assert [r.reused for r in third] == [False]
    table = grid.grid_table(second)
    assert set(table) == {"supervised-K0-s0", "supervised-K0-s1", "supervised-K2-s0", "supervised-K2-s1"}
    assert table["supervised-K2-s0"]["reused"] is False and table["supervised-K0-s0"]["h T"] is not None
    assert [r.name for r in scoring.discover_runs(tmp_path / "runs")] == sorted(table)


def test_a_restored_run_is_reused_by_the_grid(tiny_root, tmp_path):
    """The point of the archive: a run saved on one machine and restored in a fresh project is not trained again."""
    from lmm_utils.mapping import grid
    from lmm_utils.pipeline import run_archive as ra

    def run_in(proj):
        return grid.run_grid("supervised", [0], [0], TINY_MAP, {}, root=tiny_root, runs_dir=proj / "data/runs",
                             metrics_dir=proj / "reports/metrics/map", log=None)

    made = run_in(tmp_path / "one")
    assert not made[0].reused
    ra.save(tmp_path / "archive", tmp_path / "one")
    assert ra.restore(tmp_path / "archive", tmp_path / "two").copied == ["supervised-K0-s0"]
    again = run_in(tmp_path / "two")
    assert again[0].reused and again[0].metrics == made[0].metrics


def test_grid_workers_run_the_same_runs_in_parallel_processes(tiny_root, tmp_path):
    """workers=2 trains the pending runs in two processes; each run gets its own folder and metrics, the grid's order
    is kept, the worker count is not part of a run's fingerprint (a run made with 2 workers is reused with 1), and a
    run's predictions do not depend on the process that made it."""
    from lmm_utils.mapping import grid

    kw = dict(root=tiny_root, runs_dir=tmp_path / "runs", metrics_dir=tmp_path / "metrics", log=None)
    par = grid.run_grid("supervised", [0], [0, 1], {**TINY_MAP, "workers": 2}, {}, **kw)
    assert [(r.name, r.reused) for r in par] == [("supervised-K0-s0", False), ("supervised-K0-s1", False)]
    assert all((tmp_path / f"runs/supervised/{r.name}/metrics.json").is_file() for r in par)
    again = grid.run_grid("supervised", [0], [0, 1], {**TINY_MAP, "workers": 1}, {}, **kw)
    assert [r.reused for r in again] == [True, True]
    solo = grid.run_grid("supervised", [0], [1], TINY_MAP, {}, **{**kw, "runs_dir": tmp_path / "solo",
                                                                    "metrics_dir": tmp_path / "solo_metrics"})
    assert solo[0].metrics[grid.FINGERPRINT_KEY] == par[1].metrics[grid.FINGERPRINT_KEY]
    par_h = json.loads((tmp_path / "runs/supervised/supervised-K0-s1/scores/h.json").read_text())["rows"]
    solo_h = json.loads((tmp_path / "solo/supervised/supervised-K0-s1/scores/h.json").read_text())["rows"]
    assert len(par_h) == len(solo_h) > 0 and par_h == solo_h  # threads = 1 either way: the same arithmetic


def test_grid_workers_fail_fast_train_a_repeated_run_once_and_keep_threads_fixed(tiny_root, tmp_path, monkeypatch):
    """A run that fails in a worker fails the grid with its own error; a K listed twice is one run; a lone pending run
    gets the same thread count as it would beside others (threads // workers), and the caller's threads come back."""
    import torch

    from lmm_utils.mapping import grid

    kw = dict(root=tiny_root, runs_dir=tmp_path / "runs", metrics_dir=tmp_path / "metrics", log=None)
    with pytest.raises(ValueError, match="pairs asked for"):
        grid.run_grid("supervised", [0, 999], [0], {**TINY_MAP, "workers": 2}, {}, **kw)
    seen = []
    real_run = grid.runner.run
    monkeypatch.setattr(grid.runner, "run", lambda *a, **k: seen.append(a[3]["method"]["threads"]) or real_run(*a, **k))
    torch.set_num_threads(2)
    two = {**TINY_MAP, "workers": 2, "method": {**TINY_MAP["method"], "threads": 2}}
    runs = grid.run_grid("supervised", [0, 0], [3], two, {}, **kw)
    assert [r.name for r in runs] == ["supervised-K0-s3", "supervised-K0-s3"] and seen == [1]
    assert torch.get_num_threads() == 2


def test_auto_workers_leave_no_core_idle_at_the_end_and_keep_threads_per_machine(tiny_root, tmp_path, monkeypatch):
    """workers 0 (auto): 3 runs on 2 cores all at once, 4 two at a time, 9 three at a time; a set count is kept (at most
    the pending runs); a run's threads are method.threads // cores whatever is pending."""
    from lmm_utils.mapping import grid

    assert [grid.plan_workers(0, n, cores=2) for n in (1, 2, 3, 4, 5, 6, 9)] == [1, 2, 3, 2, 3, 2, 3]
    assert grid.plan_workers(0, 9, cores=16) == 9 and grid.plan_workers(0, 5, cores=1) == 1
    assert grid.plan_workers(2, 9, cores=2) == 2 and grid.plan_workers(3, 1, cores=2) == 1
    seen = []
    real_run = grid.runner.run
    monkeypatch.setattr(grid, "usable_cores", lambda: 2)
    monkeypatch.setattr(grid.runner, "run", lambda *a, **k: seen.append(a[3]["method"]["threads"]) or real_run(*a, **k))
    auto = {**TINY_MAP, "workers": 0, "method": {**TINY_MAP["method"], "threads": 2}}
    grid.run_grid("supervised", [0], [5], auto, {}, root=tiny_root, runs_dir=tmp_path / "runs",
                  metrics_dir=tmp_path / "metrics", log=None)
    assert seen == [1]  # alone, yet with the thread count it would have beside another run on 2 cores


def test_data_fingerprint_ignores_timings_but_not_data(tmp_path):
    from lmm_utils.mapping import grid

    (tmp_path / "data/lm/A").mkdir(parents=True)
    info = tmp_path / "data/lm/A/info.json"
    info.write_text(json.dumps({"steps": 10, "train_seconds": 1.5}))
    mp = {"lm": {"A": "data/lm/A"}}
    before = grid.data_fingerprint(mp, tmp_path)
    info.write_text(json.dumps({"steps": 10, "train_seconds": 9.5}))  # a re-run: other seconds, same model
    assert grid.data_fingerprint(mp, tmp_path) == before
    info.write_text(json.dumps({"steps": 11, "train_seconds": 9.5}))
    assert grid.data_fingerprint(mp, tmp_path) != before
