"""Smoke run of the whole pipeline on the tiny profile: the same stages, notebooks and runner as
`dvc repro`, in a copy of the project. Also checks that DVC re-runs only what a change touches."""
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from lmm_utils.core.io import untimed as _untimed  # JSON without wall-clock figures

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict:
    """The environment of every subprocess here: DVC quiet, and this venv's `python`, `dvc` and `papermill` first."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            **extra}


def _run(cmd, cwd, env: dict | None = None, stderr: bool = True):
    proc = subprocess.run(cmd, cwd=cwd, env=_env(**(env or {})), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + (proc.stderr if stderr else "")


def _stages_run(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def project(tmp_path_factory, request):
    root = Path(__file__).resolve().parents[2]
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split()
    dst = tmp_path_factory.mktemp("project")
    for rel in files:
        src = root / rel
        produced = rel.startswith(("data/", "reports/")) and not rel.endswith(".gitignore")
        if src.is_file() and rel != "dvc.lock" and not produced:  # code and params only, no outputs
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    _run(["git", "init", "-q"], dst)
    _run([sys.executable, "-m", "lmm_utils.core.params", "apply", "profiles/tiny.yaml"], dst)
    # A clone always has a commit; dvclive (training curves) refuses an empty git repository.
    _run(["git", "add", "-A"], dst)
    _run(["git", "-c", "user.name=test", "-c", "user.email=test@invalid", "commit", "-qm", "tiny profile"], dst)
    log = _run(["dvc", "repro"], dst)
    return dst, log


def test_tiny_pipeline_runs_every_stage(project):
    dst, log = project
    stages = set(yaml.safe_load((dst / "dvc.yaml").read_text())["stages"])
    ran = _stages_run(log)
    assert {"corpus", "split", "engrave", "perform"} <= ran
    assert all(any(r == s or r.startswith(s + "@") for r in ran) for s in stages), (stages, ran)


def test_data_layout_is_complete(project):
    dst, _ = project
    splits = json.loads((dst / "data/splits.json").read_text())
    test_ids = splits["pools"]["T"]["excerpts"]
    assert test_ids
    for eid in test_ids:
        for rel in (f"data/engravings/T/{eid}.musicxml", f"data/engravings/T/{eid}.png", f"data/engravings/T/{eid}.json",
                    f"data/motion/T/{eid}.mid", f"data/audio/T/{eid}.flac", f"data/audio/T_timbre/{eid}.flac"):
            assert (dst / rel).is_file(), rel
    metrics = json.loads((dst / "reports/metrics/data.json").read_text())
    assert metrics["T_excerpts"] == len(test_ids) and metrics["T_audio_hours"] > 0
    for nb in (dst / "reports").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", [])), nb.name


def test_pools_are_disjoint_on_real_data(project):
    from lmm_utils.data.pools import check_disjoint

    dst, _ = project
    check_disjoint(json.loads((dst / "data/splits.json").read_text()))


def test_second_repro_runs_nothing_and_a_render_change_reruns_only_downstream(project):
    dst, _ = project
    again = _run(["dvc", "repro"], dst)
    assert _stages_run(again) == set(), again
    committed = (dst / "params.yaml").read_text()
    params = yaml.safe_load(committed)
    params["perform"]["pianist"]["velocity_noise"] = 6.0
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # A dry run is enough to see what DVC would redo (and keeps the test short): the render stage, not
    # the stages before it. Stages after it re-run once its outputs change.
    try:
        changed = _stages_run(_run(["dvc", "repro", "--dry"], dst))
    finally:
        (dst / "params.yaml").write_text(committed)  # the tests after this one rerun stages
    assert "perform" in changed
    assert not changed & {"corpus", "split", "engrave", "pretrain"}, changed


def test_editing_the_code_a_stage_runs_reruns_it(project):
    """dvc.yaml deps name the package folders a stage runs: an edit of the module that defines
    build_performances (data.stages) re-runs perform; an edit of the mapping code does not touch the data."""
    import inspect

    from lmm_utils.data.stages import build_performances

    dst, _ = project
    module = Path(inspect.getsourcefile(build_performances)).relative_to(Path(__file__).resolve().parents[2])
    source = (dst / module).read_text()
    (dst / module).write_text(source + "\n# an edit\n")
    try:
        stale = _run(["dvc", "status", "perform"], dst)
    finally:
        (dst / module).write_text(source)
    assert "perform" in stale and "modified:" in stale and str(module.parent) in stale, stale


# --- the dashboard: dvc metrics show, dvc plots show -----------------------------------------------------

def test_metrics_show_lists_the_headlines_in_160_columns(project):
    dst, _ = project
    out = _run(["dvc", "metrics", "show"], dst, {"COLUMNS": "160"}, stderr=False)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert max(map(len, lines)) <= 160, out
    rows = [ln.split()[0] for ln in lines[1:]]
    headlines = [f"reports/headline/{n}.json" for n in ("data", "synth", "lm_V", "lm_A", "lm_M", "map", "eval")]
    assert sorted(rows) == sorted(headlines), out
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], dst, stderr=False))
    data = shown[""]["data"]
    for path, v in data.items():  # flat and small
        assert len(v["data"]) <= 10 and not any(isinstance(x, dict) for x in v["data"].values()), path
    assert {"excerpts", "audio_h"} == set(data["reports/headline/data.json"]["data"])
    assert {"h_f1_K2_best", "best_K2", "h_f1_K2_sup"} <= set(data["reports/headline/map.json"]["data"])


def test_plots_show_renders_the_curated_plots_in_order(project):
    dst, _ = project
    plots = [next(iter(e.items())) for e in yaml.safe_load((dst / "dvc.yaml").read_text())["plots"]]
    declared = [name for name, _ in plots]
    files = [f for name, props in plots for f in (props["y"] if isinstance(props.get("y"), dict) else [name])]
    assert len(files) == 11  # 4 curves, 2 x (train, val) LM losses, 3 histograms
    for f in files:
        assert (dst / f).is_file(), f"declared plot file {f} was not written by the tiny pipeline"
    shown = json.loads(_run(["dvc", "plots", "show", "--json"], dst, stderr=False))
    assert not shown.get("errors"), shown.get("errors")
    assert list(shown["data"]) == declared
    for name, rendered in shown["data"].items():
        assert rendered and rendered[0]["type"] == "vega", name
        assert "<DVC_METRIC" not in json.dumps(rendered[0]["content"]), name
    curve = shown["data"]["reports/plots/evaluate/curves/h-note_f1-all.json"][0]["content"]
    assert {r["method"] for r in curve["data"]["values"]} >= {"supervised", "lmm"}
    assert curve["encoding"]["x"]["scale"]["type"] == "symlog"


# --- determinism and interrupted stages ------------------------------------------------------------------

def _tree_md5(root: Path, rels: list[str]) -> dict[str, str]:
    """md5 of every file under the given outputs (directories walked, hidden entries skipped: a run killed while
    saving leaves its .tmp folder, which nothing reads); JSON files without their timings."""
    import hashlib

    out = {}
    for rel in rels:
        base = root / rel
        files = [base] if base.is_file() else sorted(
            p for p in base.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.relative_to(base).parts))
        for f in files:
            data = f.read_bytes()
            if f.suffix == ".json":
                data = json.dumps(_untimed(json.loads(data)), sort_keys=True).encode()
            out[str(f.relative_to(root))] = hashlib.md5(data).hexdigest()
    return out


# Every kind of stage that draws random numbers or trains: rendering (in worker processes), S, an LM (LM^V
# trains through the same code). The mapping method that uses all of them (LM^M, self-training) is re-run from
# scratch by test_a_stage_killed_halfway (a killed map@lmm, run again), which checks its runs are the same to the byte.
RERUN = ["perform", "synth", "pretrain"]
RERUN_OUTS = ["data/audio", "data/motion", "data/synth", "data/lm/V", "data/lm/A"]
RERUN_METRICS = ["reports/metrics/data.json", "reports/metrics/synth.json", "reports/metrics/pretrain_V.json",
                 "reports/metrics/pretrain_A.json", "reports/headline/data.json", "reports/headline/synth.json",
                 "reports/headline/lm_A.json"]


@pytest.fixture(scope="module", autouse=True)
def reruns_in_copies(project, tmp_path_factory):
    """The determinism check's re-runs, started as soon as the project is built, each stage in a copy of the project
    of its own: they run beside the tests below (which edit the project and re-run map@lmm in it) and beside each
    other, instead of one after another at the end, which takes them off the critical path of `make test`."""
    dst, _ = project
    before = _tree_md5(dst, RERUN_OUTS)
    metrics_before = {m: _untimed(json.loads((dst / m).read_text())) for m in RERUN_METRICS}
    reruns = {}
    for stage in RERUN:
        copy = tmp_path_factory.mktemp(f"rerun_{stage}")
        shutil.copytree(dst, copy, symlinks=True, dirs_exist_ok=True)
        script = " && ".join(["dvc stage list --name-only > .stages.txt", "dvc repro --dry > .dry.txt",
                              f"dvc repro --force --single-item {stage}"])
        with open(copy / ".rerun.log", "w") as log:  # a file, not a pipe: nobody reads a pipe until the test waits
            reruns[stage] = (copy, subprocess.Popen(["bash", "-c", script], cwd=copy, env=_env(), stdout=log,
                                                    stderr=subprocess.STDOUT))
    yield reruns, before, metrics_before
    for _, proc in reruns.values():
        if proc.poll() is None:  # a test failed before waiting for it
            proc.kill()
            proc.wait()


def _kill_halfway_then_redo(root: Path) -> None:
    """Kill map@lmm (dvc, papermill, the kernel) while it trains, check that nothing looks finished, run it again."""
    import time

    import psutil

    stage, outs = "map@lmm", ["data/runs/lmm", "reports/metrics/map/lmm", "reports/map/lmm.ipynb"]
    before = _tree_md5(root, outs)
    shutil.rmtree(root / "data/runs/lmm")  # else the persisted runs are reused (same fingerprint) and nothing runs
    proc = subprocess.Popen(["dvc", "repro", "--force", "--single-item", stage], cwd=root, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def family() -> list:  # dvc, papermill and the kernel
        try:
            return [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def kernel_started() -> bool:
        for p in family():
            try:
                if "ipykernel" in " ".join(p.cmdline()):
                    return True
            except psutil.Error:  # exited meanwhile
                pass
        return False

    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not kernel_started():
        time.sleep(0.2)
    time.sleep(3)  # the kernel is importing, loading S and the LMs, training
    assert proc.poll() is None, "the stage finished before it could be killed; the test needs a longer stage"
    assert (root / "reports/map/.lmm.running.ipynb").exists(), "the notebook is not running"
    procs = family()
    for p in procs:  # SIGKILL to every process of the stage, as a crash or a power cut would
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(procs, timeout=10)
    finished = [p for p in (root / "data/runs/lmm").rglob("metrics.json") if not any(
        part.startswith(".") for part in p.relative_to(root).parts)]
    assert not finished, f"{finished} exist after the kill and would look finished"
    assert not (root / outs[2]).exists(), f"{outs[2]} exists after the kill and would look finished"
    status = _run(["dvc", "status", stage], root)
    assert "deleted" in status or "changed" in status, status
    redo = _run(["dvc", "repro", stage], root)
    # Really run again (DVC keeps no run-cache for a stage with persistent outputs), from no finished run: so this is
    # also map@lmm's determinism check -- the same runs, to the byte, as the project's first repro made.
    assert stage in _stages_run(redo), redo
    assert _tree_md5(root, outs[:2]) == {k: v for k, v in before.items() if k.startswith(tuple(outs[:2]))}


@pytest.fixture(scope="module", autouse=True)
def killed_halfway_in_a_copy(project, tmp_path_factory):
    """The killed-stage check, started as soon as the project is built, in a copy of its own and a thread: its two
    map@lmm runs (one killed, one whole) overlap the tests below instead of following them."""
    dst, _ = project
    copy = tmp_path_factory.mktemp("killed_map_lmm")
    shutil.copytree(dst, copy, symlinks=True, dirs_exist_ok=True)
    outcome: dict[str, BaseException] = {}

    def check() -> None:
        try:
            _kill_halfway_then_redo(copy)
        except BaseException as exc:  # re-raised by the test, in pytest's thread
            outcome["error"] = exc

    thread = threading.Thread(target=check, name="killed-map-lmm", daemon=True)
    thread.start()
    yield thread, outcome
    thread.join()  # its dvc processes end with it (a test failed before waiting for it)


def test_a_stage_killed_halfway_leaves_nothing_that_looks_finished(killed_halfway_in_a_copy):
    thread, outcome = killed_halfway_in_a_copy
    thread.join()
    if "error" in outcome:
        raise outcome["error"]


# Last, so that its re-runs (started by reruns_in_copies) have run beside every test above.
def test_rerunning_stages_gives_identical_data_checkpoints_and_metrics(reruns_in_copies):
    reruns, before, metrics_before = reruns_in_copies
    assert any(k.endswith(".pt") for k in before) and any(k.endswith(".flac") for k in before)
    for stage, (copy, proc) in reruns.items():  # every copy: its stage made again, the rest as copied
        proc.wait()
        log = (copy / ".rerun.log").read_text()
        assert proc.returncode == 0, log[-4000:]
        assert stage in (copy / ".stages.txt").read_text().split(), stage
        assert "Running stage" not in (copy / ".dry.txt").read_text(), "the copied project is not up to date"
        assert any(r == stage or r.startswith(stage + "@") for r in _stages_run(log)), log[-4000:]
        after = _tree_md5(copy, RERUN_OUTS)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not changed, f"{stage}: {len(changed)} of {len(before)} files differ after a rerun: {changed[:20]}"
        for m in RERUN_METRICS:
            assert _untimed(json.loads((copy / m).read_text())) == metrics_before[m], (stage, m)
