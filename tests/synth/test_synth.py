"""The differentiable piano S (models/synth*.py) and stage 05 (lmm_utils/synth/). CPU, seconds."""
import copy
import math

import numpy as np
import pytest
import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.motion import N_KEYS, to_roll
from lmm_utils.models.synth import (
    KINDS,
    AdditiveConfig,
    NeuralConfig,
    build_synth,
    linear_scan,
    load_synth,
    make_synth,
    save_synth,
    window_kernel,
)
from lmm_utils.synth.fit import FIT_KEYS, BaselineConfig, TemplateBaseline, fit_synth
from lmm_utils.synth.judge import evaluate_synth, gradient_check, spectral_metrics
from lmm_utils.synth.pairs import SynthPairs
from lmm_utils.synth.random_motion import RandomMotionConfig, random_performance

FEAT = FeatureConfig()
FLOOR = math.log(FEAT.log_floor)


def tiny(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    cfg = AdditiveConfig.tiny() if kind == "additive" else NeuralConfig.tiny()
    return make_synth(kind, cfg, FEAT)


def random_roll(b: int = 2, t: int = 30, seed: int = 0, density: float = 0.03):
    g = torch.Generator().manual_seed(seed)
    onset = (torch.rand(b, N_KEYS, t, generator=g) < density).float()
    velocity = onset * (0.2 + 0.8 * torch.rand(b, N_KEYS, t, generator=g))
    sustain = torch.zeros(b, N_KEYS, t)
    for bi, k, ti in onset.nonzero().tolist():  # hold each struck key for a few frames
        sustain[bi, k, ti:ti + 6] = 1.0
    return onset, velocity, sustain


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    s = tiny(kind)
    o, v, h = random_roll(b=3, t=25)
    out = s(o, v, h)
    assert out.shape == (3, FEAT.n_mels, 25)
    assert torch.isfinite(out).all()
    assert s(o[0], v[0], h[0]).shape == (FEAT.n_mels, 25)  # unbatched
    assert s(o, v, h, piano=torch.tensor([0, 1, -1])).shape == (3, FEAT.n_mels, 25)


@pytest.mark.parametrize("kind", KINDS)
def test_silence_in_silence_out(kind):
    s = tiny(kind)
    z = torch.zeros(2, N_KEYS, 20)
    out = s(z, z, z)
    torch.testing.assert_close(out, torch.full_like(out, FLOOR))
    # Sustain without any onset is silence too (nothing was struck).
    assert torch.allclose(s(z, z, torch.ones_like(z)), torch.full_like(out, FLOOR))


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_every_input(kind):
    s = tiny(kind)
    o, v, h = random_roll(t=30)
    # Soft inputs, as a learner's would be: every key gets some onset mass.
    o = (0.5 * o + 0.05).requires_grad_(True)
    v = (0.5 + 0.3 * v).requires_grad_(True)
    h = (0.8 * h + 0.1).requires_grad_(True)
    s(o, v, h).mean().backward()
    for name, x in (("onset", o), ("velocity", v), ("sustain", h)):
        assert x.grad is not None and torch.isfinite(x.grad).all(), name
        assert x.grad.abs().sum() > 0, name
    # Gradient to a key that was never struck: adding a note there must change the sound.
    assert o.grad[:, 40].abs().sum() > 0
    for name, p in s.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_output(kind):
    o, v, h = random_roll(seed=3)
    a, b = tiny(kind, seed=7)(o, v, h), tiny(kind, seed=7)(o, v, h)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    cfg = RandomMotionConfig(seconds=3.0)
    p1 = random_performance(np.random.default_rng(5), cfg)
    p2 = random_performance(np.random.default_rng(5), cfg)
    assert p1.to_dict() == p2.to_dict()


@pytest.mark.parametrize("kind", KINDS)
def test_struck_row_skipping_is_exact(kind):
    """Without input gradients S computes only struck keys; the result must equal the dense path."""
    s = tiny(kind)
    o, v, h = random_roll(t=30)
    fast = s(o, v, h)
    dense = s(o.clone().requires_grad_(True), v, h)
    torch.testing.assert_close(fast, dense.detach(), rtol=1e-5, atol=1e-5)


def test_linear_scan_matches_loop_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(12, 3, 4, generator=g, dtype=torch.float64)
    x = torch.randn(12, 3, 1, generator=g, dtype=torch.float64)  # broadcast against d
    out = linear_scan(d, x)
    ref, acc = [], torch.zeros(3, 4, dtype=torch.float64)
    for t in range(12):
        acc = d[t] * acc + x[t]
        ref.append(acc)
    torch.testing.assert_close(out, torch.stack(ref))
    assert torch.autograd.gradcheck(linear_scan, (d.requires_grad_(True), x.requires_grad_(True)))


def test_window_kernel_is_a_partition_of_the_window():
    h = window_kernel(FEAT)
    assert h.shape == (9,) and abs(float(h.sum()) - 1.0) < 1e-6
    np.testing.assert_allclose(h, h[::-1], atol=1e-3)  # centred frame, centred blocks: ~symmetric


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_check_autograd_vs_finite_differences(kind):
    errs = gradient_check(tiny(kind), frames=12, n_directions=2)
    assert set(errs) == {"onset", "velocity", "sustain", "parameters"}
    assert max(errs.values()) < 1e-4, errs


def teacher_pairs(n: int = 6, t: int = 40, seed: int = 2, pianos: int = 1) -> SynthPairs:
    """(roll, log-mel) pairs whose sound is a tiny additive S's (a 'teacher' with non-default physics): fitting
    data without FluidSynth."""
    teacher = tiny("additive", seed=1)
    with torch.no_grad():
        teacher.gamma.fill_(3.0)
        teacher.slope[0] = -2.0
        teacher.log_tau[:, 0] += 0.7
    o, v, h = random_roll(b=n, t=t, seed=seed, density=0.05)
    piano = torch.arange(n) % pianos
    with torch.no_grad():
        y = teacher(o, v, h, piano=piano)
    return SynthPairs(onset=o.to(torch.uint8), velocity=(v * 127).round().to(torch.uint8),
                      sustain=h.to(torch.uint8), logmel=y.half(), piano=piano,
                      lengths=torch.full((n,), t), ids=[str(i) for i in range(n)])


def test_fit_loss_decreases_on_a_tiny_problem():
    """A student additive S fitted to a teacher's output (no FluidSynth needed) gets closer."""
    pairs = teacher_pairs()
    student = tiny("additive", seed=0)
    hist = fit_synth(student, pairs, pairs, {"steps": 30, "batch": 4, "lr": 0.05, "log_every": 5, "warmup": 2},
                     progress=False)
    assert hist["train_loss"][-1] < 0.7 * hist["train_loss"][0], hist["train_loss"]


def test_save_load_roundtrip(tmp_path):
    section = {"kind": "neural", "pianos": [["a.sf2", 0], ["b.sf2", 1]],
               "neural": {"channels": 3, "hidden": 4, "key_dim": 2, "decay_kernel": 3, "steps": 5, "lr": 0.1}}
    torch.manual_seed(0)
    s = build_synth(section, FEAT, fit_keys=FIT_KEYS)
    assert s.kind == "neural" and s.cfg.n_pianos == 2 and s.cfg.channels == 3
    save_synth(s, tmp_path / "S.pt")
    s2 = load_synth(tmp_path / "S.pt")
    o, v, h = random_roll()
    torch.testing.assert_close(s.eval()(o, v, h), s2(o, v, h))


def test_baseline_and_metrics():
    b = TemplateBaseline(BaselineConfig(1), FEAT)
    z = torch.zeros(1, N_KEYS, 10)
    assert torch.allclose(b(z, z, z), torch.full((1, FEAT.n_mels, 10), FLOOR))
    y = torch.randn(FEAT.n_mels, 20)
    m = spectral_metrics(y, y, FEAT.log_floor)
    assert m["logmel_l1"] == 0.0 and m["spectral_convergence"] == 0.0


def test_random_performance_is_playable():
    cfg = RandomMotionConfig(seconds=5.0, pedal_prob=1.0)
    perf = random_performance(np.random.default_rng(0), cfg)
    assert perf.notes and perf.duration <= cfg.seconds
    by_key = {}
    for n in perf.notes:  # no overlapping presses of one key
        assert n.offset > n.onset and 21 <= n.pitch <= 108 and 1 <= n.velocity <= 127
        assert n.onset >= by_key.get(n.pitch, -1.0)
        by_key[n.pitch] = n.offset
    roll = to_roll(perf, FEAT.fps, n_frames=int(cfg.seconds * FEAT.fps) + 1)
    assert roll["sustain"].sum() >= roll["frame"].sum()  # the pedal only prolongs


def test_render_pair_aligns_roll_and_logmel():
    pytest.importorskip("fluidsynth")
    from lmm_utils.data.render import MissingSystemDependency, RecordingConditions
    from lmm_utils.synth.pairs import render_pair

    perf = random_performance(np.random.default_rng(1), RandomMotionConfig(seconds=2.0))
    try:
        pair, audio = render_pair(perf, RecordingConditions("TimGM6mb.sf2", 0), FEAT, seconds=2.0)
    except MissingSystemDependency as exc:
        pytest.skip(str(exc))
    assert len(audio) == 2 * FEAT.sample_rate
    assert pair["onset"].shape == (N_KEYS, pair["logmel"].shape[1]) == (N_KEYS, FEAT.n_frames(len(audio)))
    assert pair["logmel"].max() > FLOOR + 5  # it made sound


@pytest.mark.parametrize("kind", KINDS)
def test_pianos_and_the_average_piano(kind):
    """piano=None and piano=-1 both select the average piano; fitted pianos can sound different."""
    s = tiny(kind)
    with torch.no_grad():
        s.eq[0] += 1.0  # piano 0 one neper louder in power than piano 1
    o, v, h = random_roll(b=2)
    avg = s(o, v, h)
    torch.testing.assert_close(avg, s(o, v, h, piano=torch.tensor([-1, -1])))
    p0, p1 = s(o, v, h, piano=torch.tensor([0, 0])), s(o, v, h, piano=1)
    loud = p1 > FLOOR + 8  # well above the floor, the EQ offsets show up exactly
    torch.testing.assert_close((p0 - p1)[loud], torch.ones_like(p0[loud]), atol=1e-3, rtol=0)
    torch.testing.assert_close((avg - p1)[loud], torch.full_like(p1[loud], 0.5), atol=1e-3, rtol=0)


# ---------------------------------------------------------------- stage 05 (lmm_utils/synth/stage.py)

def tiny_stage_section(**over) -> dict:
    """A params.yaml `synth` section with every key, sized for seconds on a CPU."""
    section = {
        "seed": 0, "kind": "neural", "kinds": ["additive", "neural"],
        "pianos": [["FluidR3_GM.sf2", 0], ["TimGM6mb.sf2", 0]], "heldout_piano": ["TimGM6mb.sf2", 1],
        "n_random_excerpts": 3, "n_val_excerpts": 1, "excerpt_seconds": 1.5, "workers": 1, "threads": 1,
        "motion": {"notes_per_s": [2.0, 6.0], "chord_prob": 0.3, "max_chord": 3, "repeat_prob": 0.15,
                   "duration_s": [0.05, 0.8], "velocity": [30, 110], "pedal_prob": 0.5},
        "baseline": {"steps": 3, "batch": 2, "lr": 0.1}, "piano_dropout": 0.25,
        "additive": {"steps": 3, "batch": 2, "lr": 0.05, "n_partials": 8, "n_stages": 2, "velocity_anchors": 2},
        "neural": {"steps": 3, "batch": 2, "lr": 0.05, "channels": 3, "hidden": 4, "key_dim": 2, "decay_kernel": 3,
                   "velocity_basis": 2},
        "eval_pool": "T", "eval_limit": None, "speed_batch": 1, "grad_check_frames": 8,
    }
    return {**section, **over}


def params_synth_sections(root) -> list[tuple[str, dict]]:
    from lmm_utils.core.params import deep_merge, load_params

    params = load_params(root / "params.yaml")
    tiny_profile = deep_merge(params, load_params(root / "profiles" / "tiny.yaml"))
    return [("params.yaml", params["synth"]), ("params.yaml + profiles/tiny.yaml", tiny_profile["synth"])]


def test_stage_accepts_every_key_of_params_yaml(root):
    """Every key of params.yaml's `synth` (also with the tiny profile) is read where stage_config checks it: the
    stage config, the motion config, the kinds' configs and the fitting settings."""
    from lmm_utils.models.synth import kind_config
    from lmm_utils.synth.random_motion import motion_config
    from lmm_utils.synth.stage import fit_settings, kind_sections, stage_config

    for name, section in params_synth_sections(root):
        cfg = stage_config(section)
        assert cfg.kind in cfg.kinds and len(cfg.piano_list) == len(section["pianos"]), name
        motion = motion_config(cfg.motion, cfg.excerpt_seconds)
        assert motion.seconds == section["excerpt_seconds"] and motion.velocity == tuple(section["motion"]["velocity"])
        assert fit_settings(cfg, "baseline").steps == section["baseline"]["steps"]
        for kind in cfg.kinds:
            sub = section[kind]
            fit, kcfg = fit_settings(cfg, kind), kind_config(kind_sections(cfg), kind, FIT_KEYS)
            assert (fit.steps, fit.batch, fit.lr, fit.seed, fit.piano_dropout) == (
                sub["steps"], sub["batch"], sub["lr"], section["seed"], section["piano_dropout"]), (name, kind)
            assert all(getattr(kcfg, k) == v for k, v in sub.items() if k not in FIT_KEYS), (name, kind)
            assert kcfg.n_pianos == len(section["pianos"])


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(n_random_excerpt=4), "n_random_excerpts"),  # typo: the closest key is named
    (lambda s: s["additive"].update(n_partial=8), "n_partials"),
    (lambda s: s["neural"].update(step=3), "steps"),
    (lambda s: s["motion"].update(pedal_probability=0.1), "pedal_prob"),
    (lambda s: s["motion"].update(seconds=3.0), "excerpt_seconds"),  # would be ignored: refused
    (lambda s: s["baseline"].update(n_partials=8), "n_partials"),  # the baseline has fitting settings only
    (lambda s: s["additive"].update(seed=3), "synth.seed"),  # section-wide: a kind's own would be ignored
    (lambda s: s.pop("eval_pool"), "eval_pool"),
    (lambda s: s["baseline"].pop("lr"), "lr"),
    (lambda s: s.update(kind="spectral"), "kind"),
])
def test_stage_config_refuses_unknown_or_missing_keys(edit, message):
    """stage_config checks every key before anything is rendered or fitted."""
    from lmm_utils.core.params import ParamsError
    from lmm_utils.synth.stage import stage_config

    section = copy.deepcopy(tiny_stage_section())
    stage_config(section)
    edit(section)
    with pytest.raises(ParamsError, match=message):
        stage_config(section)


def test_fit_all_is_seeded_and_saves_what_it_fitted(tmp_path):
    """fit_all: the baseline and both kinds, each from the seed; data/synth/<kind>.pt and S.pt (the downstream
    kind) load back to the fitted synthesizers; the same seed gives the same weights."""
    from lmm_utils.synth.stage import fit_all, fit_metrics, fit_summary, stage_config

    cfg = stage_config(tiny_stage_section())
    train, val = teacher_pairs(n=4, t=30, pianos=2), teacher_pairs(n=2, t=30, seed=5, pianos=2)
    baseline, models, hist = fit_all(cfg, FEAT, train, val, out_dir=tmp_path / "a", progress=False)
    assert list(hist) == ["baseline", "additive", "neural"] and list(models) == ["additive", "neural"]
    assert all(h["config"]["steps"] == 3 and len(h["val_loss"]) == 1 for h in hist.values())
    assert models["additive"].cfg.n_partials == 8 and models["neural"].cfg.n_pianos == 2
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["S.pt", "additive.pt", "neural.pt"]
    o, v, h, piano, _ = val.batch([0, 1])
    for name, kind in (("additive.pt", "additive"), ("neural.pt", "neural"), ("S.pt", cfg.kind)):
        torch.testing.assert_close(load_synth(tmp_path / "a" / name)(o, v, h, piano=piano),
                                   models[kind](o, v, h, piano=piano), rtol=0, atol=0)
    _, again, _ = fit_all(cfg, FEAT, train, val, out_dir=tmp_path / "b", progress=False)
    for kind in cfg.kinds:
        for (k, a), b in zip(models[kind].state_dict().items(), again[kind].state_dict().values()):
            assert torch.equal(a, b), (kind, k)
    m = fit_metrics(hist, render_seconds=1.5)
    assert list(m) == ["fit_seconds", "fit_seconds_total_with_render"] and list(m["fit_seconds"]) == list(hist)
    assert m["fit_seconds_total_with_render"] == pytest.approx(1.5 + sum(m["fit_seconds"].values()))
    assert [line.split(":")[0] for line in fit_summary(hist, cfg.kinds)] == list(cfg.kinds)


def test_stage_judging_steps():
    """evaluate_all, gradient_checks, speeds, median_excerpt and spectrogram_panels on a tiny fitted set."""
    from lmm_utils.synth.stage import (
        evaluate_all,
        excerpt_panels,
        gradient_checks,
        median_excerpt,
        spectrogram_panels,
        speeds,
        stage_config,
    )

    cfg = stage_config(tiny_stage_section())
    pairs = teacher_pairs(n=3, t=20, pianos=2)
    models = {"additive": tiny("additive"), "neural": tiny("neural")}
    every = {"baseline": TemplateBaseline(BaselineConfig(2), FEAT), **models}
    m = evaluate_all(every, pairs, pairs)
    assert list(m) == ["test", "test_known_piano", "random_val_known_piano"]
    assert list(m["test_known_piano"]) == ["baseline (known piano)", "additive (known piano)", "neural (known piano)"]
    assert all(r["n"] == 3 and math.isfinite(r["logmel_l1"]) for part in m.values() for r in part.values())
    grads = gradient_checks(cfg, models)
    assert list(grads) == ["additive", "neural"] and max(max(g.values()) for g in grads.values()) < 1e-4
    speed = speeds(cfg, models)
    assert all(s["batch"] == 1 and s["seconds_per_excerpt"] == 10.0 and s["forward_s"] > 0 for s in speed.values())
    pick = median_excerpt(models["neural"], pairs)
    l1 = [r["logmel_l1"] for r in evaluate_synth(models["neural"], pairs)]
    assert l1[pick] == sorted(l1)[1]
    panels = spectrogram_panels(cfg, every, pairs, pick)
    assert list(panels) == ["motion", "FluidSynth (clean)", "S baseline (its piano)", "S additive (its piano)",
                            "S neural (its piano)", "S neural (average piano)"]
    assert panels["motion"].shape == (N_KEYS, 20) and all(p.shape == (FEAT.n_mels, 20) for p in list(panels.values())[1:])
    first = excerpt_panels(cfg, pairs, 1)
    assert list(first) == ["motion (sustain, onsets dark)", "FluidSynth TimGM6mb.sf2:0"]


def write_fake_pool(root, pool: str = "T", n: int = 2) -> None:
    """data/motion/<pool>.jsonl and data/audio/<pool>/conditions.jsonl for n random excerpts (a reverb and gain
    the clean re-rendering drops)."""
    import json

    (root / "data" / "motion").mkdir(parents=True)
    (root / "data" / "audio" / pool).mkdir(parents=True)
    pianos = [("FluidR3_GM.sf2", 0), ("TimGM6mb.sf2", 0)]
    with open(root / "data" / "motion" / f"{pool}.jsonl", "w") as fm, \
            open(root / "data" / "audio" / pool / "conditions.jsonl", "w") as fc:
        for i in range(n):
            perf = random_performance(np.random.default_rng([7, i]), RandomMotionConfig(seconds=1.5))
            fm.write(json.dumps({"id": f"{pool}-{i}", "performance": perf.to_dict()}) + "\n")
            sf, preset = pianos[i % len(pianos)]
            fc.write(json.dumps({"id": f"{pool}-{i}", "conditions": {"soundfont": sf, "preset": preset,
                                                                      "reverb_level": 0.3, "gain_db": -3.0}}) + "\n")


def test_run_stage_writes_the_stage_outputs(tmp_path):
    """The whole stage without a notebook, on FluidSynth: every file the DVC stage declares, the metrics in the
    notebook's order, and the pool and held-out-piano paths taken."""
    pytest.importorskip("fluidsynth")
    import json

    from lmm_utils.data.render import MissingSystemDependency, find_soundfont
    from lmm_utils.synth.stage import run_stage

    try:
        for sf in ("FluidR3_GM.sf2", "TimGM6mb.sf2"):
            find_soundfont(sf)
    except MissingSystemDependency as exc:
        pytest.skip(str(exc))
    write_fake_pool(tmp_path)
    features = {"sample_rate": 16000, "hop_length": 320, "n_fft": 2048, "n_mels": 128, "fmin": 27.5, "fmax": 8000.0}
    metrics = run_stage(tiny_stage_section(), features, root=tmp_path)
    assert list(metrics) == ["kind", "pianos", "render_seconds", "fit_seconds", "fit_seconds_total_with_render",
                             "eval_set", "test", "test_known_piano", "random_val_known_piano", "heldout_piano",
                             "gradient_check", "speed"]
    assert metrics["eval_set"] == "T" and metrics["pianos"] == ["FluidR3_GM.sf2:0", "TimGM6mb.sf2:0"]
    assert all(r["n"] == 2 for r in metrics["heldout_piano"].values())
    assert json.loads((tmp_path / "reports" / "metrics" / "synth.json").read_text()) == json.loads(json.dumps(metrics))
    for rel in ("data/synth/S.pt", "data/synth/additive.pt", "data/synth/neural.pt",
                "reports/plots/synth_fit_curves.png", "reports/plots/synth_spectrograms.png"):
        assert (tmp_path / rel).stat().st_size > 0, rel
    assert load_synth(tmp_path / "data" / "synth" / "S.pt").kind == "neural"


def test_headline_is_the_mapping_kinds_log_mel_l1(tmp_path):
    from lmm_utils.core.io import read_json
    from lmm_utils.synth import stage

    metrics = {"kind": "neural", "test": {"baseline": {"logmel_l1": 1.9}, "neural": {"logmel_l1": 0.777777}}}
    assert stage.headline(metrics) == {"S_l1": 0.777777}
    assert stage.write_stage_metrics(metrics, tmp_path) == {"S_l1": 0.7778}
    assert read_json(tmp_path / stage.METRICS_FILE) == metrics and read_json(tmp_path / stage.HEADLINE_FILE) == {"S_l1": 0.7778}
