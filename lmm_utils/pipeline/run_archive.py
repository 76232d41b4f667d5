"""A sweep's finished runs kept in git, so a long sweep resumes on another machine.

    python scripts/run_archive.py save    --archive runs_archive/paper   # after (or during) dvc repro: copy new runs
    python scripts/run_archive.py restore --archive runs_archive/paper   # in a fresh clone, before dvc repro
    python scripts/run_archive.py check   --archive runs_archive/paper   # after the stages before map: data the same?

Why: the mapping stage reuses a finished run by fingerprint (lmm_utils.mapping.grid), but only while its folder is on
disk; DVC's cache is on the same disk. The paper sweep (264 runs, ~4-5 h on 2 cores) outlasts a working session,
and a session's machine is not always the next one's, so its finished runs are committed here, in the form the
mapping stage left them, and copied back before the next `dvc repro`.

What a run keeps: metrics.json (with its fingerprint), draw.json, the predictions file, its per-excerpt score rows
(scores/*.json, gzip'd in the archive: a tenth of the size) and the flat copy of its numbers
(reports/metrics/map/<method>/<run>.json) and h.pt (the evaluate stage's robustness table runs each method's best h
on re-levelled audio) -- all the summary and evaluate stages read --, plus g.pt only when asked (`weights`: only the
command line and scripts/ship_models.py read it, and they ship from the default profile's runs). LM^M's per-run copy
(lmM/) is left out: nothing downstream reads it. The predictions file is the same file
collect_results copies into reports/<profile>/predictions, so git stores it once.

A restored run is only a candidate: the grid re-runs any whose fingerprint (code, params, data) differs from what it
computes, and overwrites it. Restore never replaces a run folder that is already there.

This module is pipeline code, outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE): archiving does
not change what a run is.
"""
from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lmm_utils.core.io import atomic_dir, write_json
from lmm_utils.core.params import ParamsError, load_params
from lmm_utils.core.paths import RUN_METRICS_DIR, RUNS_DIR, parse_run_name, run_metrics_path, run_path, sweep_runs
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE
from lmm_utils.evaluation.scoring import SCORES
from lmm_utils.mapping.grid import FINGERPRINT_KEY, data_fingerprint

METRICS_FILE = "metrics.json"
RUN_FILES = (METRICS_FILE, "draw.json", PREDICTIONS_FILE, "h.pt")
WEIGHT_FILES = ("g.pt",)
FLAT_METRICS = "flat_metrics.json"  # in the archive: the run's reports/metrics/map/<method>/<run>.json
DATA_RECORD = "data_fingerprint.json"  # in the archive: the fingerprint of the data its runs read


class ArchiveError(ValueError):
    pass


@dataclass
class ArchiveReport:
    copied: list[str] = field(default_factory=list)     # runs written
    unchanged: list[str] = field(default_factory=list)  # already there with the same fingerprint
    skipped: dict[str, str] = field(default_factory=dict)  # run -> why it was left alone

    def line(self, verb: str) -> str:
        out = f"{verb} {len(self.copied)} runs, {len(self.unchanged)} already there"
        if self.skipped:
            out += f", {len(self.skipped)} left alone: " + "; ".join(f"{k} ({v})" for k, v in sorted(self.skipped.items()))
        return out


def fingerprint(run_dir: Path) -> str | None:
    """The fingerprint in a run folder's metrics.json; None when the folder holds no finished run."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    fp = metrics.get(FINGERPRINT_KEY) if isinstance(metrics, dict) else None
    if not fp or not any((Path(run_dir) / SCORES).glob("*.json*")):
        return None
    return str(fp)


def run_folders(base: Path) -> list[tuple[str, int, int, Path]]:
    """(method, K, seed, folder) of every <method>/<method>-K<K>-s<seed> folder under base, sorted."""
    out = []
    if not base.is_dir():
        return out
    for method_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for d in sorted(p for p in method_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            parsed = parse_run_name(d.name)
            if parsed and parsed[0] == method_dir.name:
                out.append((*parsed, d))
    return out


def _copy_run(src: Path, dst: Path, weights: bool, extra: dict[str, Path] | None = None) -> None:
    """The run's kept files from src into dst (built aside, swapped in whole); score rows are gzip'd on the way into
    the archive and unzipped on the way out. extra: {name in dst: file}."""
    names = RUN_FILES + (WEIGHT_FILES if weights else ())
    with atomic_dir(dst) as tmp:
        for name in names:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        (tmp / SCORES).mkdir()
        for f in sorted((src / SCORES).glob("*.json")):  # into the archive
            (tmp / SCORES / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes(), mtime=0))
        for f in sorted((src / SCORES).glob("*.json.gz")):  # out of it
            (tmp / SCORES / f.name[:-len(".gz")]).write_bytes(gzip.decompress(f.read_bytes()))
        for name, f in (extra or {}).items():
            if f.is_file():
                shutil.copy2(f, tmp / name)


def save(archive: str | Path, root: str | Path = ".", runs: set[tuple[str, int, int]] | None = None,
         weights: bool = False) -> ArchiveReport:
    """Copy every finished run under root/data/runs (only `runs`, when given) into the archive, where the archive
    lacks it or holds it with another fingerprint. Unfinished or half-written folders are left out."""
    root, archive = Path(root), Path(archive)
    report = ArchiveReport()
    for method, K, seed, d in run_folders(root / RUNS_DIR):
        if runs is not None and (method, K, seed) not in runs:
            continue
        fp = fingerprint(d)
        if fp is None:
            report.skipped[d.name] = "not finished"
            continue
        dst = run_path(archive, method, K, seed)
        if fingerprint(dst) == fp:
            report.unchanged.append(d.name)
            continue
        _copy_run(d, dst, weights, {FLAT_METRICS: run_metrics_path(root / RUN_METRICS_DIR, method, K, seed)})
        report.copied.append(d.name)
    return report


def restore(archive: str | Path, root: str | Path = ".", runs: set[tuple[str, int, int]] | None = None) -> ArchiveReport:
    """Copy the archive's runs (only `runs`, when given) into root/data/runs where no folder of that run exists;
    the flat metrics go back to reports/metrics/map. A folder already there is never replaced."""
    root, archive = Path(root), Path(archive)
    if not archive.is_dir():
        raise ArchiveError(f"no run archive at {archive}")
    report = ArchiveReport()
    for method, K, seed, d in run_folders(archive):
        if runs is not None and (method, K, seed) not in runs:
            continue
        fp = fingerprint(d)
        if fp is None:
            report.skipped[d.name] = "the archived folder holds no finished run"
            continue
        dst = run_path(root / RUNS_DIR, method, K, seed)
        if dst.exists():
            if fingerprint(dst) == fp:
                report.unchanged.append(d.name)
            else:
                report.skipped[d.name] = "another run folder is already there"
            continue
        _copy_run(d, dst, weights=True)
        flat = run_metrics_path(root / RUN_METRICS_DIR, method, K, seed)
        if (d / FLAT_METRICS).is_file():
            flat.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(d / FLAT_METRICS, flat)
        report.copied.append(d.name)
    return report


def record_data(archive: str | Path, root: str | Path, map_params: dict) -> str:
    """Write the fingerprint of the data the project's runs read (S, the LMs, splits, scores, audio, motion) into
    the archive, so a later machine can tell before the sweep whether the archived runs can be reused."""
    fp = data_fingerprint(map_params, root)
    write_json({"data_fingerprint": fp}, Path(archive) / DATA_RECORD)
    return fp


def check_data(archive: str | Path, root: str | Path, map_params: dict) -> tuple[str | None, str]:
    """(the archive's data fingerprint or None, the project's). Run it after the stages before `map`: a mismatch
    means every archived run will be trained again (the data differ, e.g. another machine's numerics)."""
    synth = Path(root) / map_params.get("synth", "data/synth/S.pt")
    if not synth.is_file():
        raise ArchiveError(f"{synth} is missing: run the stages before the mapping sweep first "
                           "(dvc repro synth pretrain pretrain_M)")
    try:
        archived = json.loads((Path(archive) / DATA_RECORD).read_text()).get("data_fingerprint")
    except (OSError, ValueError):
        archived = None
    return archived, data_fingerprint(map_params, root)


def _mapping(params_file: Path) -> dict:
    """params.yaml's mapping section, with the sweep's lists."""
    mapping = load_params(params_file).get("mapping")
    if not isinstance(mapping, dict) or not all(k in mapping for k in ("methods", "Ks", "seeds")):
        raise ArchiveError(f"{params_file}: no mapping.methods / Ks / seeds to say which runs are the sweep's")
    return mapping


def main(argv: list[str] | None = None) -> int:
    import argparse  # deferred: only the command line needs it

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("save", "restore", "check"),
                    help="check: whether the project's data (after the stages before map) match the archive's")
    ap.add_argument("--archive", required=True, help="the archive folder, e.g. runs_archive/paper")
    ap.add_argument("--root", default=".", help="the project (default: .)")
    ap.add_argument("--all", action="store_true",
                    help="every run folder, not only the runs of the sweep params.yaml defines")
    ap.add_argument("--weights", action="store_true", help="save: keep g.pt too (for ship_models)")
    args = ap.parse_args(argv)
    try:
        mapping = _mapping(Path(args.root) / "params.yaml")
        runs = None if args.all else set(sweep_runs(mapping))
        if args.action == "check":
            archived, current = check_data(args.archive, args.root, mapping)
            same = archived == current
            print(f"data fingerprint: archive {archived}, this project {current}: " +
                  ("the same, so archived runs are reused where code and params match too" if same else
                   "different, so every archived run will be trained again"))
            return 0 if same else 1
        if args.action == "save":
            report = save(args.archive, args.root, runs, weights=args.weights)
            if report.copied and (Path(args.root) / mapping.get("synth", "data/synth/S.pt")).is_file():
                record_data(args.archive, args.root, mapping)
        else:
            report = restore(args.archive, args.root, runs)
    except (ArchiveError, ParamsError) as e:
        print(f"run_archive: error: {e}")
        return 2
    print(report.line("saved" if args.action == "save" else "restored"))
    return 0


__all__ = ["ArchiveError", "ArchiveReport", "check_data", "fingerprint", "main", "record_data", "restore",
           "run_folders", "save"]
