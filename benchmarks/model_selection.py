"""Model selection without labels (LMM issue, item 2): can h be picked among a method's seeds by what unpaired audio
says -- how well h's transcriptions, played through S, explain their recordings (recon), and how probable LM^M finds
them (lmM) -- instead of by luck?

For every finished run of the given methods in a project (its h.pt), h transcribes one fixed sample of U_A recordings
(the same for every run, drawn with --seed through TrainingData, as lmm reads U_A); each run gets
    recon   - mean over the sample of losses.recon_loss(S(h(a)), a)   (an empty transcription: the loss of silence)
    lmM     mean over the sample of LM^M's mean log-prob per token (nats) of h(a) (empty: the sample's worst)
    both    the sum of the two criteria's ranks inside the run's (method, K) group
Then, per (method, K) group of seeds, the seed each criterion picks is compared with a random seed (the group's mean)
and the best seed, on h note F1 on T as the run's metrics.json records it. T is read only there -- to judge the
criteria, never to choose anything -- and no true motion of any pool is read.

    .venv/bin/python benchmarks/model_selection.py --project /work/paper --methods lmm lmm-no_lmM \\
        --out benchmarks/results/model_selection.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmm_utils.core.features import FeatureConfig  # noqa: E402
from lmm_utils.core.motion import Performance  # noqa: E402
from lmm_utils.core.params import load_params  # noqa: E402
from lmm_utils.core.paths import method_Ks, run_name  # noqa: E402
from lmm_utils.data.pools import TrainingData  # noqa: E402
from lmm_utils.lm.model import LanguageModel  # noqa: E402
from lmm_utils.mapping.run import load_frozen_synth  # noqa: E402
from lmm_utils.methods.alignment import render_logmel  # noqa: E402
from lmm_utils.methods.checkpoints import load_h  # noqa: E402
from lmm_utils.methods.cycle import unpaired_logmels  # noqa: E402
from lmm_utils.methods.lmm_labels import lm_score  # noqa: E402
from lmm_utils.methods.losses import recon_loss  # noqa: E402

CRITERIA = ("recon", "lmM", "both")


def run_criteria(h, sample: list[tuple[str, np.ndarray]], synth, lmM: LanguageModel, feat: FeatureConfig,
                 scales=(1, 4, 16)) -> dict:
    """recon (higher = better: minus the mean loss) and lmM (mean nats/token) of h's transcriptions of `sample`."""
    losses, lps, empty = [], [], 0
    for _, x in sample:
        perf = h.transcribe(x)
        empty += not perf.notes
        pred = render_logmel(perf if perf.notes else Performance(notes=[]), synth, feat.fps, x.shape[1])
        losses.append(float(recon_loss(torch.from_numpy(pred)[None], torch.from_numpy(np.asarray(x, np.float32))[None],
                                       scales=scales)))
        lps.append(lm_score(lmM, lmM.tokenizer, perf))
    finite = [v for v in lps if np.isfinite(v)]
    floor = min(finite) if finite else -50.0
    return {"recon": -float(np.mean(losses)), "lmM": float(np.mean([v if np.isfinite(v) else floor for v in lps])),
            "empty_fraction": empty / max(1, len(sample))}


def group_picks(rows: list[dict], pick_from: int = 3) -> list[dict]:
    """Per (method, K) group of >= 2 seeds, averaged over every subset of `pick_from` seeds (the whole group when it
    has fewer): the F1 of the seed each criterion picks, of a random pick (the subset's mean), the best, the worst."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["K"]), []).append(r)
    out = []
    for (method, K), rs in sorted(groups.items()):
        if len(rs) < 2:
            continue
        subsets = list(itertools.combinations(range(len(rs)), min(pick_from, len(rs))))
        acc: dict[str, list[float]] = {k: [] for k in ("mean", "best", "worst", *(f"pick_{c}" for c in CRITERIA))}
        for sub in subsets:
            sel = [rs[i] for i in sub]
            rank = {c: stats.rankdata([r[c] for r in sel]) for c in ("recon", "lmM")}
            both = [float(rank["recon"][i] + rank["lmM"][i]) for i in range(len(sel))]
            f1 = [r["f1"] for r in sel]
            acc["mean"].append(float(np.mean(f1)))
            acc["best"].append(max(f1))
            acc["worst"].append(min(f1))
            for c in CRITERIA:
                vals = both if c == "both" else [r[c] for r in sel]
                acc[f"pick_{c}"].append(f1[int(np.argmax(vals))])
        out.append({"method": method, "K": K, "seeds": [r["seed"] for r in rs], "f1": [r["f1"] for r in rs],
                    "subsets": len(subsets), **{k: float(np.mean(v)) for k, v in acc.items()}})
    return out


def summarize(picks: list[dict], rows: list[dict]) -> dict:
    def agg(sel: list[dict]) -> dict:
        if not sel:
            return {}
        d = {"groups": len(sel), "random (mean seed)": float(np.mean([g["mean"] for g in sel])),
             "best seed": float(np.mean([g["best"] for g in sel])), "worst seed": float(np.mean([g["worst"] for g in sel]))}
        for c in CRITERIA:
            d[f"picked by {c}"] = float(np.mean([g[f"pick_{c}"] for g in sel]))
            d[f"gain of {c} over random"] = d[f"picked by {c}"] - d["random (mean seed)"]
        return d

    def spearman(sel: list[dict]) -> dict:
        if len(sel) < 4:
            return {}
        return {c: float(stats.spearmanr([r[c] for r in sel], [r["f1"] for r in sel]).statistic) for c in ("recon", "lmM")}

    return {"all groups": agg(picks), "K = 0": agg([g for g in picks if g["K"] == 0]),
            "K >= 1": agg([g for g in picks if g["K"] >= 1]),
            "spearman over runs, K = 0": spearman([r for r in rows if r["K"] == 0]),
            "spearman over runs, all K": spearman(rows)}


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
        crit = run_criteria(h, sample, synth, lmM, feat)
        rows.append({"run": run_dir.name, "method": method, "K": int(m["K"]), "seed": int(m["seed"]),
                     "f1": float(m["h"]["T"]["all"]["note_f1"]), **crit})
        print(f"{run_dir.name}: F1 {rows[-1]['f1']:.3f}  recon {crit['recon']:.4f}  lmM {crit['lmM']:.3f}  "
              f"empty {crit['empty_fraction']:.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    picks = group_picks(rows, args.pick_from)
    result = {"project": str(root), "methods": args.methods, "extra_runs": [str(e) for e in args.extra_runs],
              "pick_from": args.pick_from, "n_ua": len(sample), "sample_seed": args.seed,
              "ua_ids": [i for i, _ in sample], "summary": summarize(picks, rows), "groups": picks, "runs": rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result["summary"], indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
