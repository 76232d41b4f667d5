"""Carry an archived upstream across a notebook edit that changes only its parameters cell's defaults.

    python scripts/run_archive.py rebase-upstream --archive runs_archive/paper

Why: a stage notebook's parameters cell holds params.yaml's values of every section it reads (`python -m
lmm_utils.core.params sync-notebooks` writes them; tests/test_project.py holds them equal), and the stage runner
injects the whole sections its command names (`--sections`, `-p`, `--each`) over them at run time, so a changed
default in such a section (pretrain_M's notebook holds the whole `mapping` section for `mapping.lmm.lmM_model`; a
change of the default sweep's `mapping.Ks` lands there) changes the notebook's bytes but nothing the stage makes.
DVC sees a changed dep, and the archived upstream's dvc.lock entry (upstream_archive) would no longer fit:
`restore-upstream` would leave the archived LM^M out, the stage would train again, and every archived run that reads
it would train again too (training is not bit-reproducible across machines).

`rebase_upstream` finds the archived version of each such notebook in git history (by its md5) and the current one
too (a fresh clone must hold the same bytes), and rebases only when: the two differ in nothing but the parameters
cell's source; that cell is `name = literal` statements only, in both (read with ast, never run); every changed
default sits in a section the stage's command injects; and none is a param the stage tracks (its dvc.lock
`params`). It then records the notebook's current md5 in the archived entry -- what `dvc commit` does for a dep edit
that changes no output -- and keeps the evidence in `_upstream/rebased.json` (stage, path, both md5s, the commit of
the archived version, the keys that differ). Anything else is refused and the archive is left as it was.

Pipeline code, outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE).
"""
from __future__ import annotations

import ast
import hashlib
import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from lmm_utils.core.io import write_json
from lmm_utils.pipeline.stage import build_parser
from lmm_utils.pipeline.upstream_archive import LOCK_FILE, UPSTREAM_DIR, UpstreamError

REBASED_FILE = "rebased.json"  # in the archive's _upstream/: one record per rebased notebook dep
PARAMETERS_TAG = "parameters"
RUNNER = "lmm_utils.pipeline.stage"  # the module every stage's cmd runs (`python -m ...`)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # DVC 3's "hash: md5" of a file: its raw bytes


def git_version(root: Path, path: str, want_md5: str) -> tuple[str, bytes] | None:
    """(commit, bytes) of the newest version of `path` in git history whose md5 is `want_md5`, else None."""
    log = subprocess.run(["git", "log", "--format=%H", "--", path], cwd=root, capture_output=True, text=True)
    for commit in log.stdout.split():
        show = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True)
        if show.returncode == 0 and md5(show.stdout) == want_md5:
            return commit, show.stdout
    return None


def _parameters(nb: dict) -> tuple[int, dict]:
    """(index, values) of the notebook's parameters cell, read (not run): every statement must be `name = literal`,
    since anything else (a call, an import, an attribute set) would act at run time whatever is injected after it."""
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            values = {}
            for node in ast.parse(source).body:
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)):
                    raise UpstreamError(f"its parameters cell holds a statement other than `name = literal` "
                                        f"(line {node.lineno})")
                try:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    raise UpstreamError(f"its parameters cell assigns {node.targets[0].id} something other than "
                                        "a literal") from None
            return i, values
    raise UpstreamError("no cell tagged 'parameters'")


def injected_names(cmd: str) -> set[str]:
    """The parameter names the stage runner sets over the notebook's defaults, read from a stage's command line with
    the runner's own parser (`--sections a,b`, `-p name=value`, `--each name=v1,v2`); none for another command."""
    words = shlex.split(cmd or "")
    if RUNNER not in words:
        return set()
    args = build_parser().parse_args(words[words.index(RUNNER) + 1:])
    names = {n for n in args.sections.split(",") if n} | {p.partition("=")[0] for p in args.param}
    return names | ({args.each.partition("=")[0]} if args.each else set())


def _differing(old, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (a whole dict key when one side is not a dict)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differing(old.get(key), new.get(key), f"{prefix}{key}.") if key in old and key in new \
                else [f"{prefix}{key}"]
        return out
    return [] if old == new else [prefix.rstrip(".")]


def parameters_only_diff(old: bytes, new: bytes) -> list[str]:
    """The dotted parameter keys whose defaults differ between two versions of a notebook; UpstreamError when
    anything else differs (a code or Markdown cell, the cells' order, the notebook's metadata)."""
    a, b = json.loads(old), json.loads(new)
    (i, pa), (j, pb) = _parameters(a), _parameters(b)
    # everything but the parameters cell's source: its metadata, outputs and count must match too
    rest_a = {**a, "cells": [c if k != i else {**c, "source": None} for k, c in enumerate(a["cells"])]}
    rest_b = {**b, "cells": [c if k != j else {**c, "source": None} for k, c in enumerate(b["cells"])]}
    if i != j or rest_a != rest_b:
        raise UpstreamError("the notebook differs outside its parameters cell")
    return _differing(pa, pb)


def _overlaps(key: str, tracked: str) -> bool:
    return key == tracked or key.startswith(tracked + ".") or tracked.startswith(key + ".")


def rebase_upstream(archive: str | Path, root: str | Path = ".",
                    history: Callable[[Path, str, str], tuple[str, bytes] | None] = git_version) -> str:
    """Record the current md5 of each archived notebook dep that changed only in untracked parameter defaults.
    -> one line for the log. Raises UpstreamError (archive untouched) when a changed notebook dep is anything else."""
    root, up = Path(root), Path(archive) / UPSTREAM_DIR
    if not (up / LOCK_FILE).is_file():
        raise UpstreamError(f"no archived upstream under {up}")
    lock = json.loads((up / LOCK_FILE).read_text())
    records = []
    for stage, entry in lock.items():
        tracked = [k for values in (entry.get("params") or {}).values() for k in values]
        injected = injected_names(entry.get("cmd", ""))
        for dep in entry.get("deps") or []:
            path = dep["path"]
            if not path.endswith(".ipynb") or not (root / path).is_file():
                continue
            now = (root / path).read_bytes()
            if md5(now) == dep.get("md5"):
                continue
            found = history(root, path, dep.get("md5"))
            if found is None:
                raise UpstreamError(f"{stage}: the archived version of {path} (md5 {dep.get('md5')}) is not in git "
                                    "history: nothing to compare with")
            commit, old = found
            try:
                keys = parameters_only_diff(old, now)
            except UpstreamError as e:
                raise UpstreamError(f"{stage}: {path}: {e} (since {commit[:8]}): the stage must run again") from None
            clash = [k for k in keys if any(_overlaps(k, t) for t in tracked)]
            if clash:
                raise UpstreamError(f"{stage}: {path}: tracked params differ ({', '.join(clash)}): the stage must "
                                    "run again")
            kept = [k for k in keys if k.split(".", 1)[0] not in injected]
            if kept:  # a default the runner does not set over is what the stage runs with
                raise UpstreamError(f"{stage}: {path}: defaults the stage runs with differ ({', '.join(kept)}; "
                                    f"injected: {', '.join(sorted(injected)) or 'nothing'}): the stage must run again")
            if history(root, path, md5(now)) is None:  # a fresh clone would hold other bytes and still not fit
                raise UpstreamError(f"{stage}: {path}: commit the notebook first (its md5 {md5(now)} is not in git "
                                    "history)")
            records.append({"stage": stage, "path": path, "from_md5": dep["md5"], "to_md5": md5(now),
                            "from_commit": commit, "differing_defaults": keys})
            dep["md5"], dep["size"] = md5(now), len(now)
    if not records:
        return "every archived notebook dep is as it was: nothing to rebase"
    write_json(lock, up / LOCK_FILE)  # the lock before the evidence: a failed write never claims a rebase
    done = json.loads((up / REBASED_FILE).read_text()) if (up / REBASED_FILE).is_file() else []
    write_json(done + [r for r in records if r not in done], up / REBASED_FILE)
    return "rebased " + "; ".join(f"{r['stage']}: {r['path']} ({', '.join(r['differing_defaults'])})"
                                  for r in records)


__all__ = ["injected_names", "parameters_only_diff", "rebase_upstream", "REBASED_FILE"]
