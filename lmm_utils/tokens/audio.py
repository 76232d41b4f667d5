"""A tokens: k-means codes of log-mel frames (lmm_utils.core.features), `frames_per_token` frames per code.

`features` says what is clustered: "logmel" (the frames themselves) or "harmonic" (pitch-aware features computed
from the log-mel by lmm_utils.tokens.pitch: 88 harmonic-summed key saliences, chroma, loudness, onset strength),
which keep far more of the notes (reports/metrics/lmA_probe.json). A checkpoint whose config lacks the key is
"logmel" (what every tokenizer was before).

Stacking 2 frames (20 ms hop) gives 25 tokens per second, which halves the sequence length the LM
has to model. With `dedup`, a run of equal codes becomes one token (the deduplicated units of spoken-language
modelling): a held note is no longer a string of copies that a bigram predicts as well as any LM, so the LM's
context has to earn its bits -- on the default data the LM's gap to its own bigram grows from 0.29 to 0.78
bits/token, though per second of audio it falls and the hidden states keep less pitch, so it is off by default
(benchmarks/results/lmA_dedup.json, README "Does LM^A hear pitch?"). `encode_runs` gives each token's length in frame tokens, which
is how features map back to frames. Each stacked vector is standardised per dimension (mean/std from the fitting data), then
assigned to the nearest of `codebook_size` centroids. Decoding maps codes back to their centroids, so
`decode(encode(mel))` is the codebook's reconstruction of the spectrogram; `reconstruction_error`
reports how much of the log-mel variance that loses.

The codebook must be fitted on U_A features only (the caller passes them; nothing here reads files).
k-means++ initialisation on a subsample, then Lloyd iterations in torch; empty clusters are re-seeded
with the points worst served by the current codebook.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lmm_utils.tokens import BOS, EOS, SPECIALS, Tokenizer
from lmm_utils.tokens.pitch import n_pitch_features, pitch_features

FEATURES = ("logmel", "harmonic")


class AudioTokenizer(Tokenizer):
    modality = "A"

    def __init__(
        self,
        n_mels: int = 128,
        frames_per_token: int = 2,
        codebook_size: int = 256,
        kmeans_iters: int = 20,
        max_fit_vectors: int = 50_000,
        seed: int = 0,
        features: str = "logmel",
        fmin: float = 27.5,
        fmax: float = 8000.0,
        dedup: bool = False,
    ):
        if features not in FEATURES:
            raise ValueError(f"AudioTokenizer features must be one of {FEATURES}, got {features!r}")
        self.features = features
        self.dedup = bool(dedup)  # one token per run of equal codes
        self.fmin, self.fmax = float(fmin), float(fmax)  # the log-mel's band edges (harmonic features need them)
        self.n_mels = int(n_mels)
        self.frames_per_token = int(frames_per_token)
        self.codebook_size = int(codebook_size)
        self.kmeans_iters = int(kmeans_iters)
        self.max_fit_vectors = int(max_fit_vectors)
        self.seed = int(seed)
        self.frame_dim = self.n_mels if features == "logmel" else n_pitch_features()
        self.dim = self.frame_dim * self.frames_per_token
        self.codebook: torch.Tensor | None = None  # (K, dim), in standardised units
        # (K, n_mels * frames_per_token): each code's mean log-mel, what decode returns (harmonic features
        # cannot be inverted); for "logmel" it is the codebook itself, unstandardised
        self.mel_codebook: torch.Tensor | None = None
        self.mean = torch.zeros(self.dim)
        self.std = torch.ones(self.dim)
        super().__init__([f"c:{k}" for k in range(self.codebook_size)])

    def config(self) -> dict:
        out = dict(n_mels=self.n_mels, frames_per_token=self.frames_per_token, codebook_size=self.codebook_size,
                   kmeans_iters=self.kmeans_iters, max_fit_vectors=self.max_fit_vectors, seed=self.seed,
                   features=self.features, fmin=self.fmin, fmax=self.fmax)
        if self.dedup:  # only when on: a frame-token checkpoint keeps the bytes it had before the switch existed
            out["dedup"] = True
        return out

    def state(self) -> dict[str, torch.Tensor]:
        if self.codebook is None:
            return {}
        out = {"codebook": self.codebook.clone(), "mean": self.mean.clone(), "std": self.std.clone()}
        if self.features != "logmel":
            out["mel_codebook"] = self.mel_codebook.clone()
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            self.codebook = torch.as_tensor(state["codebook"], dtype=torch.float32)
            self.mean = torch.as_tensor(state["mean"], dtype=torch.float32)
            self.std = torch.as_tensor(state["std"], dtype=torch.float32)
            self.mel_codebook = (torch.as_tensor(state["mel_codebook"], dtype=torch.float32)
                                 if "mel_codebook" in state else self.codebook * self.std + self.mean)

    @property
    def fitted(self) -> bool:
        return self.codebook is not None

    # -- frames <-> stacked vectors ------------------------------------------------------------
    def frame_features(self, mel: torch.Tensor) -> torch.Tensor:
        """(..., n_mels, T) log-mel -> (..., frame_dim, T): what is clustered, per frame (differentiable)."""
        if self.features == "logmel":
            return mel
        return pitch_features(mel, self.fmin, self.fmax)

    def vectors(self, mel: np.ndarray, features: bool = True) -> torch.Tensor:
        """(n_mels, T) -> (ceil(T / f), frame_dim * f) (features=False: the log-mel itself, n_mels * f); the last
        token is padded by repeating the last frame."""
        mel = torch.as_tensor(np.asarray(mel), dtype=torch.float32)
        if mel.ndim != 2 or mel.shape[0] != self.n_mels:
            raise ValueError(f"expected ({self.n_mels}, T) log-mel, got {tuple(mel.shape)}")
        f, t = self.frames_per_token, mel.shape[1]
        n = -(-t // f)
        if n * f > t:
            mel = torch.cat([mel, mel[:, -1:].expand(-1, n * f - t)], dim=1)
        x = self.frame_features(mel) if features else mel
        # token i holds frames i*f .. i*f+f-1, frame-major: [frame0 features, frame1 features, ...]
        return x.T.reshape(n, f * x.shape[0])

    def token_vectors(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, T // f, dim) standardised vectors of the whole tokens in T (differentiable; the
        soft tokens of methods/lm_features.py). Needs a fitted tokenizer (mean, std)."""
        b, m, t = logmel.shape
        if m != self.n_mels:
            raise ValueError(f"expected (B, {self.n_mels}, T) log-mel, got {tuple(logmel.shape)}")
        n = t // self.frames_per_token
        x = self.frame_features(logmel[..., : n * self.frames_per_token])
        x = x.permute(0, 2, 1).reshape(b, n, self.dim)  # frame-major stacking, as `vectors`
        return (x - self.mean.to(x)) / self.std.to(x)

    def unvectors(self, vecs: torch.Tensor) -> np.ndarray:
        return vecs.reshape(-1, self.n_mels).T.contiguous().numpy()

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, mels: Sequence[np.ndarray], progress: bool = True) -> dict:
        """Fit mean/std and the codebook on these log-mels (U_A's, and only those). Returns stats."""
        g = torch.Generator().manual_seed(self.seed)
        x = torch.cat([self.vectors(m) for m in mels])
        raw = torch.cat([self.vectors(m, features=False) for m in mels]) if self.features != "logmel" else None
        if len(x) > self.max_fit_vectors:
            keep = torch.randperm(len(x), generator=g)[: self.max_fit_vectors]
            x, raw = x[keep], (raw[keep] if raw is not None else None)
        self.mean = x.mean(0)
        self.std = x.std(0).clamp_min(1e-3)
        z = (x - self.mean) / self.std
        k = min(self.codebook_size, len(z))
        c = _kmeans_pp(z, k, g)
        it = tqdm(range(self.kmeans_iters), desc="k-means", disable=not progress, mininterval=2.0)
        for _ in it:
            assign, dist = _nearest(z, c)
            counts = torch.bincount(assign, minlength=k)
            sums = torch.zeros_like(c).index_add_(0, assign, z)
            c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
            empty = (counts == 0).nonzero().flatten()
            if len(empty):  # re-seed dead codes at the points the codebook serves worst
                c[empty] = z[dist.topk(len(empty)).indices]
            it.set_postfix(mse=float(dist.mean()) / self.dim)
        if k < self.codebook_size:  # tiny fitting sets: pad with copies so the vocabulary stays fixed
            c = torch.cat([c, c[torch.arange(self.codebook_size - k) % k]])
        self.codebook = c
        assign = _nearest(z, c)[0]
        if raw is None:
            self.mel_codebook = c * self.std + self.mean
        else:  # each code's mean log-mel (a code no point chose keeps the overall mean)
            counts = torch.bincount(assign, minlength=len(c))[:, None]
            sums = torch.zeros(len(c), raw.shape[1]).index_add_(0, assign, raw)
            self.mel_codebook = torch.where(counts > 0, sums / counts.clamp_min(1), raw.mean(0))
        return {"fit_vectors": len(z), "codes_used": int((torch.bincount(assign, minlength=len(c)) > 0).sum())}

    # -- encode / decode ----------------------------------------------------------------------
    def codes(self, mel: np.ndarray) -> torch.Tensor:
        if self.codebook is None:
            raise RuntimeError("AudioTokenizer is not fitted (call fit on U_A log-mels, or load a checkpoint)")
        z = (self.vectors(mel) - self.mean) / self.std
        return _nearest(z, self.codebook)[0]

    def encode_runs(self, mel: np.ndarray) -> tuple[list[int], np.ndarray]:
        """-> (ids with <bos>/<eos>, how many frame tokens each code covers): all ones, or with `dedup` the length
        of each run of equal codes (token i then spans frames_per_token * counts[i] frames)."""
        codes = self.codes(mel)
        if self.dedup and len(codes):
            codes, counts = torch.unique_consecutive(codes, return_counts=True)
        else:
            counts = torch.ones_like(codes)
        return [BOS] + (codes + len(SPECIALS)).tolist() + [EOS], counts.numpy()

    def encode(self, mel: np.ndarray) -> list[int]:
        return self.encode_runs(mel)[0]

    def decode(self, ids: Sequence[int]) -> np.ndarray:
        """Tokens -> (n_mels, n_tokens * frames_per_token) log-mel from the codebook (with `dedup` each run is
        one token long: its length is not in the tokens)."""
        if self.codebook is None:
            raise RuntimeError("AudioTokenizer is not fitted")
        codes = torch.tensor(self.strip(ids), dtype=torch.long) - len(SPECIALS)
        if len(codes) == 0:
            return np.zeros((self.n_mels, 0), np.float32)
        return self.unvectors(self.mel_codebook[codes])

    def reconstruct(self, mel: np.ndarray) -> np.ndarray:
        """The codebook's version of this log-mel: every frame token's code decoded, so (n_mels, T) as the input
        (decode(encode(mel)) would give a dedup tokenizer's runs one token each)."""
        mel = np.asarray(mel, np.float32)
        return self.unvectors(self.mel_codebook[self.codes(mel)])[:, : mel.shape[1]]

    def reconstruction_error(self, mels: Sequence[np.ndarray]) -> dict:
        """Codebook reconstruction of these log-mels: MSE (log-power units^2) and the fraction of
        variance it leaves unexplained (1 - R^2; 0 = perfect, 1 = no better than the mean frame)."""
        se, n, sq, s = 0.0, 0, 0.0, 0.0
        if self.codebook is None:
            raise RuntimeError("AudioTokenizer is not fitted")
        for mel in mels:
            mel = np.asarray(mel, np.float32)
            rec = self.reconstruct(mel)
            se += float(((rec - mel) ** 2).sum())
            n += mel.size
            s += float(mel.sum())
            sq += float((mel.astype(np.float64) ** 2).sum())
        var = sq / max(n, 1) - (s / max(n, 1)) ** 2
        mse = se / max(n, 1)
        return {"mse": mse, "unexplained_variance": mse / var if var > 0 else float("nan"), "n_frames": n // self.n_mels}


def _nearest(z: torch.Tensor, c: torch.Tensor, chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared distance to the nearest centroid, in chunks to bound memory."""
    c2 = (c * c).sum(1)
    idx, dist = [], []
    for i in range(0, len(z), chunk):
        zi = z[i : i + chunk]
        d = (zi * zi).sum(1, keepdim=True) - 2 * zi @ c.T + c2
        m = d.min(1)
        idx.append(m.indices)
        dist.append(m.values.clamp_min(0))
    if not idx:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(idx), torch.cat(dist)


def _kmeans_pp(z: torch.Tensor, k: int, g: torch.Generator, sample: int = 20000) -> torch.Tensor:
    """k-means++ seeding on a subsample (D^2 sampling): spreads the initial codes over the data."""
    zs = z[torch.randperm(len(z), generator=g)[:sample]]
    zs_sq = (zs * zs).sum(1)
    first = zs[torch.randint(len(zs), (1,), generator=g)].squeeze(0)
    centers = [first]
    d = (zs_sq - 2 * zs @ first + first @ first).clamp_min(0)
    for _ in range(1, k):
        total = d.sum()
        probs = d / total if total > 0 else torch.full_like(d, 1 / len(d))
        nxt = zs[torch.multinomial(probs, 1, generator=g)].squeeze(0)
        centers.append(nxt)
        d = torch.minimum(d, (zs_sq - 2 * zs @ nxt + nxt @ nxt).clamp_min(0))  # matvec, not a (N, D) temporary
    return torch.stack(centers)
