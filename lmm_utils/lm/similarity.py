"""How aligned are two language models' representations of paired items (T: score <-> its recording)?

Two measures on one feature matrix per model (rows = the same items in the same order):
- mutual k-nearest-neighbour overlap (Huh et al., "The platonic representation hypothesis", ICML 2024):
  for each item, the fraction of its k nearest neighbours (cosine) in X that are also among its k nearest
  in Y, averaged. Depends on the gallery size (a neighbour is easier to share among 32 items than among
  200), so it is reported per gallery size, averaged over random galleries. Chance level is k / (n - 1).
- linear CKA (Kornblith et al., ICML 2019) on centred features.
Each comes with a shuffled-pairs control: the same measure after permuting Y's rows, i.e. what unrelated
pairs score (CKA of unrelated features is not 0 at n ~ 200, so the control is the baseline, not 0). With
`groups` (e.g. folk / chorales), a second control shuffles only within a group: two models that merely
both tell a monophonic tune from a four-part chorale beat the plain control, but not this one.

Features: LM^V's hidden states over the score's tokens and LM^A's over the recording's tokens, mean-pooled
over positions (one vector per excerpt and layer). Evaluation only: it reads T.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows by cosine similarity."""
    u = _unit(x)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean over items of |kNN_X(i) & kNN_Y(i)| / k."""
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    a, b = knn_sets(x, k), knn_sets(y, k)
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(n)]))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred features."""
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0)
    num = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else float("nan")


def permutation(n: int, rng: np.random.Generator, groups: np.ndarray | None = None) -> np.ndarray:
    """A random permutation of range(n); with groups, items only trade places within their group."""
    if groups is None:
        return rng.permutation(n)
    out = np.arange(n)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out[idx] = idx[rng.permutation(len(idx))]
    return out


def gallery_knn(x: np.ndarray, y: np.ndarray, k: int, size: int | None, repeats: int,
                rng: np.random.Generator, shuffle: bool = False, groups: np.ndarray | None = None) -> list[float]:
    """mutual_knn on random galleries of `size` items (None or >= n: the whole set, once unless shuffling).
    shuffle permutes y's rows inside each gallery first (the control; within `groups` when given)."""
    n = len(x)
    full = size is None or size >= n
    out = []
    for _ in range(repeats if (shuffle or not full) else 1):
        idx = np.arange(n) if full else rng.choice(n, size=size, replace=False)
        yi = idx[permutation(len(idx), rng, None if groups is None else groups[idx])] if shuffle else idx
        out.append(mutual_knn(x[idx], y[yi], k))
    return out


def alignment_report(x: np.ndarray, y: np.ndarray, k: int = 10, gallery_sizes=(32, None), repeats: int = 20,
                     shuffles: int = 20, seed: int = 0, groups=None) -> dict:
    """Mutual kNN per gallery size and linear CKA, each with its shuffled-pairs control (mean, std), the
    within-group control when `groups` (one label per row) is given, and for kNN the chance level k / (size - 1)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    grp = None if groups is None else np.asarray(groups)
    out: dict = {"n_items": n, "k": k, "mutual_knn": {}, "cka": {}}
    for size in gallery_sizes:
        size = None if size in (None, "all") else int(size)
        name = "all" if size is None or size >= n else str(size)
        g = n if name == "all" else size
        kk = min(k, g - 1)
        real = gallery_knn(x, y, k, size, repeats, rng)
        ctrl = gallery_knn(x, y, k, size, shuffles, rng, shuffle=True)
        row = {"gallery": g, "k": kk, "paired": float(np.mean(real)), "paired_std": float(np.std(real)),
               "shuffled": float(np.mean(ctrl)), "shuffled_std": float(np.std(ctrl)), "chance": kk / (g - 1)}
        if grp is not None:
            within = gallery_knn(x, y, k, size, shuffles, rng, shuffle=True, groups=grp)
            row["shuffled_within_group"], row["shuffled_within_group_std"] = float(np.mean(within)), float(np.std(within))
        out["mutual_knn"][name] = row
    ctrl = [linear_cka(x, y[rng.permutation(n)]) for _ in range(shuffles)]
    out["cka"] = {"paired": linear_cka(x, y), "shuffled": float(np.mean(ctrl)), "shuffled_std": float(np.std(ctrl))}
    if grp is not None:
        within = [linear_cka(x, y[permutation(n, rng, grp)]) for _ in range(shuffles)]
        out["cka"]["shuffled_within_group"], out["cka"]["shuffled_within_group_std"] = float(np.mean(within)), float(np.std(within))
    return out


@torch.no_grad()
def pooled_features(lm, items, progress: bool = True, desc: str = "LM features") -> np.ndarray:
    """(n_layers + 1, n_items, dim): each item tokenized by the LM's own tokenizer, hidden states of every
    layer (embeddings first) mean-pooled over its tokens (<bos>/<eos> excluded)."""
    feats = []
    for item in tqdm(items, desc=desc, disable=not progress, mininterval=2.0):
        ids = lm.tokenizer.encode(item)
        layers = lm.hidden(ids, all_layers=True)
        feats.append(torch.stack([h[1:-1].mean(0) if len(h) > 2 else h.mean(0) for h in layers]).cpu().numpy())
    return np.stack(feats, axis=1)


def paired_features(lm_v, lm_a, scores: dict, logmels: dict, progress: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, LM^V features, LM^A features) of the items both sides have and both tokenizers can encode
    (a score outside LM^V's vocabulary is left out, and counted by the caller from len(ids))."""
    ids = []
    for i in sorted(set(scores) & set(logmels)):
        try:
            lm_v.tokenizer.encode(scores[i])
            ids.append(i)
        except ValueError:
            continue
    xv = pooled_features(lm_v, [scores[i] for i in ids], progress, "LM^V features")
    xa = pooled_features(lm_a, [logmels[i] for i in ids], progress, "LM^A features")
    return ids, xv, xa


def layer_matrix(xv: np.ndarray, xa: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Mutual kNN (whole gallery) and CKA for every (LM^V layer, LM^A layer) pair: (L_V, L_A) arrays."""
    mk = np.array([[mutual_knn(a, b, k) for b in xa] for a in xv])
    ck = np.array([[linear_cka(a, b) for b in xa] for a in xv])
    return {"mutual_knn": mk, "cka": ck}


__all__ = ["knn_sets", "mutual_knn", "linear_cka", "permutation", "gallery_knn", "alignment_report", "pooled_features", "paired_features", "layer_matrix"]
