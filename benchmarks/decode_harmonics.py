"""Decoding with harmonic suppression: does dropping an onset that sits an octave, a twelfth or two octaves above a
much stronger onset pay? 82-89 % of h's false positives on T are such harmonics (benchmarks/octave_errors.py), so
this is the cheapest lever on them: no retraining, a rule on h's onset posterior. Decided on P's recordings outside
each run's draw (the validation part of P: never T, never the run's own pairs); T, T_timbre and T_noisy are reported
beside it, after the decision, from the same posteriors.

    .venv/bin/python benchmarks/decode_harmonics.py --project <a project after dvc repro> \\
        --runs data/runs/supervised/supervised-K16-s0 data/runs/lmm/lmm-K0-s0 --out benchmarks/results/decode_harmonics.json

The rule (`lmm_utils.models.harmonics.suppress_harmonics`, ratio r): an onset probability o[k, t] is set to 0 when some key k - 12, k - 19 or
k - 24 has an onset probability above o[k, t] / r within one frame of t. r = 0 is the decoding before; r = 0.5
drops an upper onset less than half as strong as its fundamental; r = 1, one weaker than it. A true octave
doubling played together (the keyboard register textures) has two strong onsets, which a small r keeps.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALIDATION = "P (outside the draw)"
REPORTED = ("T", "T_timbre", "T_noisy")
def main() -> None:
    import torch

    from benchmarks.decode_key_down import gain_summary, score_rows
    from lmm_utils.data.evaluation import EvaluationData
    from lmm_utils.evaluation.metrics import transcription_scores
    from lmm_utils.methods.checkpoints import load_h
    from lmm_utils.methods.wrappers import fast_decode
    from lmm_utils.models.harmonics import suppress_harmonics
    from lmm_utils.models.transcriber import DecodeConfig

    OFF = DecodeConfig(harmonic_ratio=0.0)  # the ratio is applied above, one way per r

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True)
    ap.add_argument("--runs", nargs="+", required=True, help="run folders (relative to --project or absolute)")
    ap.add_argument("--max-items", type=int, default=128, help="T excerpts reported (the runs' fixed subset)")
    ap.add_argument("--n-val", type=int, default=64, help="P excerpts outside the draw (the validation part)")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                    help="suppression ratios (0 = off, the decoding before)")
    ap.add_argument("--validation-only", action="store_true", help="decide first: P outside the draw only")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.project).resolve()
    ev = EvaluationData(root)
    t_ids = ev.eval_ids(args.max_items)
    truth = {"P": ev.motion("P"), "T": ev.motion("T")}
    rows = []
    for run in args.runs:
        run_dir = Path(run) if Path(run).is_absolute() else root / run
        h = load_h(run_dir / "h.pt", lm_root=root)
        drawn = set(json.loads((run_dir / "draw.json").read_text())["pairs"])
        p_ids = [i for i in ev.audio_ids("P") if i not in drawn and i in truth["P"]][:args.n_val]
        pools = [(VALIDATION, "P", p_ids)] + ([] if args.validation_only else [(pool, pool, t_ids) for pool in REPORTED])
        for label, pool, ids in pools:
            true = truth["P" if pool == "P" else "T"]
            scores = {r: [] for r in args.ratios}
            for i in ids:
                logits = h.logits(ev.logmel(pool, i, h.feat))
                onset = torch.sigmoid(logits["onset"]).numpy()
                for r in args.ratios:  # the same posterior decoded each way
                    kept = np.clip(suppress_harmonics(onset, r), 1e-7, 1 - 1e-7)
                    perf = fast_decode({**logits, "onset": torch.logit(torch.from_numpy(kept))}, h.feat.fps, OFF)
                    scores[r].append({**transcription_scores(true[i], perf), "n_notes": len(perf.notes)})
            rows += score_rows(run_dir.name, label, "ratio", scores)
    gains = gain_summary(rows, "ratio", list(args.ratios))
    if args.out:
        Path(args.out).write_text(json.dumps({"project": str(root), "decided_on": VALIDATION, "rows": rows,
                                              "gain_note_f1": gains}, indent=1) + "\n")


if __name__ == "__main__":
    main()
