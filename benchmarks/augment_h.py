"""Does re-recording h's training crops (mapping.augment), or a larger h (mapping.transcriber), help h on T_noisy and
T_timbre, and what does it cost on T?

Runs one method at one K over seeds for each named setting (mapping.augment and mapping.transcriber overrides), in
a project that has run the default pipeline up to `synth` (data/, S, the LMs), and writes h note F1 (and T_noisy precision / recall) per run and the
mean over seeds to a JSON file. The runs go to a scratch folder, never into the project's data/runs.

    python benchmarks/augment_h.py --root . --K 16 --out /tmp/augment_K16.json \
        --setting off='{}' --setting aug_0.5='{"augment": {"p": 0.5}}' \
        --setting wide_aug_0.5='{"augment": {"p": 0.5}, "transcriber": {"contour_channels": 32, "note_channels": 32,
                                 "onset_channels": 16}}'

A setting's JSON may hold any mapping section, e.g. "augment", "transcriber", "lm", "eval" (each replaces that
section); g's numbers on T are reported beside h's. {} is the project's
own params; with p = 0 a run is the run as it was before mapping.augment existed (p = 0 draws nothing).

It scores the T pools, as the issue on h's robustness asks for the choice of h's size; a choice that should not look
at T (an augmentation range, a threshold) belongs on a validation part of P instead (benchmarks/calibrate_steps.py).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from lmm_utils.core.params import load_params
from lmm_utils.mapping import run as runner

POOLS = ("T", "T_timbre", "T_noisy")
G_KEYS = ("velocity_r", "log_ioi_r", "articulation_r", "velocity_mae")


def scores(metrics: dict) -> dict[str, float]:
    h = metrics["h"]
    out = {pool: h[pool]["all"]["note_f1"] for pool in POOLS if pool in h}
    out["T_chorales"] = h["T"]["chorales"]["note_f1"]
    if "T_noisy" in h:  # a project rendered without perform.noisy has no T_noisy
        out["T_noisy_p"], out["T_noisy_r"] = h["T_noisy"]["all"]["note_p"], h["T_noisy"]["all"]["note_r"]
    for key in G_KEYS:  # g's expressive timing and dynamics on T (a setting may change g: mapping.lm, lmm's prior)
        out[f"g_{key}"] = metrics["g"]["T"]["all"][key]
    selection = (metrics.get("diagnostic") or {}).get("lmM_selection") or {}  # lmm's label cleaning, against truth
    out.update({f"labels_{k}": v for k, v in selection.items() if k.startswith("spearman") or k.endswith("note_f1")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", default="supervised")
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1, help="per run (one run at a time)")
    ap.add_argument("--setting", action="append", required=True,
                    help='name=JSON, e.g. wide=\'{"augment": {"p": 0.5}, "transcriber": {"note_channels": 32}}\'')
    args = ap.parse_args()
    params = load_params(Path(args.root) / "params.yaml")
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict = {"what": f"{args.method} h at K = {args.K}, seeds {seeds}, the project's mapping params but "
                            "each setting's sections; h note F1 on the project's evaluated T subset (mapping.eval.max_items)",
                    "command": f"python benchmarks/augment_h.py --method {args.method} --K {args.K} --seeds {args.seeds} "
                               f"--threads {args.threads} " + " ".join(f"--setting {s}" for s in args.setting),
                    "runs": {}, "mean": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for setting in args.setting:
            name, spec = setting.split("=", 1)
            mp = dict(params["mapping"], **json.loads(spec))
            mp["method"] = dict(mp["method"], threads=args.threads)
            rows = {}
            for seed in seeds:
                m = runner.run(args.method, args.K, seed, mp, params["features"], root=args.root,
                               runs_dir=Path(scratch) / name / "runs", metrics_dir=Path(scratch) / name / "metrics")
                rows[f"{args.method}-K{args.K}-s{seed}"] = scores(m)
                print(name, seed, {k: round(v, 3) for k, v in rows[f"{args.method}-K{args.K}-s{seed}"].items()},
                      flush=True)
            result["runs"][name] = {"overrides": json.loads(spec), "runs": rows}
            result["mean"][name] = {k: round(float(np.mean([r[k] for r in rows.values()])), 4)
                                    for k in next(iter(rows.values()))}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["mean"], indent=1))


if __name__ == "__main__":
    main()
