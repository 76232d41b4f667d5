"""The language models in the evaluate stage: each run's LM^M on T's true motion (next to the labelled oracle
of stage references), and whether LM^V and LM^A represent T's scores and recordings alike.

    lmM = lm_m_bits(runs, truth)                       # bits per token / per note of every run's LM^M
    rows = lm_m_table(lmM, read_oracle(), conf, kind)
    align, mats = lm_alignment(EvaluationData(), feat, section["knn"])
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import read_json
from lmm_utils.data.corpus import family
from lmm_utils.data.evaluation import EvaluationData, Truth
from lmm_utils.evaluation import curves
from lmm_utils.evaluation.scoring import Run
from lmm_utils.lm.model import LanguageModel

ORACLE_BITS = Path("data/oracle_lmM/bits.json")  # written by lmm_utils.lm.oracle (stage references)
MAPPED_BITS = Path("data/lm/M/bits.json")  # LM^M mapped from LM^V (stage pretrain_M)
LM_DIRS = {"V": Path("data/lm/V"), "A": Path("data/lm/A")}


# --- LM^M -------------------------------------------------------------------------------------------------

def find_lm_m(run_dir: Path) -> Path | None:
    """A LanguageModel folder (lm.pt + info.json) over motion tokens saved anywhere inside a run."""
    for ck in sorted(Path(run_dir).rglob("lm.pt")):
        info = ck.parent / "info.json"
        try:
            modality = json.loads(info.read_text()).get("tokenizer", {}).get("modality") if info.is_file() else None
        except json.JSONDecodeError:
            modality = None
        if modality == "M":
            return ck.parent
    return None


def lm_m_bits(runs: list[Run], truth: Truth, progress: bool = True) -> dict:
    """Bits per token of each run's LM^M on T's true motion (each LM with its own tokenizer)."""
    from lmm_utils.lm.model import LanguageModel  # deferred: torch and the model code, only when a run has one

    found = [(r, find_lm_m(r.path)) for r in runs]
    found = [(r, d) for r, d in found if d is not None]
    if not found:
        return {"note": "no run saved an LM^M (a LanguageModel folder over motion tokens inside data/runs/<run>/)"}
    out = {}
    for r, d in tqdm(found, desc="LM^M bits", disable=not progress, mininterval=2.0):
        lm = LanguageModel.load(d)
        res = lm.bits_per_token([lm.tokenizer.encode(truth.perf[i]) for i in truth.ids])
        n_notes = sum(len(truth.perf[i].notes) for i in truth.ids)
        out[r.name] = {"method": r.method, "K": r.K, "seed": r.seed, "path": str(d), **res,
                       "bits_per_note": res["bits_per_token"] * res["n_tokens"] / max(n_notes, 1),
                       "tokens": lm.tokenizer.config()}
    return {"runs": out}


def read_oracle(path: str | Path = ORACLE_BITS) -> dict:
    path = Path(path)
    return read_json(path) if path.is_file() else {"note": "oracle not trained (stage references)"}


def read_mapped(path: str | Path = MAPPED_BITS) -> dict:
    """Bits of the LM^M mapped from LM^V on T's true motion, as its stage measured them ({} before it ran)."""
    path = Path(path)
    return read_json(path) if path.is_file() else {}


def lm_m_table(lmM: dict, oracle: dict, confidence: float = 0.95, kind: str = "t",
               mapped: dict | None = None) -> list[dict]:
    """One row per (method, K) -- bits per token over seeds, bits per note -- then the LM^M mapped from LM^V with
    the bigram fitted on the same generic motion, then the ORACLE and its bigram."""
    rows = []
    if mapped and "lm" in mapped:
        rows.append({"LM^M": "mapped from LM^V (U_V x generic performer)", "K": "-", "seeds": 1,
                     "bits/token": mapped["lm"], "std": 0.0, "bits/note": mapped.get("bits_per_note", float("nan"))})
        rows.append({"LM^M": "bigram on the same generic motion", "K": "-", "seeds": 1,
                     "bits/token": mapped["bigram"], "std": 0.0, "bits/note": float("nan")})
    groups: dict[tuple[str, int], list[dict]] = {}
    for v in (lmM.get("runs") or {}).values():
        groups.setdefault((v["method"], v["K"]), []).append(v)
    for (m, k), vs in sorted(groups.items()):
        b = curves.band([v["bits_per_token"] for v in vs], confidence, kind)
        rows.append({"LM^M": m, "K": k, "seeds": len(vs), "bits/token": b["mean"], "std": b["std"],
                     "bits/note": sum(v["bits_per_note"] for v in vs) / len(vs)})
    if "lm" in oracle:
        rows.append({"LM^M": "ORACLE (U_A true motion; diagnostic)", "K": "-", "seeds": 1, "bits/token": oracle["lm"],
                     "std": 0.0, "bits/note": oracle["bits_per_note"]})
        rows.append({"LM^M": "bigram on U_A true motion (diagnostic)", "K": "-", "seeds": 1,
                     "bits/token": oracle["bigram"], "std": 0.0, "bits/note": float("nan")})
    return rows


def lm_m_metrics(lmM: dict, oracle: dict, mapped: dict | None = None) -> dict:
    """evaluate.json's lmM block: the runs' bits, the LM^M mapped from LM^V and the labelled oracle upper bound."""
    keep = ("label", "lm", "bigram", "bits_per_note", "note")
    out = {**lmM, "oracle_upper_bound": {k: oracle.get(k) for k in keep if k in oracle}}
    if mapped:
        out["mapped_from_lmV"] = {k: mapped.get(k) for k in keep if k in mapped}
    return out


# --- LM^V vs LM^A on T's pairs ----------------------------------------------------------------------------

def lm_alignment(data: EvaluationData, feat: FeatureConfig, knn: dict, lm_dirs: dict = LM_DIRS,
                 progress: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """Mutual k-NN and linear CKA between LM^V (T's scores) and LM^A (T's recordings), last layer, with the
    shuffled and the shuffled-within-family controls; and every layer pair's maps. -> (report, maps)."""
    from lmm_utils.lm import similarity as sim  # deferred: torch and the LM code

    lm_v, lm_a = LanguageModel.load(data.root / lm_dirs["V"]), LanguageModel.load(data.root / lm_dirs["A"])
    scores = data.scores("T")
    logmels = data.logmels("T", feat, progress=progress)
    ids, xv, xa = sim.paired_features(lm_v, lm_a, scores, logmels, progress)
    groups = [family(scores[i].collection) for i in ids]
    align = sim.alignment_report(xv[-1], xa[-1], knn["k"], knn["gallery_sizes"], knn["repeats"], knn["shuffles"],
                                 knn["seed"], groups)
    align["n_pairs"] = len(ids)
    align["n_skipped"] = len(set(scores) & set(logmels)) - len(ids)
    align["features"] = "last layer, mean-pooled over tokens"
    mats = sim.layer_matrix(xv, xa, knn["k"])
    align["best_layers"] = {n: {"V": int(m.argmax() // m.shape[1]), "A": int(m.argmax() % m.shape[1]),
                                "value": float(m.max())} for n, m in mats.items()}
    return align, mats


def alignment_table(align: dict) -> list[dict]:
    rows = [{"measure": f"mutual {v['k']}-NN, gallery {v['gallery']}", "paired": v["paired"],
             "shuffled pairs": v["shuffled"], "shuffled within family": v["shuffled_within_group"],
             "chance": v["chance"]} for v in align["mutual_knn"].values()]
    cka = align["cka"]
    return rows + [{"measure": "linear CKA", "paired": cka["paired"], "shuffled pairs": cka["shuffled"],
                    "shuffled within family": cka["shuffled_within_group"], "chance": None}]


__all__ = ["find_lm_m", "lm_m_bits", "read_mapped", "read_oracle", "lm_m_table", "lm_m_metrics", "lm_alignment", "alignment_table",
           "ORACLE_BITS", "LM_DIRS"]
