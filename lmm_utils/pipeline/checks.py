"""Every check of a params.yaml section, run by the stage runner before a kernel starts.

A typo'd key would otherwise change nothing and say nothing (the code reads the keys it knows and the rest is
dropped), so every key must be one that some stage reads: `KNOWN` lists them. A section that becomes a config
dataclass names the class ("module:Class"), and its keys are that class's fields, so the two cannot drift apart.
This module sits in `pipeline/` (above every stage) because the method registry and the config classes it checks
against live in later stages than `core.params`, which holds the generic checks by key name.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Union

from lmm_utils.core import params as core
from lmm_utils.core.params import ParamsError, unknown_key_error

# The schema's config classes are imported when a section that names them is checked (Class.resolve), and the
# section-specific checks import their modules inside: the stage runner checks its sections in a process of its own
# before the kernel starts, and torch's import alone is ~2 s of it.

# A schema node: None (any value), a dict of known keys -> nodes, or a dataclass reference whose fields are the known
# keys (optionally with the extra keys a stage reads beside the dataclass: Class(ref, extra)).
Node = Union[None, dict, list, "Class"]  # a one-item list: every item of a list value matches that node


@dataclasses.dataclass(frozen=True)
class Class:
    """A section read by a config class: its keys are the dataclass's fields (or the constructor's parameters)."""
    ref: str | type  # "module:ClassName", or the class itself
    extra: tuple[str | Class, ...] = ()  # a Class here adds all its keys
    exclude: tuple[str, ...] = ()  # fields the stage sets itself (a value here would be ignored, so it is refused)
    sub: tuple[tuple[str, Node], ...] = ()  # schema of fields that hold a plain dict (e.g. LMMConfig.lmM_model)

    def resolve(self) -> type:
        if isinstance(self.ref, type):
            return self.ref
        module, name = self.ref.split(":")
        return getattr(importlib.import_module(module), name)

    def defaults(self) -> dict:
        cls = self.resolve()
        if dataclasses.is_dataclass(cls):
            return {f.name: core.field_default(f) for f in dataclasses.fields(cls) if f.init}
        params = inspect.signature(cls.__init__).parameters.values()
        return {p.name: p.default for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}

    def keys(self) -> set[str]:
        extra = set()
        for item in self.extra:
            extra |= item.keys() if isinstance(item, Class) else {item}
        return (set(self.defaults()) | extra) - set(self.exclude)

    def child(self, key: str) -> Node:
        """The schema of one field's value: its own entry in `sub`, or the nested config class of its default."""
        sub = dict(self.sub)
        if key in sub:
            return sub[key]
        default = self.defaults().get(key)
        return Class(type(default)) if dataclasses.is_dataclass(default) else None


_TRAIN = Class("lmm_utils.training.loop:TrainConfig", ("threads",))  # threads: torch.set_num_threads by the stage
_LM = Class("lmm_utils.models.transformer:TransformerConfig", exclude=("vocab_size",))  # the tokenizer sets it
_MOTION_TOKENS = Class("lmm_utils.tokens.motion:MotionTokenizer")
# S's fit loop reads these (synth.fit.FIT_KEYS) beside each kind's architecture config; the stage sets seed, threads,
# piano_dropout
_FIT = Class("lmm_utils.synth.fit:FitConfig", exclude=("seed", "threads", "piano_dropout"))

KNOWN: dict[str, Node] = {
    "corpus": {**dict.fromkeys(["seed", "collections", "max_works_per_collection", "user_folders", "max_file_mb",
                                "workers", "source"]),
               "max_works_by_collection": None},  # keys = collection names (check_section: corpus.cap_keys)
    "real_data": dict.fromkeys(["maestro_dir", "asap_dir", "excerpt_seconds", "max_pieces",
                                "max_performances_per_piece"]),
    "split": {"seed": None, "fractions": dict.fromkeys(["U_V", "U_A", "P", "T"]),
              "excerpts": Class("lmm_utils.data.excerpts:ExcerptConfig")},
    "engrave": dict.fromkeys(["height", "workers", "pools"]),
    "perform": {"seed": None, "workers": None, "pianist": Class("lmm_utils.data.pianist:PianistConfig"),
                "conditions": {"soundfonts": [dict.fromkeys(["file", "presets"])],
                               **dict.fromkeys(["reverb_room", "reverb_level", "gain_db", "eq_tilt_db", "noise_prob",
                                                "noise_snr_db"]),
                               "timbre_variety": dict.fromkeys(["active", "pools", "filter_fc_cents", "filter_q_cb",
                                                                "attack_tc", "decay_tc", "release_tc", "detune_cents",
                                                                "chorus_prob", "chorus_level", "velocity_gamma",
                                                                "eq_bands", "eq_band_db", "reverb_room", "reverb_level",
                                                                "compress_prob", "compress_ratio",
                                                                "compress_threshold_db"])},
                "timbre_soundfont": dict.fromkeys(["file", "preset"]),
                "noisy": dict.fromkeys(["reverb_room", "reverb_level", "noise_snr_db"])},
    "features": Class("lmm_utils.core.features:FeatureConfig"),
    "pretrain": {"seed": None, "val_fraction": None, "max_items": None,
                 "tokens": {"V": Class("lmm_utils.tokens.score:ScoreTokenizer"),
                            "A": Class("lmm_utils.tokens.audio:AudioTokenizer", exclude=("n_mels", "seed"))},
                 "model": _LM, "train": _TRAIN,
                 "samples": dict.fromkeys(["n", "max_new_tokens", "temperature", "top_k", "seed"]),
                 "M": Class("lmm_utils.lm.motion_lm:MotionLMConfig",
                            sub=(("performer", Class("lmm_utils.lm.generic_performer:GenericPerformerConfig")),
                                 ("tokens", _MOTION_TOKENS), ("model", _LM), ("train", _TRAIN)))},
    "synth": {**dict.fromkeys(["seed", "kind", "kinds", "pianos", "heldout_piano", "n_random_excerpts",
                               "n_val_excerpts", "excerpt_seconds", "workers", "threads", "piano_dropout",
                               "eval_pool", "eval_limit", "speed_batch", "grad_check_frames"]),
              "motion": Class("lmm_utils.synth.random_motion:RandomMotionConfig", exclude=("seconds",)),
              "baseline": _FIT,
              "additive": Class("lmm_utils.models.synth:AdditiveConfig", (_FIT,)),
              "neural": Class("lmm_utils.models.synth:NeuralConfig", (_FIT,))},
    "mapping": {**dict.fromkeys(["methods", "Ks", "seeds", "method_Ks", "device", "workers", "synth"]),
                "lm": dict.fromkeys(["A", "V", "M"]), "eval": dict.fromkeys(["max_items"]),
                "method": Class("lmm_utils.methods.base:MethodConfig"),
                "transcriber": Class("lmm_utils.models.transcriber:TranscriberConfig"),
                "augment": Class("lmm_utils.methods.augment:AugmentConfig"),
                "performer": Class("lmm_utils.models.performer:PerformerConfig"),
                "align": Class("lmm_utils.methods.alignment:AlignConfig"),
                "synth_pairs": Class("lmm_utils.methods.synth_pairs:SynthPairsConfig"),
                "surface": Class("lmm_utils.methods.surface:SurfaceConfig"),
                "cycle": Class("lmm_utils.methods.cycle:CycleConfig"),
                "basis": Class("lmm_utils.methods.basis:BasisConfig"),
                "lmm": Class("lmm_utils.methods.lmm_state:LMMConfig",
                             sub=(("lmM_tokens", _MOTION_TOKENS), ("lmM_model", _LM), ("lmM_train", _TRAIN)))},
    "evaluation": {**dict.fromkeys(["confidence", "band", "reference_method", "target_method", "multiplier_curves",
                                    "multiplier_resampling", "workers", "threads", "robustness_items"]),
                   "knn": dict.fromkeys(["k", "gallery_sizes", "repeats", "shuffles", "seed"]),
                   "gallery": dict.fromkeys(["n", "seed"]),
                   "oracle_lmM": {"seed": None, "val_fraction": None, "tokens": _MOTION_TOKENS, "model": _LM,
                                  "train": _TRAIN}},
}


def check_known_keys(value, node: Node, where: str) -> None:
    """Refuse any key the schema does not know, at any depth, naming it and the closest known key."""
    if isinstance(node, list) and isinstance(value, list):
        for i, item in enumerate(value):
            check_known_keys(item, node[0], f"{where}[{i}]")
        return
    if node is None or not isinstance(value, dict) or isinstance(node, list):
        return
    known = node.keys() if isinstance(node, Class) else node
    for key, sub in value.items():
        if key not in known:
            raise unknown_key_error(key, known, where)
        check_known_keys(sub, node.child(key) if isinstance(node, Class) else node[key], f"{where}.{key}")


def check_mapping(sec: dict) -> dict:
    from lmm_utils.methods import check_method  # here: torch's import, paid only by the stages that read mapping
    core.require(sec, "mapping", methods=list, Ks=list, seeds=list, method=dict, eval=dict)
    for name in sec["methods"]:
        try:
            check_method(str(name))
        except ValueError as exc:
            raise ParamsError(f"params.yaml: mapping.methods: {exc}") from None
    for key in ("Ks", "seeds"):
        _check_whole_numbers(sec[key], f"mapping.{key}")
    per_method = sec.get("method_Ks") or {}
    if not isinstance(per_method, dict):
        raise ParamsError(f"params.yaml: mapping.method_Ks must map a method to its Ks, got {per_method!r}")
    for name, values in per_method.items():
        if values is None:  # null: the method runs at mapping.Ks (a profile undoing the default's entry)
            continue
        if name not in sec["methods"]:
            raise ParamsError(f"params.yaml: mapping.method_Ks.{name} is not a known key: method_Ks gives methods of "
                              f"mapping.methods {sec['methods']} their own Ks")
        _check_whole_numbers(values, f"mapping.method_Ks.{name}")
    return sec


def _check_whole_numbers(values, where: str) -> None:
    """A non-empty list of distinct whole numbers >= 0 (Ks, seeds)."""
    if (not isinstance(values, list) or not values
            or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values)):
        raise ParamsError(f"params.yaml: {where} must be a non-empty list of whole numbers >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise ParamsError(f"params.yaml: {where} lists a value twice: {values!r}")


def check_split(sec: dict) -> dict:
    from lmm_utils.data.pools import check_fractions  # here: the runner imports only what a stage's sections need

    core.check_split(sec)
    try:
        check_fractions(sec["fractions"])
    except ValueError as exc:
        raise ParamsError(f"params.yaml: {exc}") from None
    return sec


def check_evaluation(sec: dict) -> dict:
    from lmm_utils.evaluation.curves import RESAMPLING  # here: the runner imports only what a stage's sections need

    value = sec.get("multiplier_resampling", RESAMPLING[0])
    if value not in RESAMPLING:
        raise ParamsError(f"params.yaml: evaluation.multiplier_resampling must be one of {list(RESAMPLING)}, "
                          f"got {value!r}")
    return sec


SPECIFIC = {"corpus": core.check_corpus, "split": check_split, "engrave": core.check_engrave,
            "perform": core.check_perform, "mapping": check_mapping, "evaluation": check_evaluation}


def check_section(name: str, sec) -> dict:
    """Every check that applies to params.yaml section `name`: known keys, types and ranges by key name, and the
    section's own rules. The stage runner calls this for each section it injects, so a broken params.yaml stops a
    stage before its kernel starts, with the key at fault named."""
    if name not in KNOWN:
        close = difflib.get_close_matches(name, list(KNOWN), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParamsError(f"params.yaml: no stage reads a section {name!r}{hint}; sections: {', '.join(KNOWN)}")
    if not isinstance(sec, dict):
        raise ParamsError(f"params.yaml: section {name!r} must be a mapping, got {sec!r}")
    check_known_keys(sec, KNOWN[name], name)  # first: a typo'd key would otherwise fail as a type error, misleadingly
    if name == "corpus":  # the per-collection caps' keys: the rule list_works applies (corpus.cap_keys)
        from lmm_utils.data.corpus import cap_keys  # here: the runner imports only what a stage's sections need

        known = cap_keys(sec.get("collections") or [])
        for key in sec.get("max_works_by_collection") or {}:
            if key not in known:
                raise unknown_key_error(key, known, "corpus.max_works_by_collection")
    core.check_section(name, sec)
    specific = SPECIFIC.get(name)
    if specific:
        specific(sec)
    return sec


def check_params(params: dict) -> dict:
    """All sections of a params.yaml (profiles merged in), e.g. after `python -m lmm_utils.core.params apply`."""
    for name, sec in params.items():
        check_section(name, sec)
    return params
