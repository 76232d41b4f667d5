"""Project wiring: notebooks' parameter cells match params.yaml, notebooks carry no outputs,
environment.yml agrees with pyproject.toml, every dvc.yaml stage runs a notebook through the runner."""
import ast
import json
import re
import tomllib

import pytest
import yaml

from lmm_utils.core.params import ParamsError, apply_profile, deep_merge, load_params, require


def _notebooks(root):
    return sorted((root / "notebooks").glob("*.ipynb"))


def _parameters_cell(nb):
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return "".join(cells[0]["source"])


def test_notebooks_exist(root):
    assert len(_notebooks(root)) >= 4


@pytest.mark.parametrize("nb_name", ["01_corpus", "02_split", "03_engrave", "04_perform"])
def test_data_notebooks_present(root, nb_name):
    assert (root / "notebooks" / f"{nb_name}.ipynb").is_file()


def test_parameter_cells_equal_params_yaml(root):
    params = load_params(root / "params.yaml")
    for path in _notebooks(root):
        source = _parameters_cell(json.loads(path.read_text()))
        namespace: dict = {}
        exec(compile(ast.parse(source), str(path), "exec"), namespace)
        for name, value in namespace.items():
            if name.startswith("__") or name not in params:
                continue
            assert value == params[name], (f"{path.name}: parameter {name!r} differs from params.yaml; "
                                           "run `python -m lmm_utils.core.params sync-notebooks`")


def test_notebooks_committed_without_outputs(root):
    for path in _notebooks(root):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs", []) == [], f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"


def test_dvc_stages_run_notebooks_through_the_runner(root):
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        if "foreach" in stage:
            stage = stage["do"]
        cmd = stage["cmd"]
        assert cmd.startswith("python -m lmm_utils.pipeline.stage notebooks/"), name
        nb = cmd.split()[3]
        assert nb in stage["deps"], f"stage {name}: its notebook must be a dependency"
        outs = [o if isinstance(o, str) else next(iter(o)) for o in stage.get("outs", [])]
        assert any(o.startswith("reports/") and o.endswith(".ipynb") for o in outs), f"{name}: executed notebook is an output"
        deps = set(stage["deps"])
        assert not deps & set(outs), f"{name}: an output is also a dependency"


def _names(reqs):
    return {re.split(r"[<>=!\[ ]", r.strip())[0].lower().replace("_", "-") for r in reqs}


def test_environment_yml_agrees_with_pyproject(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = _names([p for p in pip if not p.startswith("-e")])
    assert wanted == got, f"only in pyproject: {wanted - got}; only in environment.yml: {got - wanted}"
    assert "python=3.11" in env["dependencies"] and "fluidsynth" in env["dependencies"]
    assert "torch==2.13.0" in project["dependencies"]


def test_params_errors_are_clear(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match=r"corpus\.seed must be int"):
        require({"seed": "zero"}, "corpus", seed=int)
    with pytest.raises(ParamsError, match="is missing"):
        require({}, "corpus", seed=int)


def test_profile_merges_deeply(tmp_path):
    base = tmp_path / "params.yaml"
    base.write_text(yaml.safe_dump({"a": {"x": 1, "y": {"z": 2, "w": 3}}, "b": 1}))
    prof = tmp_path / "p.yaml"
    prof.write_text(yaml.safe_dump({"a": {"y": {"z": 9}}}))
    merged = apply_profile(prof, base)
    assert merged == {"a": {"x": 1, "y": {"z": 9, "w": 3}}, "b": 1}
    assert yaml.safe_load(base.read_text()) == merged
    assert deep_merge({"a": 1}, {}) == {"a": 1}


def test_profiles_only_override_known_keys(root):
    params = load_params(root / "params.yaml")

    open_maps = {"mapping.method_Ks."}  # keyed by method name: any method of the sweep may be given its own Ks

    def check(override, base, where):
        for key, value in override.items():
            if where.split(": ", 1)[-1] in open_maps:
                continue
            assert key in base, f"profile key {where}{key} is not in params.yaml"
            if isinstance(value, dict) and isinstance(base[key], dict):
                check(value, base[key], f"{where}{key}.")

    for profile in (root / "profiles").glob("*.yaml"):
        check(yaml.safe_load(profile.read_text()), params, f"{profile.name}: ")


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["corpus"].pop("seed"), r"corpus\.seed is missing"),
    (lambda p: p["corpus"].update(max_works_per_collection=-3), "must be > 0"),
    (lambda p: p["corpus"].update(collections="bach"), "must be list"),
    (lambda p: p["split"]["excerpts"].update(n_bars=0), "must be > 0"),
    (lambda p: p["split"]["excerpts"].update(tempo_bpm=[140, 60]), "low <= high"),
    (lambda p: p["engrave"].update(height="tall"), "must be int"),
    (lambda p: p["perform"]["conditions"].update(noise_prob=1.5), r"\[0, 1\]"),
    (lambda p: p["perform"]["conditions"].update(gain_db=[0.0]), "range"),
])
def test_bad_data_params_are_explained(root, mutate, message):
    from lmm_utils.core.params import check_corpus, check_engrave, check_perform, check_split

    params = load_params(root / "params.yaml")
    mutate(params)
    with pytest.raises(ParamsError, match=message):
        check_corpus(params["corpus"]), check_split(params["split"])
        check_engrave(params["engrave"]), check_perform(params["perform"])


def test_default_data_params_pass_their_checks(root):
    from lmm_utils.core.params import check_corpus, check_engrave, check_perform, check_split

    params = load_params(root / "params.yaml")
    check_corpus(params["corpus"]), check_split(params["split"]), check_engrave(params["engrave"]), check_perform(params["perform"])
