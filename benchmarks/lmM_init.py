"""LM^M mapped from LM^V, three ways, same data and budget: from LM^V's trunk (the default, init lmV), from scratch at
LM^V's size, and from scratch at the in-run LM^M's size (the oracle's size). Bits per token on T's true motion
(a diagnostic: read here through the evaluation door, never by training), beside the KN bigram fitted on the same
generic motion, and -- for reference -- the oracle trained on U_A's true motion when stage references has run.

    .venv/bin/python benchmarks/lmM_init.py [--steps 500] [--out reports/bench_lmM_init.json]

Needs data/scores (stage split), data/motion/T (perform) and data/lm/V (stage pretrain).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lmm_utils.core.params import load_params
from lmm_utils.core.paths import chdir_to_root
from lmm_utils.data.evaluation import EvaluationData
from lmm_utils.lm import data as lm_data
from lmm_utils.lm.model import LanguageModel, evaluate_lm
from lmm_utils.lm.motion_lm import MotionLMConfig, motion_lm_data, train_motion_lm
from lmm_utils.lm.oracle import bits_per_note
from lmm_utils.training.loop import set_threads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: pretrain.M.train.steps)")
    ap.add_argument("--out", default="reports/bench_lmM_init.json")
    args = ap.parse_args(argv)
    chdir_to_root()
    params = load_params("params.yaml")
    section = dict(params["pretrain"]["M"])
    if args.steps:
        section["train"] = {**section["train"], "steps": args.steps}
    set_threads(section["train"].get("threads", 1))
    small = params["mapping"]["lmm"]["lmM_model"]
    lmV = LanguageModel.load(lm_data.lm_dir("V"))
    truth = list(EvaluationData().motion("T").values())
    scores = lm_data.read_scores("U_V")
    variants = {"lmV trunk (default)": {"init": "lmV"},
                "scratch, LM^V size": {"init": "scratch",
                                       "model": {k: v for k, v in lmV.model.cfg.to_dict().items() if k != "vocab_size"}},
                "scratch, in-run LM^M size": {"init": "scratch", "model": small}}
    rows = {}
    for name, over in variants.items():
        cfg = MotionLMConfig.from_params({**section, **over})
        data = motion_lm_data(scores, cfg, test_motion=truth)
        t0 = time.perf_counter()
        lm = train_motion_lm(data, cfg, lmV, default_model=small, progress=False)
        res = evaluate_lm(lm, data.train, data.test)
        h = lm.info["history"]
        rows[name] = {"bits_per_token_T": res["lm"], "bigram_T": res["bigram"], "unigram_T": res["unigram"],
                      "bits_per_note_T": bits_per_note(res["lm"], res["n_tokens"], truth),
                      "val_bits": h["val_loss"][-1] / 0.6931471805599453 if h.get("val_loss") else None,
                      "n_params": lm.info["n_params"], "seconds": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[name].items()}))
    oracle = Path("data/oracle_lmM/bits.json")
    out = {"variants": rows, "steps": section["train"]["steps"], "renditions": section["renditions"],
           "oracle": json.loads(oracle.read_text()) if oracle.is_file() else None}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
