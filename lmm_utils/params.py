"""params.yaml: loading, checking, and applying profiles (partial overrides such as profiles/tiny.yaml)."""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import yaml

PARAMS_FILE = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing a key, has a wrong type, or an impossible value."""


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the project root (the folder with dvc.yaml).")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections, got {type(params).__name__}")
    return params


def section(params: dict, name: str) -> dict:
    if name not in params:
        raise ParamsError(f"params.yaml has no section {name!r} (sections: {', '.join(params)})")
    return params[name]


def require(sec: dict, where: str, **types) -> None:
    """Check that `sec` has each key with the given type(s); say which key and what was found."""
    for key, kind in types.items():
        if key not in sec:
            raise ParamsError(f"params.yaml: {where}.{key} is missing")
        value = sec[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise ParamsError(f"params.yaml: {where}.{key} must be {_names(kind)}, got {value!r}")


def require_positive(sec: dict, where: str, *keys: str, allow_zero: bool = False) -> None:
    for key in keys:
        value = sec.get(key)
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            raise ParamsError(f"params.yaml: {where}.{key} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_profile(profile: str | Path, params_path: str | Path = PARAMS_FILE) -> dict:
    """Overwrite params.yaml with itself deep-merged with a profile file; returns the result."""
    merged = deep_merge(load_params(params_path), load_params(profile))
    Path(params_path).write_text(yaml.safe_dump(merged, sort_keys=False, default_flow_style=None))
    return merged


def sync_notebook(path: str | Path, params: dict) -> bool:
    """Rewrite the one-line `section = {...}` assignments of a notebook's parameters cell from params.yaml.
    Returns True if the notebook changed. Other lines (scalar parameters, comments) are kept."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []))
    lines = cell.source.splitlines()
    for i, line in enumerate(lines):
        name = line.split("=", 1)[0].strip()
        if name in params and line.startswith(f"{name} = "):
            lines[i] = f"{name} = {params[name]!r}"
    source = "\n".join(lines)
    if source == cell.source:
        return False
    cell.source = source
    nbformat.write(nb, str(path))
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmm_utils.params", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    apply = sub.add_parser("apply", help="merge a profile (e.g. profiles/tiny.yaml) into params.yaml")
    apply.add_argument("profile")
    apply.add_argument("--params", default=str(PARAMS_FILE))
    sync = sub.add_parser("sync-notebooks", help="set notebooks' parameters cells to params.yaml's values")
    sync.add_argument("notebooks", nargs="*", default=None)
    args = parser.parse_args(argv)
    if args.command == "apply":
        apply_profile(args.profile, args.params)
        print(f"applied {args.profile} to {args.params}")
        return
    params = load_params()
    for nb in args.notebooks or sorted(Path("notebooks").glob("*.ipynb")):
        if sync_notebook(nb, params):
            print(f"updated {nb}")


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------- checks of the data stages' sections

def check_corpus(sec: dict) -> dict:
    require(sec, "corpus", seed=int, collections=list, user_folders=(list, type(None)), workers=int)
    if sec.get("max_works_per_collection") is not None:
        require(sec, "corpus", max_works_per_collection=int)
        require_positive(sec, "corpus", "max_works_per_collection")
    require_positive(sec, "corpus", "workers", allow_zero=True)
    return sec


def check_split(sec: dict) -> dict:
    require(sec, "split", seed=int, fractions=dict, excerpts=dict)
    ex = sec["excerpts"]
    require(ex, "split.excerpts", n_bars=int, max_per_piece=int, min_notes=int, tempo_bpm=list)
    require_positive(ex, "split.excerpts", "n_bars", "max_per_piece")
    require_positive(ex, "split.excerpts", "min_notes", allow_zero=True)
    lo, hi = ex["tempo_bpm"]
    if not 0 < lo <= hi:
        raise ParamsError(f"params.yaml: split.excerpts.tempo_bpm must be [low, high] with 0 < low <= high, got {ex['tempo_bpm']}")
    return sec


def check_engrave(sec: dict) -> dict:
    require(sec, "engrave", height=int)
    require_positive(sec, "engrave", "height")
    return sec


def check_perform(sec: dict) -> dict:
    require(sec, "perform", seed=int, pianist=dict, conditions=dict, timbre_soundfont=dict)
    cond = sec["conditions"]
    require(cond, "perform.conditions", soundfonts=list, noise_prob=(int, float))
    if not cond["soundfonts"]:
        raise ParamsError("params.yaml: perform.conditions.soundfonts is empty: list at least one {file, presets}")
    for key in ("reverb_room", "reverb_level", "gain_db", "eq_tilt_db", "noise_snr_db"):
        value = cond.get(key)
        if not (isinstance(value, list) and len(value) == 2 and value[0] <= value[1]):
            raise ParamsError(f"params.yaml: perform.conditions.{key} must be a range [low, high], got {value!r}")
    if not 0 <= cond["noise_prob"] <= 1:
        raise ParamsError(f"params.yaml: perform.conditions.noise_prob must be in [0, 1], got {cond['noise_prob']}")
    return sec
