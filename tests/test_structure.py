"""The package shows the pipeline: stage sub-packages import only earlier stages, no import cycles, modules stay
readable, and each dvc.yaml stage lists as deps all the package code its notebook runs (so an edit re-runs it)."""
import ast
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lmm_utils"
MAX_LINES = 400

# Stages in pipeline order: a sub-package may import its own and earlier ones, never a later one.
LAYERS = ["core", "tokens", "models", "training", "data", "synth", "lm", "methods", "evaluation", "mapping",
          "pipeline", "app"]
ALIASES = {"lmm_utils.params", "lmm_utils.stage", "lmm_utils.cli", "lmm_utils.pretrain"}  # deprecated `python -m` entry points, forwarding only
# Code a notebook runs that writes nothing a stage outputs (tables shown in the notebook), so no stage depends on it.
DISPLAY_ONLY = {"lmm_utils.pipeline", "lmm_utils.pipeline.display"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imported_modules(source: str, known: set[str]) -> set[str]:
    """lmm_utils modules a source imports, anywhere in it (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("lmm_utils"):
                continue
            while name and name not in known:  # `from pkg import name`: name may be an attribute, not a module
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imported_modules(p.read_text(), known) - {m} for m, p in mods.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_stage_subpackage():
    stray = [m for m in modules() if m != "lmm_utils" and layer(m) is None and m not in ALIASES]
    assert not stray, f"modules outside the stage sub-packages {LAYERS}: {stray}"


def test_no_module_imports_a_later_stage():
    bad = [f"{m} -> {d}" for m, deps in import_graph().items() for d in deps
           if layer(m) is not None and layer(d) is not None and layer(d) > layer(m)]
    assert not bad, "imports of a later stage:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ importing its own modules is not a cycle of concern only when they do not import it back
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_modules_stay_readable():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_method_code_never_reads_the_benchmark_truth():
    """The benchmark pianist defines the ground truth and EvaluationData reads it: methods and training never."""
    graph = import_graph()
    for m, deps in graph.items():
        if layer(m) is not None and LAYERS[layer(m)] in ("methods", "training"):
            assert "lmm_utils.data.pianist" not in deps, f"{m} imports the benchmark pianist"


# --- dvc.yaml deps cover what each stage runs ----------------------------------------------------------------

def notebook_imports(nb_path: Path, known: set[str]) -> set[str]:
    nb = json.loads(nb_path.read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return imported_modules("\n".join(lines), known)


def closure(start: set[str], graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parent = m.rpartition(".")[0]
        todo += list(graph.get(m, ())) + ([parent] if parent.startswith("lmm_utils") else [])  # importing a.b runs a
    return seen


def dvc_stages() -> list[tuple[str, str, list[str]]]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    out = []
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        notebook = next(w for w in body["cmd"].split() if w.endswith(".ipynb") and w.startswith("notebooks/"))
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
        out.append((name, notebook, deps))
    return out


@pytest.mark.parametrize("name, notebook, deps", dvc_stages(), ids=[s[0] for s in dvc_stages()])
def test_stage_deps_name_all_the_code_it_runs(name, notebook, deps):
    mods = modules()
    graph = import_graph()
    ran = closure(notebook_imports(ROOT / notebook, set(mods)), graph) - {"lmm_utils"} - DISPLAY_ONLY
    ran = {m for m in ran if mods[m].name != "__init__.py" or mods[m].read_text().strip()}  # empty __init__: no code
    code_deps = [d.rstrip("/") for d in deps if d.startswith("lmm_utils")]
    missing = sorted(str(mods[m].relative_to(ROOT)) for m in ran
                     if not any(str(mods[m].relative_to(ROOT)) == d or str(mods[m].relative_to(ROOT)).startswith(d + "/")
                                for d in code_deps))
    assert not missing, f"stage {name}: its notebook runs code that no dep names, so editing it would not re-run " \
                        f"the stage: {missing}"
    for d in code_deps:
        assert (ROOT / d).exists(), f"stage {name}: dep {d} does not exist"


def test_map_stage_tracks_every_mapping_key():
    """A mapping key the map stages do not list as a param would change runs without DVC re-running them."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["map"]["do"]
    tracked = {p for p in stage["params"] if isinstance(p, str)}
    keys = {f"mapping.{k}" for k in yaml.safe_load((ROOT / "params.yaml").read_text())["mapping"]}
    untracked = sorted(keys - tracked - {"mapping.methods"})  # methods: the foreach itself, one stage per method
    assert not untracked, f"dvc.yaml's map stage does not list {untracked} under params"


def test_imports_inside_functions_say_why():
    """Imports sit at module top; one inside a function is a deliberate deferral of a heavy import, with the reason
    in a comment on its line or just above it."""
    silent = []
    for path in modules().values():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset > 0:
                here, j = lines[node.lineno - 1], node.lineno - 2
                while j >= 0 and lines[j].strip().startswith(("from ", "import ")):  # a block of deferred imports
                    j -= 1
                above = lines[j] if j >= 0 else ""
                if "#" not in here and not above.strip().startswith("#") and "TYPE_CHECKING" not in above:
                    silent.append(f"{path.relative_to(ROOT)}:{node.lineno}: {here.strip()}")
    assert not silent, "imports inside functions without a reason:\n" + "\n".join(silent)
