"""A sweep's results as one committed folder: what the README's Results section is written from.

    collect_results(root=".", out="reports/default", profile="default")

copies, from a project after `dvc repro`: params.yaml (the exact params), reports/metrics/summary.json and
summary.md, reports/metrics/evaluate.json, the evaluation's figures (PNG + SVG), and each run of the sweep's
predictions as predictions/<run>.npz.xz (the note lists of h, h_timbre, h_noisy and g on every T excerpt scored, in the
lossless integer columns of evaluation.prediction_archive: 2.5x smaller than the run's gzip'd JSON), so that anyone
can recompute every number with mir_eval without re-running. Only runs of the sweep params.yaml defines are
taken (run folders of older sweeps stay on disk). A manifest.json lists the files with their sizes and the total, and
where the results come from (`provenance`: the project's commit, whether its code differed from it, when collected,
the runs' own training time).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

from lmm_utils.core.io import write_json
from lmm_utils.core.paths import METRICS_DIR, PLOTS_DIR, REPORTS, RUNS_DIR
from lmm_utils.evaluation.prediction_archive import ARCHIVE_SUFFIX, write_archive
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE, read_predictions_doc
from lmm_utils.evaluation.scoring import discover_runs, in_sweep

FIGURE_SUFFIXES = (".png", ".svg")
MAX_TOTAL_MB = 50.0  # the budget for a committed results folder


# what a project's results depend on beyond params.yaml (copied as it is): its code and its pipeline
CODE_PATHS = ("lmm_utils", "notebooks", "dvc.yaml")


class CollectError(RuntimeError):
    pass


def git_commit(root: Path, paths: tuple[str, ...] = ()) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files -- those under `paths`, or all -- differ from it) of the repository at
    root; (None, None) outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *paths], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return head.stdout.strip(), bool(dirty.stdout.strip())


def provenance(root: Path, runs: list) -> dict:
    """Where the results come from: the project's commit and whether its code (CODE_PATHS) differed from it, the UTC
    time of collection, and the runs' own training time in hours (train.seconds of each run's metrics.json; runs
    side by side each count their own)."""
    commit, changed = git_commit(root, CODE_PATHS)
    seconds = 0.0
    for r in runs:
        try:
            seconds += float(json.loads((r.path / "metrics.json").read_text())["train"]["seconds"])
        except (OSError, KeyError, TypeError, ValueError):
            pass
    return {"commit": commit, "code_changed": changed,
            "collected_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
            "train_hours": round(seconds / 3600, 2)}


def collect_results(root: str | Path = ".", out: str | Path = "reports/default", profile: str = "default") -> dict:
    """Copy a finished sweep's results into `out` (replacing what was there). -> the manifest."""
    root, out = Path(root), Path(out)
    need = [root / "params.yaml", root / METRICS_DIR / "summary.json", root / METRICS_DIR / "evaluate.json"]
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        raise CollectError(f"not a finished sweep (run `dvc repro` first): missing {missing}")
    params = yaml.safe_load((root / "params.yaml").read_text())
    runs, _ = in_sweep(discover_runs(root / RUNS_DIR), params.get("mapping"))
    without = [r.name for r in runs if not (r.path / PREDICTIONS_FILE).is_file()]
    if without:
        raise CollectError(f"runs without {PREDICTIONS_FILE} (made before the compact file; re-run them): {without}")
    copies = [(root / "params.yaml", "params.yaml"), (root / METRICS_DIR / "summary.json", "summary.json"),
              (root / METRICS_DIR / "evaluate.json", "evaluate.json")]
    if (root / REPORTS / "summary.md").is_file():
        copies.append((root / REPORTS / "summary.md", "summary.md"))
    figures = root / PLOTS_DIR / "evaluate" / "figures"
    copies += [(f, str(Path("figures") / f.relative_to(figures))) for f in
               (sorted(figures.rglob("*")) if figures.is_dir() else []) if f.suffix in FIGURE_SUFFIXES]
    # The new folder is built beside `out` and sized there; `out` (say, the committed results) is replaced only when
    # it is whole and within the budget, and left as it was on any error.
    building = out.with_name(out.name + ".building")
    if building.exists():
        shutil.rmtree(building)
    try:
        (building / "predictions").mkdir(parents=True)
        for src, rel in copies:
            (building / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, building / rel)
        for r in runs:  # each run's archive checked to decode to its predictions file (prediction_archive)
            try:
                write_archive(read_predictions_doc(r.path / PREDICTIONS_FILE),
                              building / "predictions" / f"{r.name}{ARCHIVE_SUFFIX}")
            except ValueError as exc:
                raise CollectError(f"run {r.name}: {exc}; {out} is left as it was") from exc
        total_mb = sum(p.stat().st_size for p in building.rglob("*") if p.is_file()) / 1e6
        if total_mb > MAX_TOTAL_MB:
            raise CollectError(f"the sweep's results come to {total_mb:.1f} MB, over the {MAX_TOTAL_MB:.0f} MB budget "
                               f"for committed results; {out} is left as it was")
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    building.rename(out)
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    manifest = {"profile": profile, "provenance": provenance(root, runs), "runs": [r.name for r in runs],
                "n_runs": len(runs),
                "total_mb": round(sum(files.values()) / 1e6, 2), "files": files}
    write_json(manifest, out / "manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    import argparse  # deferred: only the command line needs it

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the project after dvc repro (default: .)")
    ap.add_argument("--out", default="reports/default", help="the results folder (default: reports/default)")
    ap.add_argument("--profile", default="default", help="the profile's name, recorded in manifest.json")
    args = ap.parse_args(argv)
    try:
        m = collect_results(args.root, args.out, args.profile)
    except CollectError as e:
        print(f"collect_results: error: {e}")
        return 2
    print(json.dumps({k: v for k, v in m.items() if k != "files"}))
    return 0


__all__ = ["collect_results", "provenance", "git_commit", "CollectError", "CODE_PATHS", "main"]
