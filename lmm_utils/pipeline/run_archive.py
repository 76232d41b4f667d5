"""A sweep's finished runs kept in git, so a long sweep resumes on another machine.

    python scripts/run_archive.py restore --archive runs_archive/paper   # in a fresh clone, before dvc repro
    dvc repro perform && python scripts/run_archive.py restore-upstream --archive runs_archive/paper  # the LMs and S
    python scripts/run_archive.py check   --archive runs_archive/paper   # after the stages before map: data the same?
    python scripts/run_archive.py save    --archive runs_archive/paper   # after (or during) dvc repro: copy new runs
                                                                         # (and the upstream, once: upstream_archive)
    python scripts/run_archive.py status  --archive runs_archive/paper --profile profiles/paper.yaml
                                          # how far the sweep is, and the method x K table of the runs archived so far

Why: the mapping stage reuses a finished run by fingerprint (lmm_utils.mapping.grid), but only while its folder is on
disk; DVC's cache is on the same disk. The paper sweep (264 runs, ~4-5 h on 2 cores) outlasts a working session,
and a session's machine is not always the next one's, so its finished runs are committed here, in the form the
mapping stage left them, and copied back before the next `dvc repro`.

What a run keeps: everything the summary and evaluate stages read -- metrics.json (with its fingerprint), the
predictions file, its per-excerpt score rows (scores/*.json, gzip'd in the archive: a tenth of the size), h.pt (the
robustness table runs one h per method on re-levelled audio), lmM/ when the run saved one (mapping.lmm.lmM_source:
run; lm_eval reads it) -- plus draw.json and the flat copy of its numbers (reports/metrics/map/<method>/<run>.json),
and the fingerprint of the project's data when it was saved (ARCHIVE_INFO). g.pt only when asked (`weights`: only
the command line and scripts/ship_models.py read it). The predictions file is the same file collect_results copies
into reports/<profile>/predictions, so git stores it once.

A restored run is only a candidate: the grid re-runs any whose fingerprint (code, params, data) differs from what it
computes, and overwrites it. Restore never replaces a finished run folder that is already there; save never
replaces an archived run with a different one unless asked (`replace`): a machine's stale run must not overwrite
a good archived one before the grid has re-made it.

This module is pipeline code, outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE): archiving does
not change what a run is. For the same reason it names the run folder's files itself instead of importing names
from mapping.run: editing that module to export them would change every run's fingerprint.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lmm_utils.core.io import atomic_dir, atomic_path
from lmm_utils.core.params import ParamsError, deep_merge, load_params
from lmm_utils.core.paths import RUN_METRICS_DIR, RUNS_DIR, parse_run_name, run_metrics_path, run_path, sweep_runs
from lmm_utils.evaluation.predictions import PREDICTIONS_FILE
from lmm_utils.evaluation.scoring import SCORES
from lmm_utils.mapping.grid import FINGERPRINT_KEY, data_fingerprint
from lmm_utils.pipeline.checks import check_section
from lmm_utils.pipeline.upstream_archive import UpstreamError, restore_upstream, save_upstream
from lmm_utils.pipeline.upstream_rebase import rebase_upstream

METRICS_FILE = "metrics.json"
REQUIRED = (METRICS_FILE, PREDICTIONS_FILE, "h.pt")  # a run folder without one of them is not archived
OPTIONAL = ("draw.json",)
WEIGHT_FILES = ("g.pt",)
LMM_DIR = "lmM"
FLAT_METRICS = "flat_metrics.json"  # in the archive: the run's reports/metrics/map/<method>/<run>.json
ARCHIVE_INFO = "archive.json"  # in the archive: {"data_fingerprint": the project's data when the run was saved}
RESTORED_INFO = "restored.json"  # in a project's run folder restore wrote: the archive's ARCHIVE_INFO (the grid
# replaces the whole folder when it re-makes the run, so the file marks a restored run not yet re-made)
GZ = ".gz"


class ArchiveError(ValueError):
    pass


class _Changed(RuntimeError):
    """A run folder was swapped while it was being copied (the sweep finished it again): the copy is dropped."""


@dataclass
class ArchiveReport:
    copied: list[str] = field(default_factory=list)     # runs written
    unchanged: list[str] = field(default_factory=list)  # already there, the same
    skipped: dict[str, str] = field(default_factory=dict)  # run -> why it was left alone

    def line(self, verb: str) -> str:
        out = f"{verb} {len(self.copied)} runs, {len(self.unchanged)} already there"
        if self.skipped:
            out += f", {len(self.skipped)} left alone: " + "; ".join(f"{k} ({v})" for k, v in sorted(self.skipped.items()))
        return out


def recorded_fingerprint(run_dir: Path) -> str | None:
    """The fingerprint the grid recorded in a run folder's metrics.json (mapping.grid.finished_metrics's test: with
    score rows); None when the folder holds no finished run."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    fp = metrics.get(FINGERPRINT_KEY) if isinstance(metrics, dict) else None
    if not fp or not any((Path(run_dir) / SCORES).glob("*.json*")):  # .json in a project, .json.gz in the archive
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


def _kept(run_dir: Path, weights: bool, archived: bool) -> dict[str, bytes]:
    """{relative name in a project's run folder: bytes} of what the archive keeps of a run folder (score rows
    unzipped when `archived`), so a project's run and an archived one compare by content."""
    out = {}
    for name in REQUIRED + OPTIONAL + (WEIGHT_FILES if weights else ()):
        if (run_dir / name).is_file():
            out[name] = (run_dir / name).read_bytes()
    for f in sorted((run_dir / SCORES).glob("*.json" + (GZ if archived else ""))):
        out[f"{SCORES}/{f.name.removesuffix(GZ)}"] = gzip.decompress(f.read_bytes()) if archived else f.read_bytes()
    if (run_dir / LMM_DIR).is_dir():
        for f in sorted(p for p in (run_dir / LMM_DIR).rglob("*") if p.is_file()):
            out[str(f.relative_to(run_dir))] = f.read_bytes()
    return out


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha1()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()


def _write(files: dict[str, bytes], dst: Path, into_archive: bool, extra: dict[str, bytes], src: Path,
           fp: str) -> None:
    """Write a run's kept files into dst, built aside and swapped in whole; score rows gzip'd into the archive.
    The source's fingerprint is read again before the swap: a run re-made meanwhile is not archived half old."""
    with atomic_dir(dst) as tmp:
        for name, data in {**files, **extra}.items():
            out = tmp / name
            if into_archive and name.startswith(f"{SCORES}/"):
                out, data = out.with_name(out.name + GZ), gzip.compress(data, mtime=0)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        if recorded_fingerprint(src) != fp:
            raise _Changed(src)


def save(archive: str | Path, root: str | Path = ".", runs: set[tuple[str, int, int]] | None = None,
         weights: bool = False, replace: bool = False, data_fp: str | None = None) -> ArchiveReport:
    """Copy every finished run under root/data/runs (only `runs`, when given) into the archive, where the archive
    lacks it. An archived run that differs is replaced only with `replace`. data_fp: the project's data fingerprint,
    recorded with each run copied (check_data compares it)."""
    root, archive = Path(root), Path(archive)
    report = ArchiveReport()
    for method, K, seed, d in run_folders(root / RUNS_DIR):
        if runs is not None and (method, K, seed) not in runs:
            continue
        fp = recorded_fingerprint(d)
        missing = [n for n in REQUIRED if not (d / n).is_file()]
        if fp is None or missing:
            report.skipped[d.name] = "not finished" + (f": no {', '.join(missing)}" if fp and missing else "")
            continue
        restored_from = _data_fp(d / RESTORED_INFO)
        if restored_from is not None and restored_from != data_fp:
            # restored from an archive of other data and not re-made here: saving it would claim this data made it
            report.skipped[d.name] = "restored from other data, not re-made here yet"
            continue
        files = _kept(d, weights, archived=False)
        dst = run_path(archive, method, K, seed)
        if dst.exists():
            if _digest(_kept(dst, weights, archived=True)) == _digest(files):
                report.unchanged.append(d.name)
                continue
            if not replace:
                why = "another run" if recorded_fingerprint(dst) != fp else "the same run, other files"
                report.skipped[d.name] = f"the archive holds {why} (pass --replace to overwrite it)"
                continue
        flat = run_metrics_path(root / RUN_METRICS_DIR, method, K, seed)
        extra = {FLAT_METRICS: flat.read_bytes()} if flat.is_file() else {}
        extra[ARCHIVE_INFO] = (json.dumps({"data_fingerprint": data_fp}) + "\n").encode()
        try:
            _write(files, dst, True, extra, d, fp)
        except _Changed:
            report.skipped[d.name] = "re-made while being saved (save again)"
            continue
        report.copied.append(d.name)
    return report


def restore(archive: str | Path, root: str | Path = ".", runs: set[tuple[str, int, int]] | None = None) -> ArchiveReport:
    """Copy the archive's runs (only `runs`, when given) into root/data/runs where no finished run of that name is;
    the flat metrics go back to reports/metrics/map. A finished run folder already there is never replaced (an
    unfinished one is: the grid would re-make it anyway)."""
    root, archive = Path(root), Path(archive)
    if not archive.is_dir():
        raise ArchiveError(f"no run archive at {archive}")
    report = ArchiveReport()
    for method, K, seed, d in run_folders(archive):
        if runs is not None and (method, K, seed) not in runs:
            continue
        fp = recorded_fingerprint(d)
        if fp is None:
            report.skipped[d.name] = "the archived folder holds no finished run"
            continue
        dst = run_path(root / RUNS_DIR, method, K, seed)
        flat = run_metrics_path(root / RUN_METRICS_DIR, method, K, seed)
        here = recorded_fingerprint(dst) if dst.exists() else None
        if here is not None and here != fp:
            report.skipped[d.name] = (f"a finished run with another fingerprint is there ({here}; the archive's is "
                                      f"{fp}): delete {dst} to restore it")
            continue
        if here is None:
            files = _kept(d, weights=True, archived=True)
            info = {RESTORED_INFO: (d / ARCHIVE_INFO).read_bytes()} if (d / ARCHIVE_INFO).is_file() else {}
            _write(files, dst, False, info, d, fp)
            report.copied.append(d.name)
        else:
            report.unchanged.append(d.name)
        if (d / FLAT_METRICS).is_file() and not flat.is_file():
            with atomic_path(flat) as tmp:
                shutil.copyfile(d / FLAT_METRICS, tmp)
    return report


def _data_fp(info: Path) -> str | None:
    """The data fingerprint an ARCHIVE_INFO / RESTORED_INFO file records (None: no file, or none recorded)."""
    try:
        return json.loads(info.read_text()).get("data_fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def check_data(archive: str | Path, root: str | Path, map_params: dict) -> tuple[int, int, str]:
    """(archived runs saved from data with the project's fingerprint, archived runs, that fingerprint). Run it after
    the stages before `map`: a run saved from other data (another machine's numerics, another profile) will be
    trained again."""
    root = Path(root)
    lm = map_params.get("lm") or {}
    need = [map_params.get("synth", "data/synth/S.pt"), *lm.values()]
    missing = [str(p) for p in need if not (root / p).exists()]
    if missing:
        raise ArchiveError(f"missing {', '.join(missing)}: run the stages before the mapping sweep first "
                           "(dvc repro synth pretrain pretrain_M)")
    folders = run_folders(Path(archive))
    if not folders:
        raise ArchiveError(f"no archived runs under {archive}")
    current = data_fingerprint(map_params, root)
    same = 0
    for *_, d in folders:
        same += _data_fp(d / ARCHIVE_INFO) == current
    return same, len(folders), current


def status(archive: str | Path, mapping: dict) -> tuple[dict[str, tuple[int, int]], list[dict]]:
    """How far the sweep `mapping` defines is in the archive: {method: (runs archived, runs planned)}, and the
    archived runs' metrics.json (as the map stage wrote them; method, K and seed from the plan)."""
    archive = Path(archive)
    counts: dict[str, tuple[int, int]] = {}
    runs = []
    for method, K, seed in sweep_runs(mapping):
        done, planned = counts.get(method, (0, 0))
        f = run_path(archive, method, K, seed) / METRICS_FILE
        if f.is_file():
            runs.append({**json.loads(f.read_text()), "method": method, "K": K, "seed": seed})
            done += 1
        counts[method] = (done, planned + 1)
    return counts, runs


def status_text(archive: str | Path, mapping: dict) -> str:
    """status as text: the archive's code commit, runs per method, and the summary's method x K tables of the
    archived runs (mapping.summary: mean +- std over the seeds archived so far)."""
    from lmm_utils.mapping.summary import markdown, summarize  # deferred: only this report needs it

    archive = Path(archive)
    counts, runs = status(archive, mapping)
    lines = []
    for name in ("code_commit", "redecode_from"):
        if (archive / name).is_file():
            lines.append(f"{name}: {(archive / name).read_text().strip()[:12]}")
    if (archive / "redecode_from").is_file():  # scripts/resume_sweep.sh --redecode is moving the archive
        lines.append(f"(moving to code_commit: {sum('redecoded' in r for r in runs)} runs re-decoded; runs of the "
                     "methods that decode in training may still be redecode_from's until the resume trains them)")
    done, planned = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    lines.append(f"{done} of {planned} runs archived, {planned - done} to go")
    lines += [f"  {m}: {d} of {p}" for m, (d, p) in counts.items()]
    if runs:
        lines += ["", markdown(summarize(runs)).rstrip()]
    return "\n".join(lines)


def _mapping(params_file: Path, profile: str | Path | None = None) -> dict:
    """params.yaml's mapping section (deep-merged with a profile's, as `params apply` would), checked as the stage
    runner checks it (pipeline.checks)."""
    params = load_params(params_file)
    mapping = (deep_merge(params, load_params(profile)) if profile else params).get("mapping")
    if mapping is None:
        raise ArchiveError(f"{params_file}: no mapping section")
    return check_section("mapping", mapping)


def main(argv: list[str] | None = None) -> int:
    import argparse  # deferred: only the command line needs it

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("save", "restore", "check", "status", "save-upstream", "restore-upstream",
                                       "rebase-upstream"),
                    help="check: how many archived runs were saved from this project's data (run it after the "
                         "stages before map); save also saves the upstream (the trained LMs and S the runs read: "
                         "lmm_utils.pipeline.upstream_archive); restore-upstream: after `dvc repro perform`; "
                         "rebase-upstream: after a notebook edit of parameter defaults only "
                         "(lmm_utils.pipeline.upstream_rebase)")
    ap.add_argument("--archive", required=True, help="the archive folder, e.g. runs_archive/paper")
    ap.add_argument("--root", default=".", help="the project (default: .)")
    ap.add_argument("--profile", help="status: the sweep is params.yaml merged with this profile (profiles/paper.yaml)")
    ap.add_argument("--all", action="store_true",
                    help="save: every finished run folder, not only the runs of the sweep params.yaml defines")
    ap.add_argument("--weights", action="store_true", help="save: keep g.pt too (for ship_models)")
    ap.add_argument("--replace", action="store_true", help="save: overwrite an archived run that differs")
    ap.add_argument("--replace-upstream", action="store_true",
                    help="save, save-upstream: overwrite an archived upstream with other outputs (the runs archived "
                         "beside it were trained on it)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    try:
        if args.action == "restore-upstream":
            print(restore_upstream(args.archive, root))
            return 0
        if args.action == "save-upstream":
            print(save_upstream(args.archive, root, replace=args.replace_upstream))
            return 0
        if args.action == "rebase-upstream":
            print(rebase_upstream(args.archive, root))
            return 0
        if args.action == "restore":  # every archived run: the grid reuses those of the sweep, the others wait
            report = restore(args.archive, root)
            print(report.line("restored"))
            return 0
        mapping = _mapping(root / "params.yaml", args.profile)
        if args.action == "status":
            print(status_text(args.archive, mapping))
            return 0
        if args.action == "check":
            same, total, current = check_data(args.archive, root, mapping)
            print(f"{same} of {total} archived runs were saved from data with this project's fingerprint ({current})"
                  + ("" if same == total else "; the others will be trained again unless their data match"))
            return 0 if same == total else 1
        synth = root / mapping.get("synth", "data/synth/S.pt")
        data_fp = data_fingerprint(mapping, root) if synth.is_file() else None
        report = save(args.archive, root, None if args.all else set(sweep_runs(mapping)), weights=args.weights,
                      replace=args.replace, data_fp=data_fp)
        print(report.line("saved"))
        if not (root / "dvc.lock").is_file():  # runs made outside a DVC project (mapping.grid called directly)
            print("no dvc.lock: the upstream (the LMs and S the runs read) is not saved")
            return 0
        try:
            print(save_upstream(args.archive, root, replace=args.replace_upstream))
        except UpstreamError as e:  # the runs are saved; the upstream needs the user's attention
            print(f"run_archive: the runs are saved, the upstream is not: {e}")
            return 1
        return 0
    except (ArchiveError, ParamsError, UpstreamError) as e:
        print(f"run_archive: error: {e}")
        return 2


__all__ = ["ArchiveError", "ArchiveReport", "check_data", "main", "recorded_fingerprint", "restore", "run_folders",
           "save", "status", "status_text"]
