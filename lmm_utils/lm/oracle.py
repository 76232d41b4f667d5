"""An ORACLE LM^M trained on U_A's ground-truth motion -- a diagnostic upper bound (stage `references`,
notebook 09_references; or `python -m lmm_utils.lm.oracle` by hand) -> data/oracle_lmM/{lm.pt, info.json, bits.json}.

No method may ever see motion (pools.TrainingData refuses it); this model exists only so that evaluation
can say how good an LM^M *could* be on T's true motion when trained on real motion of the same size as
U_A. It is read by the evaluation notebook and nothing else, and is labelled "oracle" wherever it appears.
Its tokenizer and model size default to those of the runs' LM^M (params `evaluation.oracle_lmM`).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from lmm_utils.core.io import write_json
from lmm_utils.core.motion import Performance
from lmm_utils.core.params import load_params
from lmm_utils.core.paths import DATA, project_root
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.lm.model import evaluate_lm, train_lm
from lmm_utils.tokens.motion import MotionTokenizer

OUT = DATA / "oracle_lmM"
LABEL = "ORACLE (diagnostic upper bound: trained on U_A ground-truth motion, never used by any method)"


def read_true_motion(pool: str, root: Path) -> list[Performance]:
    """Ground-truth motion in file order, through the evaluation door -- allowed here only because this is
    evaluation code (a diagnostic reference), read by no method."""
    return list(EvaluationData(root).motion(pool).values())


# LM^M's default size and tokens (methods.lmm.LMMConfig uses the same), so bits/token compare across runs and oracle
DEFAULT_MODEL = {"block_size": 128, "n_layer": 2, "n_head": 2, "n_embd": 64, "dropout": 0.0}
DEFAULT_TOKENS = {"time_step": 0.02, "max_shift": 50, "velocity_bins": 16}


def resolve(section: dict, params: dict) -> dict:
    """tokens / model null -> the runs' LM^M settings (mapping.lmm.lmM_tokens / lmM_model), so that bits per
    token are counted over the same vocabulary and the oracle has the same capacity."""
    lmm = ((params.get("mapping") or {}).get("lmm") or {})
    return {**section, "tokens": section.get("tokens") or lmm.get("lmM_tokens") or {},
            "model": section.get("model") or lmm.get("lmM_model") or DEFAULT_MODEL}


def bits_per_note(bits_per_token: float, n_tokens: int, perfs: list[Performance]) -> float:
    """Total bits over the notes they describe: comparable across motion tokenizers (bits/token is not)."""
    n_notes = sum(len(p.notes) for p in perfs)
    return bits_per_token * n_tokens / n_notes if n_notes else float("nan")


def train_oracle(section: dict, root: Path, out: Path, progress: bool = True) -> dict:
    tok = MotionTokenizer(**(section.get("tokens") or {}))
    train_perf = read_true_motion("U_A", root)
    random.Random(int(section.get("seed", 0))).shuffle(train_perf)
    n_val = max(1, int(round(float(section.get("val_fraction", 0.05)) * len(train_perf))))
    val, train = train_perf[:n_val], train_perf[n_val:]
    test = read_true_motion("T", root)
    seqs = [tok.encode(p) for p in train]
    lm = train_lm(seqs, tok, section["model"], {**section["train"], "seed": int(section.get("seed", 0))},
                  val_sequences=[tok.encode(p) for p in val], out_dir=root / out,
                  info={"label": LABEL, "train_pool": "U_A (ground-truth motion)"}, progress=progress)
    res = evaluate_lm(lm, seqs, [tok.encode(p) for p in test], progress=progress)
    bits = {"label": LABEL, "test_pool": "T", **res, "bits_per_note": bits_per_note(res["lm"], res["n_tokens"], test),
            "tokens": tok.config(), "model": section["model"]}
    write_json(bits, root / out / "bits.json")
    return bits


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lmm_utils.lm.oracle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    root = project_root()
    params = load_params(root / "params.yaml")
    section = resolve(params["evaluation"]["oracle_lmM"], params)
    bits = train_oracle(section, root, Path(args.out))
    print(f"oracle LM^M: {bits['lm']:.3f} bits/token on T's true motion (bigram {bits['bigram']:.3f})")


if __name__ == "__main__":
    main()
