"""Trained h and g that ship inside the package (lmm_utils/app/shipped/), so `lmm transcribe` / `lmm perform` work
right after `pip install`, as Basic Pitch does with its bundled model.

- `pick`: the run a sweep ships for one model, by a rule that reads no score (`RULE`): the most pairs, then the
  first of the preferred methods (`SHIP_METHODS`: lmm, then supervised), then the lowest seed. Why no score: every
  score a run has is on T, T_timbre or T_noisy, the test pools; the best of 264 runs by its T score would be a model
  chosen on the test set, and the T score it ships with an optimistic one. Picked by the rule, the scores in
  provenance.json are an honest estimate for that one model. Runs are found with `evaluation.scoring.discover_runs`
  and read through `run.path` only: the run-folder layout is not this module's to know.
- `ship`: copy the two winners' checkpoints into the shipped folder, with the frozen LM folders an LM-reading
  checkpoint needs (lm/A, lm/V; the checkpoint is re-saved to name them there), and write provenance.json last,
  so a folder without provenance.json is never taken for a complete shipment.
- `shipped_model` / `describe`: what the CLI loads when it has no trained run, and the one line it prints about it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from lmm_utils.core.io import atomic_path, write_json
from lmm_utils.evaluation.results_folder import git_commit
from lmm_utils.evaluation.scoring import Run, discover_runs

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
PROVENANCE = "provenance.json"
LM_DIR = "lm"  # shipped/lm/A, shipped/lm/V: the frozen LMs an LM-reading h or g needs at load time
SHIP_COMMAND = "python scripts/ship_models.py --runs data/runs --profile default"
MODELS = ("h", "g")


class ShippingError(RuntimeError):
    """No run to ship, or no (complete) shipped model to load; the message says what to run."""


# The methods a shipment prefers, in order, among the runs with the most pairs: the project's method, then the
# baseline. A method not in the sweep is skipped; with none of them, any method (discover_runs order).
SHIP_METHODS = ("lmm", "supervised")
RULE = "the most pairs, then the first of the preferred methods, then the lowest seed (no score is read)"
# What provenance.json keeps of the winner's metrics.json: each model's "all" rows on every pool it was scored on.
REPORTED_POOLS = {"h": ("T", "T_timbre", "T_noisy"), "g": ("T",)}  # a pool the run lacks is left out


@dataclass(frozen=True)
class Pick:
    run: Run
    metrics: dict


def read_metrics(run: Run) -> dict | None:
    try:
        return json.loads((run.path / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def pick(runs: list[Run], kind: str, methods: tuple[str, ...] | None = SHIP_METHODS) -> Pick:
    """The run `kind` ("h" or "g") ships from, by RULE, among the runs with a <kind>.pt of
    `methods` (preferred in the order given; None or none of them in the sweep: every method, discover_runs order)."""
    have = [r for r in runs if (r.path / f"{kind}.pt").is_file()]
    preferred = [r for r in have if methods and r.method in methods]
    cands = preferred or have
    if not cands:
        raise ShippingError(f"no run with {kind}.pt among {len(runs)} run folders")
    rank = {m: i for i, m in enumerate(methods or ())}
    best = min(cands, key=lambda r: (-r.K, rank.get(r.method, len(rank)), r.seed))  # stable: discover_runs order
    return Pick(best, read_metrics(best) or {})  # the scores go into provenance only; the pick never reads them


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_checkpoint(src: Path, dst: Path, kind: str, lm_root: Path, out_dir: Path) -> dict | None:
    """Copy one checkpoint; if it reads a frozen LM, copy that LM folder to out_dir/lm/<A|V> and re-save the
    checkpoint naming it there (relative to out_dir, the shipped model's lm_root). -> the LM's provenance or None."""
    import torch  # deferred: `lmm --help` and provenance reads load no torch

    ck = torch.load(src, map_location="cpu", weights_only=True)
    if not ck.get("lm"):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)  # byte-identical: the sha256 in provenance matches the run's file
        return None
    lm_kind = "A" if kind == "h" else "V"
    lm_src = Path(lm_root) / ck["lm"]
    if not (lm_src / "lm.pt").is_file():
        raise ShippingError(f"{src} reads the frozen LM {ck['lm']}, not found under {lm_root} (pass --root)")
    md5 = hashlib.md5((lm_src / "lm.pt").read_bytes()).hexdigest()
    if ck.get("lm_md5") and ck["lm_md5"] != md5:
        raise ShippingError(f"{lm_src}/lm.pt is not the LM {src} was trained on (md5 {md5} != {ck['lm_md5']})")
    lm_dst = out_dir / LM_DIR / lm_kind
    if lm_dst.exists():
        shutil.rmtree(lm_dst)
    lm_dst.mkdir(parents=True)
    for f in sorted(lm_src.iterdir()):
        if f.is_file():  # lm.pt, info.json: what LanguageModel.load reads
            shutil.copyfile(f, lm_dst / f.name)
    source = str(ck["lm"])
    ck["lm"] = f"{LM_DIR}/{lm_kind}"
    with atomic_path(dst) as tmp:
        torch.save(ck, tmp)
    return {"source": source, "shipped": ck["lm"], "md5": md5}


def _entry(chosen: Pick, methods: tuple[str, ...] | None, kind: str, out_dir: Path, lm: dict | None) -> dict:
    r = chosen.run
    scored = {pool: (chosen.metrics.get(kind) or {}).get(pool, {}).get("all") for pool in REPORTED_POOLS[kind]}
    return {"file": f"{kind}.pt", "run": r.name, "method": r.method, "K": r.K, "seed": r.seed,
            "rule": {"text": RULE, "preferred_methods": list(methods or ())},
            "metrics": {pool: rows for pool, rows in scored.items() if rows is not None},
            "sha256": _sha256(out_dir / f"{kind}.pt"), "lm": lm}


def ship(runs_dir: str | Path, profile: str, out_dir: str | Path = SHIPPED_DIR, root: str | Path = ".",
         methods: tuple[str, ...] | None = SHIP_METHODS, now: dt.datetime | None = None) -> dict:
    """Pick h and g of the sweep under runs_dir by RULE, copy them into out_dir, write provenance.json. `root` is
    the project the runs belong to (their LM folders are relative to it; its git HEAD is recorded). -> provenance."""
    out_dir, root = Path(out_dir), Path(root)
    runs = discover_runs(runs_dir)
    if not runs:
        raise ShippingError(f"no run folders under {runs_dir}: run the sweep first (`dvc repro`, stage map)")
    picks = {kind: pick(runs, kind, methods) for kind in MODELS}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PROVENANCE).unlink(missing_ok=True)  # incomplete until the end: the CLI then refuses it
    if (out_dir / LM_DIR).exists():
        shutil.rmtree(out_dir / LM_DIR)  # an old shipment's LMs must not outlive it
    entries = {}
    for kind, chosen in picks.items():
        lm = _copy_checkpoint(chosen.run.path / f"{kind}.pt", out_dir / f"{kind}.pt", kind, root, out_dir)
        entries[kind] = _entry(chosen, methods, kind, out_dir, lm)
    commit, dirty = git_commit(root)
    prov = {"profile": profile, "date": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
            "git_commit": commit, "git_dirty": dirty, "runs_dir": str(runs_dir), "n_runs": len(runs),
            **entries}
    write_json(prov, out_dir / PROVENANCE)
    return prov


# --- reading a shipment (the CLI) ---------------------------------------------------------------------------

def load_provenance(shipped_dir: str | Path = SHIPPED_DIR) -> dict:
    path = Path(shipped_dir) / PROVENANCE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ShippingError(f"no shipped model in {shipped_dir} (it is filled from a trained sweep with "
                            f"`{SHIP_COMMAND}`)") from None
    except ValueError as exc:
        raise ShippingError(f"{path}: unreadable ({exc}); refill it with `{SHIP_COMMAND}`") from None


def shipped_model(kind: str, shipped_dir: str | Path = SHIPPED_DIR) -> tuple[Path, dict]:
    """(checkpoint path, provenance) of the shipped h or g; ShippingError naming the ship command if absent."""
    prov = load_provenance(shipped_dir)
    ck = Path(shipped_dir) / f"{kind}.pt"
    if kind not in prov or not ck.is_file():
        raise ShippingError(f"the shipped model in {shipped_dir} has no {kind}.pt; refill it with `{SHIP_COMMAND}`")
    return ck, prov


def describe(prov: dict, kind: str) -> str:
    """One line: which run the shipped model came from, how it was picked, its scores, and the sweep."""
    e = prov[kind]
    c = e.get("criterion")  # shipments made before RULE were picked by a score on T
    how = ("by the most pairs, no score read" if "rule" in e else
           f"by {c['model']} {c['key']} on {c['pool']} {c['subset']} = {c['value']:.3f}" if c else "by an unrecorded rule")
    scores = ", ".join(f"{pool} {rows['note_f1']:.3f}" for pool, rows in e.get("metrics", {}).items()
                       if isinstance(rows.get("note_f1"), int | float))
    commit = (prov.get("git_commit") or "unknown")[:10] + ("+dirty" if prov.get("git_dirty") else "")
    return (f"run {e['run']} ({e['method']}, K={e['K']}, seed {e['seed']}), picked {how}; {kind} note F1: "
            f"{scores or 'n/a'}; "
            f"profile {prov.get('profile')}, commit {commit}, {str(prov.get('date', ''))[:10]}")


__all__ = ["MODELS", "Pick", "RULE", "SHIPPED_DIR", "SHIP_COMMAND", "SHIP_METHODS", "ShippingError", "describe",
           "git_commit", "load_provenance", "pick", "read_metrics", "ship", "shipped_model"]
