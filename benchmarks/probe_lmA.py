"""Does LM^A hear pitch? Its bits per token on T against its own bigram, and a linear pitch probe (lmm_utils/lm/probe.py)
of its tokens and hidden states, beside the log-mel (and the harmonic features) as references.

    .venv/bin/python benchmarks/probe_lmA.py --lm logmel=data/lm/A [--lm harmonic=/tmp/lmA_h] \\
        [--out reports/metrics/lmA_probe.json] [--cache /tmp/probe_cache]
    .venv/bin/python benchmarks/probe_lmA.py --add --lm harmonic=/tmp/lmA_h   # one more row in the same table

The probe trains on P's recordings with P's pseudo-motion (the DTW alignment every method gets from its pairs,
methods.base.pseudo_motion, through S) and is scored on T's true motion through EvaluationData -- no true motion
is ever trained on. The bigram is fitted on every U_A recording's tokens (the pretraining stage fits it on U_A
less its validation part, so its bits can differ from reports/metrics/pretrain_A.json in the third digit).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def cached_mels(cache: Path | None, name: str, load) -> list[np.ndarray]:
    """A pool's log-mels, from cache/<name>.npz when there (computing ~850 log-mels is most of a run's time)."""
    path = cache / f"{name}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return [z[f"m{i}"] for i in range(len(z.files))]
    mels = load()
    if path is not None:
        np.savez(path, **{f"m{i}": m for i, m in enumerate(mels)})
    return mels


def pair_rolls(feat, params: dict, cache: Path | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """P's log-mels and the key-down rolls of their pseudo-motion (cached: the alignment is the slow part)."""
    from lmm_utils.core.motion import Performance, to_roll
    from lmm_utils.data.pools import TrainingData
    from lmm_utils.mapping.run import DeviceSynth, load_frozen_synth
    from lmm_utils.methods.base import align_config, load_pairs, pseudo_motion

    stored = cache / "P_pseudo.json" if cache is not None else None
    if stored is not None and stored.is_file():  # written in load_pairs' order, as P.npz
        pseudo = [Performance.from_dict(p) for p in json.loads(stored.read_text()).values()]
        mels = cached_mels(cache, "P", lambda: [m for _, m in load_pairs(TrainingData(), feat)])
    else:
        pairs = load_pairs(TrainingData(), feat)
        synth = DeviceSynth(load_frozen_synth(params["mapping"].get("synth", "data/synth/S.pt")))
        pseudo = pseudo_motion(pairs, synth, align_config(params["mapping"]), feat)
        mels = cached_mels(cache, "P", lambda: [m for _, m in pairs])
        if stored is not None:
            stored.write_text(json.dumps({s.id: p.to_dict() for (s, _), p in zip(pairs, pseudo)}))
    return mels, [to_roll(p, feat.fps, m.shape[1])["frame"] for p, m in zip(pseudo, mels)]


def truth_rolls(feat, cache: Path | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """T's log-mels and true key-down rolls: evaluation only, through the evaluation door."""
    from lmm_utils.core.motion import to_roll
    from lmm_utils.data.evaluation import EvaluationData

    ev = EvaluationData()
    truth = ev.motion("T")
    ids = [i for i in ev.audio_ids("T") if i in truth]
    mels = cached_mels(cache, "T", lambda: list(ev.logmels("T", feat, ids=ids).values()))
    return mels, [to_roll(truth[i], feat.fps, m.shape[1])["frame"] for i, m in zip(ids, mels)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm", action="append", default=[], help="name=folder of an LM^A checkpoint (repeatable)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="reports/metrics/lmA_probe.json")
    ap.add_argument("--cache", help="folder for P's pseudo-motion and the pools' log-mels (written once, then read)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--add", action="store_true",
                    help="add these LMs' rows to --out's table (same data and probe), skipping the references")
    args = ap.parse_args()

    from lmm_utils.core.features import FeatureConfig
    from lmm_utils.core.params import load_params
    from lmm_utils.lm.data import read_audio_logmels
    from lmm_utils.lm.model import evaluate_lm
    from lmm_utils.lm.probe import ProbeConfig, code_frames, lm_frames, logmel_frames, probe_f1
    from lmm_utils.methods.lm_features import load_lm_features
    from lmm_utils.tokens.pitch import pitch_features

    torch.set_num_threads(args.threads)
    t0 = time.time()
    params = load_params(args.params)
    feat = FeatureConfig.from_params(params.get("features") or {})
    cfg = ProbeConfig()
    cache = Path(args.cache) if args.cache else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    train_mels, train_rolls = pair_rolls(feat, params, cache)
    test_mels, test_rolls = truth_rolls(feat, cache)
    u_a = cached_mels(cache, "U_A", lambda: list(read_audio_logmels("U_A", feat, progress=False).values()))
    print(f"data: P {len(train_mels)}, T {len(test_mels)}, U_A {len(u_a)} ({time.time() - t0:.0f} s)", flush=True)

    def probe(extract) -> float:
        return round(probe_f1(extract, train_mels, train_rolls, test_mels, test_rolls, cfg)["frame_f1"], 4)

    names = {spec.split("=", 1)[0] for spec in args.lm}
    kept: dict = {}  # --add keeps the file's notes (reading, commands) beside its rows
    if args.add:
        before = json.loads(Path(args.out).read_text())
        rows = [r for r in before["rows"] if r["tokenizer"] not in names]
        kept = {k: v for k, v in before.items() if k not in ("what", "probe", "n_excerpts", "rows")}
    else:
        rows = [{"tokenizer": "(log-mel frames, no LM)", "probe_features_f1": probe(logmel_frames)},
                {"tokenizer": "(harmonic features, no LM)", "probe_features_f1": probe(
                    lambda m: pitch_features(torch.from_numpy(m), feat.fmin, feat.fmax).numpy())}]
        print(json.dumps(rows), flush=True)
    for spec in args.lm:
        name, folder = spec.split("=", 1)
        lmf = load_lm_features("A", folder)
        tok = lmf.lm.tokenizer
        test_ids = [tok.encode(m) for m in test_mels]
        bits = evaluate_lm(lmf.lm, [tok.encode(m) for m in u_a], test_ids, progress=False)
        seconds = sum(m.shape[1] for m in test_mels) / feat.fps
        tps = sum(len(ids) - 2 for ids in test_ids) / seconds  # measured: a dedup tokenizer's rate depends on the music
        rows.append({"tokenizer": name, "folder": folder, "tokenizer_config": tok.config(),
                     "lm_bits": round(bits["lm"], 4), "bigram_bits": round(bits["bigram"], 4),
                     "gap_bits": round(bits["bigram"] - bits["lm"], 4),
                     "probe_codes_f1": probe(code_frames(tok)), "probe_lm_f1": probe(lm_frames(lmf)),
                     "tokens_per_second": round(tps, 2), "gap_bits_per_second": round((bits["bigram"] - bits["lm"]) * tps, 2)})
        print(json.dumps(rows[-1]), flush=True)

    out = {"what": "LM^A bits/token on T vs a bigram on the same tokens (fitted on U_A), and a linear probe "
                   "(lmm_utils/lm/probe.py) from frame features to the 88-key frame roll: trained on P with P's "
                   "pseudo-motion, frame F1 on T's true motion (pooled cells)",
           "probe": {**cfg.__dict__, "thresholds": list(cfg.thresholds)},
           "n_excerpts": {"P": len(train_mels), "T": len(test_mels), "U_A": len(u_a)},
           "rows": rows, **kept}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| tokenizer | LM bits/token on T | bigram bits | gap | probe F1 (codes) | probe F1 (LM^A hidden) "
          "| probe F1 (features) |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "–")) for k in ("tokenizer", "lm_bits", "bigram_bits", "gap_bits",
                                                            "probe_codes_f1", "probe_lm_f1", "probe_features_f1")) + " |")


if __name__ == "__main__":
    main()
