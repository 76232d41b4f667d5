"""LM^V / LM^A pretraining as a script, for scale-out runs outside the notebook (the DVC stage runs
notebooks/06_pretrain.ipynb, which calls the same functions):

    python -m lmm_utils.lm.pretrain --modality V                                   # one process
    torchrun --standalone --nproc_per_node 4 -m lmm_utils.lm.pretrain --modality A   # 4 GPUs / processes

Every process builds the same token sequences (seeded), trains its slice of each global batch
(lmm_utils/training/loop.py + distributed.py), and rank 0 saves data/lm/<modality> and prints the held-out
bits per token on T. Parameters come from params.yaml (sections pretrain, features).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lmm_utils.core.params import load_params, section
from lmm_utils.core.paths import chdir_to_root
from lmm_utils.lm import data as lm_data
from lmm_utils.lm.model import evaluate_lm, train_lm
from lmm_utils.training.distributed import cleanup, is_main_process
from lmm_utils.training.loop import set_threads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lmm_utils.lm.pretrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modality", choices=("V", "A"), required=True)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", help="checkpoint folder (default data/lm/<modality>)")
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation on T")
    args = ap.parse_args(argv)

    params_path = Path(args.params).resolve()
    chdir_to_root()
    params = load_params(params_path)
    pretrain, features = section(params, "pretrain"), section(params, "features")
    # under CPU torchrun the processes share the cores: each gets its part of the stage's threads
    set_threads(max(1, int(pretrain["train"].get("threads", 1)) // int(os.environ.get("WORLD_SIZE", "1"))))
    main_proc = is_main_process()
    data = lm_data.pretrain_data(args.modality, pretrain, features, progress=main_proc)
    out = Path(args.out) if args.out else lm_data.lm_dir(args.modality)
    lm = train_lm(data.train, data.tokenizer, pretrain["model"], pretrain["train"], val_sequences=data.val,
                  out_dir=out, info={"train_pool": lm_data.TRAIN_POOL[args.modality], "params": pretrain},
                  progress=main_proc)
    if main_proc:
        h = lm.info["history"]
        report = {"modality": args.modality, "out": str(out), "steps": h["config"]["steps"],
                  "seconds": round(h["seconds"], 1), "tokens_per_s": round(h["tokens_per_s"]),
                  "world_size": h["world_size"], "device": h["device"], "precision": h["precision"],
                  "n_params": lm.info["n_params"], "final_train_loss": h["train_loss"][-1]}
        if not args.no_eval:
            report["test"] = evaluate_lm(lm, data.train, data.test, progress=False)
        print(json.dumps(report, indent=1))
    cleanup()


if __name__ == "__main__":
    main()
