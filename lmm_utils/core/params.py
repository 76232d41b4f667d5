"""params.yaml: loading, checking, and applying profiles (partial overrides such as profiles/tiny.yaml)."""
from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lmm_utils.core.io import atomic_path

PARAMS_FILE = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing a key, has a wrong type, or an impossible value."""


T = TypeVar("T")


def unknown_key_error(key: str, known, where: str) -> ParamsError:
    """The message for a key nobody reads: name it, and the closest known key (a typo would otherwise be ignored)."""
    known = sorted(map(str, known))
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ParamsError(f"params.yaml: {where}.{key} is not a known key{hint}; known keys: {', '.join(known)}")


def dataclass_from(cls: type[T], section: dict | None, where: str | None = None) -> T:
    """A config dataclass from a params section: the one way every `*Config` is built from params.yaml.

    Keys not in the dataclass are refused (naming the closest field); a field whose default is a dataclass is built
    from its sub-section the same way; lists become tuples (configs are frozen, so they must hash).
    """
    where = where or cls.__name__
    if section is None:
        return cls()
    if dataclasses.is_dataclass(section) and isinstance(section, cls):
        return section
    if not isinstance(section, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping, got {section!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kw: dict[str, Any] = {}
    for key, value in section.items():
        if key not in fields:
            raise unknown_key_error(key, fields, where)
        default = field_default(fields[key])
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = dataclass_from(type(default), value, f"{where}.{key}")
        elif isinstance(value, list) and not isinstance(default, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kw[key] = value
    return cls(**kw)


def field_default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


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
    with atomic_path(params_path) as tmp:
        tmp.write_text(yaml.safe_dump(merged, sort_keys=False, default_flow_style=None))
    return merged


def sync_notebook(path: str | Path, params: dict) -> bool:
    """Rewrite the one-line `section = {...}` assignments of a notebook's parameters cell from params.yaml.
    Returns True if the notebook changed. Other lines (scalar parameters, comments) are kept."""
    import nbformat  # deferred: the Jupyter stack (~1 s) loads only when a notebook is read

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
    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmm_utils.core.params", description=__doc__)
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
    caps = sec.get("max_works_by_collection") or {}
    if not isinstance(caps, dict) or not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)
                                             for v in caps.values()):
        raise ParamsError("params.yaml: corpus.max_works_by_collection must map collection names to positive "
                          f"integers (or null: every work), got {caps!r}")
    if sec.get("max_file_mb") is not None:
        require(sec, "corpus", max_file_mb=(int, float))
        require_positive(sec, "corpus", "max_file_mb")
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
    pools = sec.get("pools", ["U_V", "P", "T"])
    allowed = ("U_V", "P", "T")
    if not isinstance(pools, list) or not pools or any(p not in allowed for p in pools):
        raise ParamsError(f"params.yaml: engrave.pools must be a non-empty list of pools with scores {list(allowed)}, "
                          f"got {pools!r}")
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
    variety = cond.get("timbre_variety")
    if variety and variety.get("active"):
        _check_ranges(variety, "perform.conditions.timbre_variety", VARIETY_RANGES)
        for key in ("chorus_prob", "compress_prob"):
            if not 0 <= variety.get(key, -1) <= 1:
                raise ParamsError(f"params.yaml: perform.conditions.timbre_variety.{key} must be in [0, 1]")
        if not isinstance(variety.get("eq_bands"), int) or variety["eq_bands"] < 0:
            raise ParamsError("params.yaml: perform.conditions.timbre_variety.eq_bands must be a whole number >= 0")
        if "T" in variety.get("pools", []):
            raise ParamsError("params.yaml: perform.conditions.timbre_variety.pools must not list T (T stays comparable)")
    if sec.get("noisy"):
        _check_ranges(sec["noisy"], "perform.noisy", ("reverb_room", "reverb_level", "noise_snr_db"))
    return sec


VARIETY_RANGES = ("filter_fc_cents", "filter_q_cb", "attack_tc", "decay_tc", "release_tc", "detune_cents", "chorus_level",
                  "velocity_gamma", "eq_band_db", "reverb_room", "reverb_level", "compress_ratio", "compress_threshold_db")


def _check_ranges(section: dict, where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = section.get(key)
        if not (isinstance(value, list) and len(value) == 2 and value[0] <= value[1]):
            raise ParamsError(f"params.yaml: {where}.{key} must be a range [low, high], got {value!r}")


# ---------------------------------------------------------------- checks of every section, by key name
# A key means the same thing wherever it appears (mapping.method.steps, pretrain.train.steps, synth.neural.steps),
# so most checks go by key name over the whole section; the few keys that may be null say so.

POSITIVE_INT = {"steps", "batch_size", "batch", "block_size", "n_layer", "n_head", "n_embd", "n_bars",
                "max_per_piece", "height", "eval_every", "eval_batches", "codebook_size", "frames_per_token",
                "kmeans_iters", "max_fit_vectors", "crop_frames", "candidates", "g_frames", "unpaired_batch",
                "prior_batch", "max_scores", "max_unpaired", "n_random_excerpts", "n_val_excerpts", "speed_batch",
                "grad_check_frames", "n_partials", "n_stages", "channels", "hidden", "key_dim", "rank",
                "sample_rate", "hop_length", "n_fft", "n_mels", "max_items", "eval_limit", "max_new_tokens",
                "max_works_per_collection", "max_pieces", "max_performances_per_piece", "ticks_per_beat",
                "velocity_bins", "max_shift", "max_chord", "repeats", "shuffles", "n", "robustness_items"}
NON_NEGATIVE = {"seed", "workers", "threads", "warmup", "weight_decay", "grad_clip", "min_notes", "top_k",
                "temperature", "prior_weight", "recon_weight", "deviation_weight", "velocity_noise", "tempo_jitter",
                "timing_noise_ms", "velocity_shift", "tempo_drift", "onset_jitter_ms", "phrase_arch", "melody_lift"}
POSITIVE = {"lr", "min_lr", "excerpt_seconds", "max_file_mb", "time_step", "fmax", "fmin", "arpeggiate_step"}
FRACTION = {"val_fraction", "dropout", "noise_prob", "piano_dropout", "warm_fraction", "keep_fraction",
            "confidence", "dynamics_change_prob", "pedal_prob", "chord_prob", "repeat_prob", "arpeggiate_prob", "register_prob",
            "spread_prob"}
NULLABLE = {"max_items", "eval_limit", "max_scores", "max_unpaired", "max_works_per_collection", "max_pieces", "max_performances_per_piece",
            "maestro_dir", "asap_dir", "tokens", "model", "user_folders", "robustness_items"}
CHOICES = {"recon_eq": (0, 1, 2)}  # keys that take one of a few whole numbers (the order of recon_loss's EQ curve)
REQUIRED = {
    "features": ["sample_rate", "hop_length", "n_fft", "n_mels"],
    "synth": ["seed", "kind", "kinds", "pianos", "n_random_excerpts", "excerpt_seconds"],
    "pretrain": ["seed", "val_fraction", "tokens", "model", "train", "samples"],
    "mapping": ["methods", "Ks", "seeds", "synth", "lm", "eval", "method"],
    "evaluation": ["confidence", "band", "reference_method", "target_method", "knn", "gallery", "oracle_lmM"],
}


def _walk(value, where: str) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _check_key(str(key), sub, f"{where}.{key}")
            _walk(sub, f"{where}.{key}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _walk(sub, f"{where}[{i}]")


def _check_key(key: str, value, where: str) -> None:
    if value is None:
        if key in NULLABLE:
            return
        if key in POSITIVE_INT | NON_NEGATIVE | POSITIVE | FRACTION:
            raise ParamsError(f"params.yaml: {where} must be set (it may not be null)")
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in CHOICES:
        if isinstance(value, bool) or value not in CHOICES[key] or not isinstance(value, int):
            raise ParamsError(f"params.yaml: {where} must be one of {list(CHOICES[key])}, got {value!r}")
    elif key in POSITIVE_INT:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ParamsError(f"params.yaml: {where} must be a whole number > 0, got {value!r}")
    elif key in NON_NEGATIVE | POSITIVE | FRACTION and not number:
        raise ParamsError(f"params.yaml: {where} must be a number, got {value!r}")
    elif key in NON_NEGATIVE and value < 0:
        raise ParamsError(f"params.yaml: {where} must be >= 0, got {value!r}")
    elif key in POSITIVE and value <= 0:
        raise ParamsError(f"params.yaml: {where} must be > 0, got {value!r}")
    elif key in FRACTION and not 0 <= value <= 1:
        raise ParamsError(f"params.yaml: {where} must be in [0, 1], got {value!r}")


def check_section(name: str, sec) -> dict:
    """The checks by key name that apply to params.yaml section `name` (required keys, types, ranges).
    `lmm_utils.pipeline.checks.check_section` adds unknown keys and each section's own rules."""
    if not isinstance(sec, dict):
        raise ParamsError(f"params.yaml: section {name!r} must be a mapping, got {sec!r}")
    for key in REQUIRED.get(name, []):
        if key not in sec:
            raise ParamsError(f"params.yaml: {name}.{key} is missing")
    _walk(sec, name)
    return sec
