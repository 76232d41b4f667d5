"""Model selection without labels (LMM issue, item 2): can h be picked among a method's seeds by what unpaired audio
says -- how well h's transcriptions, played through S, explain their recordings (recon), and how probable LM^M finds
them (lmM) -- instead of by luck? A thin CLI over methods.selection (the criteria: U_A audio only) and
evaluation.selection (judging them against each run's h note F1 on T, every subset of --pick_from seeds).

Runs: the project's sweep (its params' Ks and seeds for each of --methods) plus any finished run of the same methods in
--extra_runs (more seeds, made with grid.run_grid(runs_dir=...)). One fixed sample of U_A recordings (--n, drawn with
--seed) serves every run. T is read only through each run's metrics.json, to judge; no true motion is read.

    .venv/bin/python benchmarks/model_selection.py --project /work/paper --methods lmm lmm-no_lmM synth_pairs \
        supervised --extra_runs /tmp/extra_runs --out benchmarks/results/model_selection.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmm_utils.core.features import FeatureConfig  # noqa: E402
from lmm_utils.core.params import load_params  # noqa: E402
from lmm_utils.core.paths import method_Ks, run_name  # noqa: E402
from lmm_utils.data.pools import TrainingData  # noqa: E402
from lmm_utils.evaluation.selection import selection_groups, selection_lines, selection_summary  # noqa: E402
from lmm_utils.lm.model import LanguageModel  # noqa: E402
from lmm_utils.mapping.run import load_frozen_synth  # noqa: E402
from lmm_utils.methods.checkpoints import load_h  # noqa: E402
from lmm_utils.methods.cycle import unpaired_logmels  # noqa: E402
from lmm_utils.methods.selection import unsupervised_criteria  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True, help="a project with finished runs (data/runs/<method>/)")
    ap.add_argument("--methods", nargs="+", default=["lmm"])
    ap.add_argument("--extra_runs", type=Path, nargs="*", default=[], help="more runs folders (<dir>/<method>/<run>)")
    ap.add_argument("--pick_from", type=int, default=3, help="seeds a selection chooses among")
    ap.add_argument("--n", type=int, default=64, help="U_A recordings in the sample")
    ap.add_argument("--seed", type=int, default=12345, help="the sample's draw (shared by every run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = args.project.resolve()
    params = load_params(root / "params.yaml")
    feat = FeatureConfig.from_params(params.get("features"))
    synth = load_frozen_synth(root / params["mapping"].get("synth", "data/synth/S.pt"))
    lmM = LanguageModel.load_frozen(root / params["mapping"]["lm"]["M"], "cpu")
    sample = unpaired_logmels(TrainingData(root), feat, args.n, args.seed)
    rows, t0 = [], time.perf_counter()
    mp = params["mapping"]
    sweep = {(m, k, s) for m in args.methods for k in method_Ks(mp, m) for s in mp["seeds"]}
    run_dirs = [root / "data/runs" / m / run_name(m, k, s) for m, k, s in sorted(sweep)]
    for extra in args.extra_runs:
        run_dirs += [d for m in args.methods for d in sorted((extra / m).glob(f"{m}-K*-s*"))]
    for run_dir in run_dirs:
        method = run_dir.parent.name
        metrics_path, h_path = run_dir / "metrics.json", run_dir / "h.pt"
        if not (metrics_path.is_file() and h_path.is_file()):
            continue
        m = json.loads(metrics_path.read_text())
        h = load_h(h_path, lm_root=root)
        crit = unsupervised_criteria(h, sample, synth, lmM, feat)
        rows.append({"run": run_dir.name, "method": method, "K": int(m["K"]), "seed": int(m["seed"]),
                     "f1": float(m["h"]["T"]["all"]["note_f1"]), **crit})
        print(f"{run_dir.name}: F1 {rows[-1]['f1']:.3f}  recon {crit['recon']:.4f}  lmM {crit['lmM']:.3f}  "
              f"empty {crit['empty_fraction']:.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    groups = selection_groups(rows, args.pick_from)
    summary = selection_summary(groups, rows)
    result = {"project": str(root), "methods": args.methods, "extra_runs": [str(e) for e in args.extra_runs],
              "pick_from": args.pick_from, "n_ua": len(sample), "sample_seed": args.seed,
              "ua_ids": [i for i, _ in sample], "summary": summary, "groups": groups, "runs": rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    print("\n".join(selection_lines(summary)))
    print(json.dumps(summary["spearman_K0"]), json.dumps(summary["spearman_all"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
