"""The step budget, chosen on a validation part of P, never on T: supervised h trained from K pairs for a given
budget, scored on P excerpts outside its draw (their true motion is read through EvaluationData, the evaluation
door: a diagnostic, never a training signal). Figures only, nothing asserted.

    .venv/bin/python benchmarks/calibrate_steps.py --project <a project after dvc repro> \
        --budgets 150:4:64 300:4:64 --Ks 4 16 --seeds 0 1 2 --out /tmp/calib.jsonl

A budget is steps:batch:crop_frames; `--transcriber key=value` overrides mapping.transcriber (e.g. dynamic_range=9.21);
`--set a.b=value` overrides any mapping key (YAML value: `--set lmm.lmA=false lmm.max_unpaired=64`).
`--eval_project` scores on another project's P (same split, other recordings: e.g. one rendered without timbre
variety), so two training setups are compared on the same validation audio.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.core.params import load_params
    from lmm_utils.data.evaluation import EvaluationData
    from lmm_utils.evaluation.metrics import transcription_scores
    from lmm_utils.mapping import run as runner

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".")
    ap.add_argument("--method", default="supervised")
    ap.add_argument("--budgets", nargs="+", default=["300:4:64"])
    ap.add_argument("--Ks", nargs="+", type=int, default=[4, 16])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--n_val", type=int, default=64, help="P excerpts outside the draw scored")
    ap.add_argument("--transcriber", nargs="*", default=[], help="key=value overrides of mapping.transcriber")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides", help="a.b=value overrides of the mapping section")
    ap.add_argument("--eval_project", default=None, help="score on this project's P (default: --project's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(args.project).resolve()
    params = load_params(root / "params.yaml")
    feat = FeatureConfig.from_params(params["features"])
    ev = EvaluationData(Path(args.eval_project).resolve() if args.eval_project else root)
    truth_p = ev.motion("P")
    for budget in args.budgets:
        steps, batch, crop = (int(v) for v in budget.split(":"))
        for K in args.Ks:
            for seed in args.seeds:
                mp = copy.deepcopy(params["mapping"])
                mp["method"].update(steps=steps, batch_size=batch, crop_frames=crop)
                mp["transcriber"] = {**mp.get("transcriber", {}),
                                     **{k: float(v) for k, v in (kv.split("=") for kv in args.transcriber)}}
                for kv in args.overrides:
                    key, value = kv.split("=", 1)
                    *path, last = key.split(".")
                    node = mp
                    for part in path:
                        node = node[part]
                    if last not in node:
                        raise SystemExit(f"--set {kv}: mapping.{key} is not a key of params.yaml")
                    node[last] = yaml.safe_load(value)
                t0 = time.perf_counter()
                res = runner.train_run(args.method, K, seed, mp, params["features"], root=root)
                drawn = set(res["draw"])
                val = [i for i in sorted(truth_p) if i not in drawn][:args.n_val]
                f1 = [transcription_scores(truth_p[i], res["h"].transcribe(ev.logmel("P", i, feat)))["note_f1"]
                      for i in val]
                row = {"method": args.method, "budget": budget, "K": K, "seed": seed, "val_P_note_f1": float(np.mean(f1)),
                       "n_val": len(val), "train_s": round(time.perf_counter() - t0, 1), "transcriber": mp["transcriber"], "set": args.overrides,
                       "eval_project": args.eval_project}
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
