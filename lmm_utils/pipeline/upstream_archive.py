"""The trained stages a sweep's runs read (LM^V and LM^A, LM^M, S), kept beside the run archive, so that the
archived runs stay valid on another machine.

    dvc repro perform                                                               # the deterministic stages
    python scripts/run_archive.py restore-upstream --archive runs_archive/paper      # instead of training them here
    python scripts/run_archive.py save-upstream --archive runs_archive/paper         # (save does it too)

Why: a run's fingerprint covers the data it reads (mapping.grid.data_fingerprint), the trained LMs and S included.
The stages before them (corpus, split, perform) give the same bytes on every machine this project has met (their
dvc.lock hashes match), but training does not: on a new machine (another CPU, other float kernels) the same code and
params give LMs and an S that differ in the last bits, so every archived run's fingerprint differs and the whole
sweep trains again (2026-12-02: 0 of 57 archived runs matched after the stages ran on a new machine). So `save`
keeps these stages' outputs and their dvc.lock entries; `restore` puts both back and keeps them only when
`dvc status` then finds the stages up to date (the same command, code, data and params made them), and only then
commits them. Otherwise it puts everything back as it was and `dvc repro` trains the stages here, as without an
archive.

Pipeline code, outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from lmm_utils.core.io import atomic_dir, write_json

UPSTREAM_STAGES = ("pretrain", "pretrain_M", "synth")  # trained, so not bit-reproducible across machines
UPSTREAM_DIR = "_upstream"  # in the archive: files/<the stages' outputs>, lock.json {stage: its dvc.lock entry}
LOCK_FILE = "lock.json"
FILES_DIR = "files"
# A notebook is kept under another suffix: git's nbstripout filter (make setup installs it for *.ipynb, in
# .git/info/attributes, above any .gitattributes) would strip the executed report of its outputs on commit.
NOTEBOOK_SUFFIX, KEPT_NOTEBOOK_SUFFIX = ".ipynb", ".ipynb.kept"


class UpstreamError(ValueError):
    pass


def stage_outputs(root: Path, stage: str) -> list[str]:
    """The paths a dvc.yaml stage writes (outs, metrics and plots, cached or not)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text()).get("stages", {})
    if stage not in stages:
        raise UpstreamError(f"dvc.yaml has no stage {stage!r}")
    out = []
    for key in ("outs", "metrics", "plots"):
        for entry in stages[stage].get(key) or []:
            out.append(entry if isinstance(entry, str) else next(iter(entry)))
    return out


def lock_entry(root: Path, stage: str) -> dict | None:
    lock = root / "dvc.lock"
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
    return stages.get(stage)


def _inputs(entry: dict) -> dict:
    """What made a stage's outputs, from its dvc.lock entry: the command, each dep's hash, the params."""
    return {"cmd": entry.get("cmd"), "deps": {d["path"]: d.get("md5") for d in entry.get("deps") or []},
            "params": entry.get("params") or {}}


def _outputs(entry: dict) -> dict:
    return {o["path"]: o.get("md5") for o in entry.get("outs") or []}


def archived_path(rel: str) -> str:
    """Where the archive keeps a stage output (relative to its files/ folder)."""
    return rel.removesuffix(NOTEBOOK_SUFFIX) + KEPT_NOTEBOOK_SUFFIX if rel.endswith(NOTEBOOK_SUFFIX) else rel


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _dvc(*args: str, root: Path) -> subprocess.CompletedProcess:
    """dvc from the environment this Python runs in (the project's .venv), else from PATH."""
    exe = Path(sys.executable).with_name("dvc")
    return subprocess.run([str(exe) if exe.is_file() else "dvc", *args], cwd=root, capture_output=True, text=True)


NOT_IN_CACHE = "not in cache"  # dvc status's word for an output that matches dvc.lock but is not in DVC's cache yet


def dvc_up_to_date(root: Path, stages: tuple[str, ...], uncached_ok: bool = False) -> tuple[bool, str]:
    """(whether DVC finds the stages' outputs, deps and params as dvc.lock records them, its report). uncached_ok:
    outputs that match dvc.lock but are not in DVC's cache count as up to date (restored files, before commit)."""
    p = _dvc("status", "--json", *stages, root=root)
    if p.returncode != 0:
        return False, (p.stderr or p.stdout).strip()
    try:
        status = json.loads(p.stdout or "{}")
    except ValueError:
        return False, p.stdout.strip()
    if uncached_ok:
        status = {stage: changes for stage, changes in status.items() if not all(_only_uncached(c) for c in changes)}
    return not status, json.dumps(status)


def _only_uncached(change) -> bool:
    """One item of a stage's dvc status: {"changed outs": {path: "not in cache", ...}} and nothing else."""
    return (isinstance(change, dict) and set(change) == {"changed outs"}
            and all(v == NOT_IN_CACHE for v in change["changed outs"].values()))


def dvc_fits(root: Path, stages: tuple[str, ...]) -> tuple[bool, str]:
    """Restored outputs fit when dvc status finds nothing changed but their absence from DVC's cache."""
    return dvc_up_to_date(root, stages, uncached_ok=True)


def save_upstream(archive: str | Path, root: str | Path = ".", stages: tuple[str, ...] = UPSTREAM_STAGES,
                  replace: bool = False, up_to_date: Callable = dvc_up_to_date) -> str:
    """Copy the stages' outputs and dvc.lock entries into archive/_upstream. Only outputs DVC finds up to date
    (what dvc.lock says they are); an archived upstream with other outputs is replaced only with `replace` (the
    runs archived beside it were trained on it); one with the same outputs takes the new dvc.lock record.
    -> one line for the log."""
    root, dst = Path(root), Path(archive) / UPSTREAM_DIR
    entries = {s: lock_entry(root, s) for s in stages}
    missing = [s for s, e in entries.items() if e is None]
    if missing:
        raise UpstreamError(f"dvc.lock has no entry for {missing}: run `dvc repro {' '.join(missing)}` first")
    ok, report = up_to_date(root, stages)
    if not ok:
        raise UpstreamError(f"the outputs of {list(stages)} are not what dvc.lock records ({report}): "
                            f"run `dvc repro {' '.join(stages)}` first")
    if (dst / LOCK_FILE).is_file():
        old = json.loads((dst / LOCK_FILE).read_text())
        if old == entries:
            return f"upstream of {list(stages)} already archived, the same"
        same_outputs = {s: _outputs(e) for s, e in old.items()} == {s: _outputs(e) for s, e in entries.items()}
        # the same outputs under other recorded inputs (dvc commit after an edit that changed nothing they make):
        # the archive takes the new record, or every restore would find its inputs changed
        if not same_outputs and not replace:
            raise UpstreamError(f"{dst} holds other outputs of {list(stages)} (the archived runs were trained on "
                                "them); pass --replace-upstream to overwrite it")
    with atomic_dir(dst) as tmp:
        for s in stages:
            for rel in stage_outputs(root, s):
                if (root / rel).exists():
                    _copy(root / rel, tmp / FILES_DIR / archived_path(rel))
        write_json(entries, tmp / LOCK_FILE)
    return f"saved the upstream of {list(stages)} to {dst}"


def _write_lock_entries(root: Path, entries: dict) -> None:
    """Set these stages' entries in dvc.lock (the rest of the file as it is)."""
    lock = root / "dvc.lock"
    doc = (yaml.safe_load(lock.read_text()) if lock.is_file() else None) or {"schema": "2.0", "stages": {}}
    doc.setdefault("stages", {}).update(entries)
    lock.write_text(yaml.safe_dump(doc, sort_keys=False))


def _dvc_commit(root: Path, stages: tuple[str, ...]) -> None:
    p = _dvc("commit", "-f", *stages, root=root)
    if p.returncode != 0:
        raise UpstreamError(f"dvc commit failed: {(p.stderr or p.stdout).strip()}")


def restore_upstream(archive: str | Path, root: str | Path = ".", commit: Callable = _dvc_commit,
                     up_to_date: Callable = dvc_up_to_date, fits: Callable = dvc_fits) -> str:
    """Put the archived stages' outputs back, with their archived dvc.lock entries, and keep them only when DVC
    then finds the stages up to date: the same command, deps (code, data) and params made them, and the files are
    the archived ones. Only then are they committed (DVC's cache and run cache); otherwise dvc.lock, the files and
    any report they replaced are put back as they were, and `dvc repro` trains the stages here. Checking before
    committing matters: a committed stage enters DVC's run cache, and `dvc repro` would check it out again."""
    root, src = Path(root), Path(archive) / UPSTREAM_DIR
    if not (src / LOCK_FILE).is_file():
        raise UpstreamError(f"no archived upstream under {src}")
    archived = json.loads((src / LOCK_FILE).read_text())
    stages = tuple(archived)
    if all(lock_entry(root, s) is not None for s in stages) and up_to_date(root, stages)[0]:
        return f"{list(stages)} are up to date here: left as they are"
    outputs = [rel for s in stages for rel in stage_outputs(root, s)]
    kept = {rel: src / FILES_DIR / archived_path(rel) for rel in outputs}
    kept = {rel: f for rel, f in kept.items() if f.exists()}
    made = [rel for rel in kept if rel.startswith("data/") and (root / rel).exists()]
    if made:  # a result of this machine's (perhaps half-finished) run: the user decides
        raise UpstreamError(f"outputs of {list(stages)} are already here ({', '.join(made)}) but not up to date: "
                            "delete them to restore the archived ones, or run `dvc repro` to re-make them")
    deps = [d for e in archived.values() for d in _inputs(e)["deps"] if not d.startswith(("lmm_utils", "notebooks"))]
    made_by_them = {rel for e in archived.values() for rel in _outputs(e)}
    absent = [d for d in deps if d not in made_by_them and not (root / d).exists()]
    if absent:
        raise UpstreamError(f"missing {', '.join(absent)}: run the stages before them first (dvc repro perform)")
    lock = root / "dvc.lock"
    lock_before = lock.read_bytes() if lock.is_file() else None
    aside = root / ".upstream-restore.aside"  # reports (git keeps another profile's) replaced: back on failure
    if aside.exists():
        shutil.rmtree(aside)
    try:
        for rel, archived_file in kept.items():
            if (root / rel).exists():
                _copy(root / rel, aside / rel)
                _remove(root / rel)
            _copy(archived_file, root / rel)
        _write_lock_entries(root, archived)
        ok, report = fits(root, stages)
        if not ok:
            raise UpstreamError(f"the archived outputs do not fit this project ({report}: code, data or params "
                                "changed since they were made): left out; `dvc repro` trains those stages here")
        commit(root, stages)
    except BaseException:
        for rel in kept:
            _remove(root / rel)
            if (aside / rel).exists():
                _copy(aside / rel, root / rel)
        if lock_before is None:
            lock.unlink(missing_ok=True)
        else:
            lock.write_bytes(lock_before)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return f"restored {list(stages)} from {src} ({len(kept)} outputs)"


__all__ = ["UPSTREAM_STAGES", "UpstreamError", "restore_upstream", "save_upstream", "stage_outputs"]
