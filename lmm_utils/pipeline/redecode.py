"""Re-decode finished runs at this checkout's code when only h's decoding changed, instead of training them again.

    python scripts/redecode_runs.py --root . --trained-by c4302ae   # after restoring the archive: prints the
                                                                     # training-code diff; then, if it is
    python scripts/redecode_runs.py --root . --trained-by c4302ae --only-decoding-changed   # only decoding
    report = redecode_runs(root, map_params, features, "c4302ae",                 # the same, from Python
                           code_fingerprint_at("c4302ae", map_params, root))

Why: a run's fingerprint (mapping.grid) covers the source of every training module, and h's decoding (the
thresholds, harmonic suppression: models/transcriber.decode, methods/wrappers.fast_decode) lives in them, so a
change to how h's output becomes notes gives every run of a sweep a new fingerprint and the grid trains all of it
again (264 paper runs, ~9 h on 2 cores). For a method whose training never decodes h's output -- every method but
lmm, whose self-training labels are h's decoded transcriptions (methods/lmm.py) -- the weights in h.pt are what the
new code would train, so the run only needs h's predictions made again: load h.pt, transcribe T, T_timbre and
T_noisy with this checkout's decoding (mapping.run.predict's loop and DecodeConfig), keep g's stored predictions
(g does not go through h's decoding), score, and record the fingerprint this checkout's grid computes, so the sweep
reuses the run.

What keeps it honest:
- lmm and its ablations are refused (DECODING_METHODS): their h depends on the decoding through its labels.
  tests/pipeline/test_redecode.py trains every other method with h's decoding switched to raise, so a method that
  starts decoding in training fails the test before it can be re-decoded wrongly.
- The caller names the commit whose code trained the runs (`trained_by`). A run is re-decoded only when its
  recorded fingerprint is the one that commit's source tree computes with this project's params and data
  (code_fingerprint_at: the commit's lmm_utils and notebooks from `git archive`, fingerprinted as the map stage
  would): that proves the commit, the params and the data (a run restored from other data, or trained at other
  steps, is left for the grid). metrics.json records the commit and the old fingerprint under "redecoded" (kept
  from the first re-decoding when a run is re-decoded again), so a reader sees which runs were re-decoded and from
  what. What no check can prove is that the training code from that commit to the working tree differs only in
  decoding: scripts/redecode_runs.py prints `git diff --stat` of the training modules and asks the caller to say so.
- The predicted excerpts must be the ones this checkout's params ask for (mapping.eval.max_items); otherwise the run
  is left alone (the grid re-makes it).

This module is pipeline code, outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE). The fingerprint is
the one the map stage's kernel computes: `stage_code_fingerprint` computes it in a fresh process that imports what
notebooks/07_map.ipynb imports, then S's model code, as run_grid does.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import atomic_dir, jsonable, write_json
from lmm_utils.core.params import ParamsError, load_params, section
from lmm_utils.core.paths import RUN_METRICS_DIR, RUNS_DIR, run_metrics_path, run_path, sweep_runs
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, read_predictions, write_predictions
from lmm_utils.evaluation.scoring import SCORES, nest, score_run_folder, summarize
from lmm_utils.mapping import grid
from lmm_utils.mapping import run as runner
from lmm_utils.methods import check_method
from lmm_utils.methods.checkpoints import load_h
from lmm_utils.models.transcriber import DecodeConfig
from lmm_utils.pipeline.checks import check_section

DECODING_METHODS = ("lmm",)  # method bases whose training decodes h's output (lmm's self-training labels)
REDECODED_KEY = "redecoded"
METRICS_FILE = "metrics.json"
KEPT_FILES = ("h.pt", "g.pt", "draw.json")  # copied as they are (no decode-free method saves an lmM/)


class RedecodeError(ValueError):
    pass


@dataclass
class RedecodeReport:
    redecoded: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)  # already at this checkout's fingerprint
    skipped: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        out = f"re-decoded {len(self.redecoded)} runs, {len(self.current)} already current"
        if self.skipped:
            out += f", {len(self.skipped)} left alone: " + "; ".join(f"{k} ({v})" for k, v in sorted(self.skipped.items()))
        return out


def decodes_in_training(method: str) -> bool:
    return check_method(method).base in DECODING_METHODS


CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree this module was loaded from
MAP_NOTEBOOK = Path("notebooks") / "07_map.ipynb"  # within a source tree


def notebook_imports(notebook: Path) -> list[str]:
    """The top-level import statements of a notebook's code cells, in order (the map notebook imports at the top
    level only; an import inside a block would be missed, and the kernel-reuse test would then fail)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
            if line.startswith(("import ", "from "))]


def stage_code_fingerprint(map_params: dict, root: str | Path = ".", code_dir: str | Path = CHECKOUT) -> str:
    """The code fingerprint run_grid computes in the map stage's kernel when the source tree is code_dir: computed
    in a fresh process, started in code_dir (so it imports code_dir's lmm_utils), that imports what
    code_dir/notebooks/07_map.ipynb imports, then S's model code (run_grid loads S first). A process of its own,
    because the fingerprint covers every lmm_utils module loaded, and this command's own imports (params checks,
    the synth stage's code) are not the kernel's."""
    code_dir = Path(code_dir).resolve()
    synth = (Path(root) / map_params.get("synth", "data/synth/S.pt")).resolve()
    code = "\n".join([*notebook_imports(code_dir / MAP_NOTEBOOK),
                      "import lmm_utils as _pkg", "from lmm_utils.mapping import grid as _grid, run as _run",
                      f"_run.load_frozen_synth({str(synth)!r}, 'cpu')", "print(_pkg.__file__)",
                      "print(_grid.code_fingerprint())"])
    out = subprocess.run([sys.executable, "-c", code], cwd=code_dir, capture_output=True, text=True)
    if out.returncode != 0:
        raise RedecodeError(f"computing the map stage's code fingerprint failed: {out.stderr.strip()[-500:]}")
    *_, pkg, fp = out.stdout.split()
    if not Path(pkg).resolve().is_relative_to(code_dir):
        raise RedecodeError(f"the fingerprint process imported lmm_utils from {pkg}, not from {code_dir}")
    return fp


def code_fingerprint_at(commit: str, map_params: dict, root: str | Path = ".", repo: str | Path = CHECKOUT) -> str:
    """stage_code_fingerprint of the source tree of `commit` (its lmm_utils and notebooks, from `git archive`)."""
    with tempfile.TemporaryDirectory() as tmp:
        tar = subprocess.run(["git", "archive", "--format=tar", commit, "lmm_utils", "notebooks"], cwd=repo,
                             capture_output=True)
        if tar.returncode != 0:
            raise RedecodeError(f"git archive {commit}: {tar.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as tf:
            tf.extractall(tmp, filter="data")
        return stage_code_fingerprint(map_params, root, tmp)


def redecode_run(run_dir: str | Path, data: EvaluationData, feat: FeatureConfig, fingerprint: str, trained_by: str,
                 max_items: int | None = None, decode: DecodeConfig = DecodeConfig(), lm_root: str | Path = ".",
                 metrics_dir: str | Path | None = None) -> dict:
    """One finished run folder re-predicted with `decode` and re-scored in place (built aside, swapped in whole).
    -> the new metrics. Raises RedecodeError for a run that must be trained again instead."""
    run_dir = Path(run_dir)
    old = json.loads((run_dir / METRICS_FILE).read_text())
    method = old["method"]
    if decodes_in_training(method):
        raise RedecodeError(f"{method} decodes h's output in training: train it again")
    stored = read_predictions(run_dir / PREDICTIONS_FILE)
    ids = data.eval_ids(max_items)
    if sorted(stored.get("g", {})) != sorted(ids):
        raise RedecodeError(f"its predictions cover {len(stored.get('g', {}))} excerpts, the params ask for {len(ids)}")
    h = load_h(run_dir / "h.pt", lm_root=lm_root)
    t0 = time.perf_counter()
    preds = {**runner.predict_h(h, data, ids, feat, decode), "g": stored["g"]}
    predict_seconds = time.perf_counter() - t0
    first = old.get(REDECODED_KEY) or {}  # a run re-decoded before: it was trained by the first one's code
    head = {k: v for k, v in old.items() if k not in ("h", "g", "eval", "decode", grid.FINGERPRINT_KEY, REDECODED_KEY)}
    with atomic_dir(run_dir) as tmp:
        for name in KEPT_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        write_predictions(preds, tmp / PREDICTIONS_FILE)
        t1 = time.perf_counter()
        rows = score_run_folder(tmp, data.truth(ids))
        eval_info = {"n_T": len(ids), "max_items": max_items, "predict_seconds": predict_seconds, "score_seconds": time.perf_counter() - t1}
        eval_info["seconds"] = eval_info["predict_seconds"] + eval_info["score_seconds"]
        metrics = {**head, **nest({s: summarize(r) for s, r in rows.items()}), "decode": asdict(decode),
                   grid.FINGERPRINT_KEY: fingerprint, "eval": eval_info,
                   REDECODED_KEY: {"trained_by": first.get("trained_by", trained_by),
                                   "trained_fingerprint": first.get("trained_fingerprint", old.get(grid.FINGERPRINT_KEY)),
                                   "trained_decode": first.get("trained_decode", old.get("decode")),
                                   "why": "h.pt trained by `trained_by`'s code, whose training differs from this "
                                          "code's only in h's decoding; h's predictions made again with this "
                                          "code's decoding, g's kept (lmm_utils.pipeline.redecode)"}}
        (tmp / METRICS_FILE).write_text(json.dumps(jsonable(metrics), indent=1) + "\n")
    if metrics_dir is not None:
        write_json(runner.flat_metrics(metrics), run_metrics_path(metrics_dir, method, metrics["K"], metrics["seed"]))
    return metrics


def redecode_runs(root: str | Path, map_params: dict, features: dict | None, trained_by: str,
                  trained_code_fp: str, methods: list[str] | None = None, code_fp: str | None = None,
                  log=print) -> RedecodeReport:
    """Every finished run of the sweep's decode-free methods (or `methods`) under root/data/runs whose fingerprint
    is not this checkout's: re-decoded -- only when its recorded fingerprint is the one `trained_by`'s code
    (trained_code_fp: code_fingerprint_at) computes with this project's params and data, which proves all three;
    any other run is left for the grid to train again. code_fp: the code fingerprint to record (default: the map
    stage's, stage_code_fingerprint; a caller that runs the grid in its own process passes grid.code_fingerprint())."""
    root = Path(root)
    code_fp = code_fp or stage_code_fingerprint(map_params, root)
    data_fp = grid.data_fingerprint(map_params, root)
    data, feat = EvaluationData(root), FeatureConfig.from_params(features or {})
    max_items = (map_params.get("eval") or {}).get("max_items")
    report = RedecodeReport()
    for method, K, seed in sweep_runs(map_params):
        if methods is not None and method not in methods:
            continue
        name = run_path(Path("."), method, K, seed).name
        if decodes_in_training(method):
            report.skipped[name] = "decodes in training"
            continue
        d = run_path(root / RUNS_DIR, method, K, seed)
        fp = grid.run_fingerprint(method, K, seed, map_params, features, code_fp, data_fp)
        if grid.finished_metrics(d, fp) is not None:
            report.current.append(name)
            continue
        if not (d / "h.pt").is_file() or not any((d / SCORES).glob("*.json")):
            report.skipped[name] = "no finished run"
            continue
        trained = grid.run_fingerprint(method, K, seed, map_params, features, trained_code_fp, data_fp)
        if grid.finished_metrics(d, trained) is None:
            report.skipped[name] = f"not made by {trained_by}'s code with these params and data"
            continue
        try:
            redecode_run(d, data, feat, fp, trained_by, max_items, lm_root=root, metrics_dir=root / RUN_METRICS_DIR)
        except (RedecodeError, OSError, ValueError, TypeError, KeyError) as e:  # this run only: the others go on
            report.skipped[name] = f"{type(e).__name__}: {e}"
            continue
        report.redecoded.append(name)
        if log:
            log(f"{name}: re-decoded")
    return report




def training_code_diff(commit: str, root: str | Path = ".") -> str:
    """`git diff --stat` of the training modules (lmm_utils less NOT_TRAINING_CODE) from `commit` to the working tree."""
    excludes = [f":(exclude){m.replace('.', '/')}" for m in grid.NOT_TRAINING_CODE]
    out = subprocess.run(["git", "diff", "--stat", commit, "--", "lmm_utils", *excludes], cwd=root,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RedecodeError(f"git diff from {commit}: {out.stderr.strip()}")
    return out.stdout.rstrip() or "(no training module differs)"


def same_code_fingerprint(commit: str, synth_root: str | Path, repo: str | Path = CHECKOUT) -> tuple[bool, str, str]:
    """(equal, commit's, working tree's): the map stage's code fingerprint of `commit`'s tree and of `repo`'s working
    tree, both with the S under synth_root (an archive's upstream: S's model code is part of the fingerprint) and the
    mapping section of repo's params.yaml. Equal means every run the commit trained is reused here as it is, although
    `training_code_diff` may list modules no run loads (the corpus stage's, say)."""
    map_params = load_params(Path(repo) / "params.yaml").get("mapping") or {}
    then = code_fingerprint_at(commit, map_params, synth_root, repo)
    now = stage_code_fingerprint(map_params, synth_root, code_dir=repo)
    return then == now, then, now


def same_code_fingerprint_cli(commit: str, synth_root: str, repo: str = ".") -> int:
    """For scripts/resume_sweep.sh: prints both fingerprints; 0 when equal, 1 when not, 2 when they cannot be computed."""
    try:
        equal, then, now = same_code_fingerprint(commit, synth_root, repo)
    except (ParamsError, RedecodeError, OSError) as e:
        print(f"code fingerprint: cannot compare ({e})")
        return 2
    print(f"map runs' code fingerprint: {then} at {commit[:7]}, {now} here")
    return 0 if equal else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the project whose data/runs to re-decode (default: .)")
    ap.add_argument("--trained-by", required=True, help="the commit whose code trained the runs (recorded in each)")
    ap.add_argument("--methods", nargs="*", help="only these methods (default: every decode-free method of the sweep)")
    ap.add_argument("--only-decoding-changed", action="store_true",
                    help="you read the diff this prints and state that it changes only h's decoding")
    args = ap.parse_args(argv)
    root = Path(args.root)
    try:
        params = load_params(root / "params.yaml")
        mapping = check_section("mapping", section(params, "mapping"))
        features = check_section("features", section(params, "features"))
        print(f"training code from {args.trained_by} to this checkout:\n{training_code_diff(args.trained_by, root)}")
        if not args.only_decoding_changed:
            print("re-decoding is right only when that diff changes nothing but h's decoding; read it, then pass "
                  "--only-decoding-changed")
            return 2
        trained_code_fp = code_fingerprint_at(args.trained_by, mapping, root, repo=root)
        code_fp = stage_code_fingerprint(mapping, root, code_dir=root)
        report = redecode_runs(root, mapping, features, args.trained_by, trained_code_fp, args.methods, code_fp)
    except (ParamsError, RedecodeError, OSError) as e:
        print(f"redecode: error: {e}")
        return 2
    print(report.line())
    return 0


__all__ = ["DECODING_METHODS", "RedecodeError", "RedecodeReport", "code_fingerprint_at", "decodes_in_training", "main", "redecode_run",
           "notebook_imports", "redecode_runs", "same_code_fingerprint", "same_code_fingerprint_cli",
           "stage_code_fingerprint", "training_code_diff"]
