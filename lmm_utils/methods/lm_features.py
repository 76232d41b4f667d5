"""The frozen LMs as feature extractors (and LM^A as a differentiable prior on log-mel), for the methods that use a
pretrained LM (surface, lmm).

The LMs live *outside* the nn.Modules that methods train (wrappers.HModel / GModel hold one of these beside their
network), so checkpoints hold only what the method trained and name the LM folder they need.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lmm_utils.core.score import ScoreExcerpt
from lmm_utils.lm.model import LanguageModel


def lm_paths(params: dict) -> dict[str, str]:
    """The frozen LM^A / LM^V / LM^M folders (params `mapping.lm`), relative to the project root."""
    lm = params.get("lm") or {}
    return {"A": lm.get("A", "data/lm/A"), "V": lm.get("V", "data/lm/V"), "M": lm.get("M", "data/lm/M")}


class AudioLMFeatures:
    """LM^A (a LanguageModel over AudioTokenizer codes) as a frozen feature extractor on log-mel.

    Token i covers frames [f*i, f*i + f) (with a `dedup` tokenizer, the f * run-length frames of its run of equal
    codes); its feature is the LM's final hidden state at that token (which has read it and everything before),
    repeated over its frames. Not an nn.Module on purpose.
    """

    def __init__(self, lm, path: str | None = None):
        self.lm, self.path = lm, path
        self.dim = lm.model.cfg.n_embd
        self.fpt = lm.tokenizer.frames_per_token

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        """(n_mels, T) -> (dim, T) float32."""
        ids, counts = self.lm.tokenizer.encode_runs(np.asarray(logmel, np.float32))
        h = self.lm.hidden(ids)[1:-1].float().cpu().numpy()  # drop <bos>, <eos>: one row per code
        rows = np.repeat(h, counts * self.fpt, axis=0)[: logmel.shape[1]]
        return np.ascontiguousarray(rows.T, dtype=np.float32)

    # -- a differentiable prior on log-mel (soft tokens) -------------------------------------------------
    def soft_tokens(self, logmel: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """(B, n_mels, T) log-mel -> (B, T // f, V) soft token distributions (softmax over minus the squared
        distance to each code in the tokenizer's standardised feature space, / tau * dim). Specials get 0."""
        tok = self.lm.tokenizer
        z = tok.token_vectors(logmel)  # the tokenizer's own features (log-mel or harmonic), standardised
        code = tok.codebook.to(z)
        d = (z * z).sum(-1, keepdim=True) - 2 * z @ code.T + (code * code).sum(-1)
        p = torch.softmax(-d / (tau * z.shape[-1]), dim=-1)
        return F.pad(p, (3, 0))  # 3 specials first

    def prior_nll(self, logmel: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """Mean cross-entropy (nats/token) of the soft token sequence under the frozen LM: how much the
        rendered audio looks like the audio LM^A was trained on. Differentiable in logmel. A `dedup` tokenizer
        gets one soft token per run of equal nearest codes (merge_runs), as its LM was trained on."""
        soft = self.soft_tokens(logmel, tau)
        mask = None
        if self.lm.tokenizer.dedup:
            soft, mask = merge_runs(soft)
        block = self.lm.model.cfg.block_size
        soft = soft[:, : block - 1]
        bos = F.one_hot(torch.full(soft.shape[:1], 1, device=soft.device), soft.shape[-1]).to(soft)[:, None]
        seq = torch.cat([bos, soft], dim=1)
        logits, _ = self.lm.model(seq[:, :-1])
        logp = F.log_softmax(logits.float(), dim=-1)
        nll = -(seq[:, 1:] * logp).sum(-1)
        if mask is None:
            return nll.mean()
        mask = mask[:, : block - 1]
        return (nll * mask).sum() / mask.sum().clamp_min(1)


def merge_runs(soft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, V) soft tokens -> (B, S, V) one per run of equal argmax (the mean of its distributions), and the (B, S)
    mask of real runs (sequences with fewer runs are padded at the end). Where the runs split is not differentiable;
    what each run's token is, is."""
    b, n, v = soft.shape
    label = soft.argmax(-1)
    starts = torch.ones_like(label, dtype=torch.bool)
    starts[:, 1:] = label[:, 1:] != label[:, :-1]
    run = starts.long().cumsum(1) - 1  # (B, N): which run each soft token belongs to
    s = int(run.max()) + 1 if n else 0
    sums = soft.new_zeros(b, s, v).scatter_add(1, run[..., None].expand(-1, -1, v), soft)
    counts = soft.new_zeros(b, s).scatter_add(1, run, torch.ones_like(run, dtype=soft.dtype))
    return sums / counts.clamp_min(1)[..., None], counts > 0


class ScoreLMFeatures:
    """LM^V (a LanguageModel over ScoreTokenizer tokens) as a frozen per-note feature extractor.

    Each note's feature is the hidden state at its first duration token (the LM has then read the note's
    pitch and position). ScoreTokenizer writes notes in the order (onset tick, voice, -pitch, duration),
    which maps `p:` tokens back to score notes. A score the vocabulary cannot hold gets zero features.
    """

    def __init__(self, lm, path: str | None = None):
        self.lm, self.path = lm, path
        self.dim = lm.model.cfg.n_embd

    def __call__(self, score: ScoreExcerpt) -> np.ndarray:
        """-> (n_notes, dim) float32, rows in score order."""
        tok = self.lm.tokenizer
        out = np.zeros((len(score.notes), self.dim), np.float32)
        if not score.notes:
            return out
        try:
            ids = tok.encode(score)
        except ValueError:
            return out
        names = tok.names(ids)
        pos = [i for i, n in enumerate(names) if n.startswith("p:")]
        if len(pos) != len(score.notes):
            return out
        order = sorted(range(len(score.notes)), key=lambda j: (
            tok._tick(score.notes[j].onset), score.notes[j].voice, -score.notes[j].pitch, score.notes[j].duration))
        h = self.lm.hidden(ids).float().cpu().numpy()
        at = np.minimum(np.array(pos) + 1, len(ids) - 1)
        out[order] = h[at]
        return out


def load_lm_features(kind: str, folder: str | Path, device: str | torch.device = "cpu",
                     root: str | Path = ".") -> AudioLMFeatures | ScoreLMFeatures:
    """Frozen LM^A (kind "A") or LM^V ("V") from root/folder; `folder` (relative to the project root) is what
    checkpoints record."""
    lm = LanguageModel.load_frozen(Path(root) / folder, device)
    out = (AudioLMFeatures if kind == "A" else ScoreLMFeatures)(lm, str(folder))
    out.root = str(root)
    return out


__all__ = ["AudioLMFeatures", "ScoreLMFeatures", "lm_paths", "load_lm_features", "merge_runs"]
