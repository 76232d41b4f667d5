"""h and g checkpoints: what a method trained (the network's weights and config), and for an LM adapter the frozen
LM folder it reads (with that LM's md5, so a checkpoint names the exact LM it was trained on)."""
from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import torch

from lmm_utils.core.features import FeatureConfig
from lmm_utils.core.io import atomic_path
from lmm_utils.methods.basis import BasisPerformer
from lmm_utils.methods.lm_features import load_lm_features
from lmm_utils.methods.wrappers import GModel, HModel, LMTranscriber, make_g, make_h
from lmm_utils.models.performer import PerformerConfig
from lmm_utils.models.transcriber import TranscriberConfig


def _lm_hash(folder: str | None, root: str | Path = ".") -> str | None:
    if not folder:
        return None
    p = Path(root) / folder / "lm.pt"
    return hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else None


def save_h(h: HModel, path: str | Path, extra: dict | None = None) -> None:
    net = h.net
    ck = {"features": asdict(net.feat), "extra": extra or {}}
    if isinstance(net, LMTranscriber):
        ck.update(kind="lm_transcriber", transcriber=asdict(net.tcfg), lm=h.lm.path, lm_md5=_lm_hash(h.lm.path, getattr(h.lm, "root", ".")),
                  adapter={"rank": net.rank, "backbone": net.backbone})
    else:
        ck.update(kind="transcriber", transcriber=asdict(net.cfg))
    ck["state_dict"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:  # a torn checkpoint never sits under the final name
        torch.save(ck, tmp)


def load_h(path: str | Path, lm_root: str | Path = ".") -> HModel:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    feat = FeatureConfig(**ck["features"])
    tcfg = TranscriberConfig(**{**ck["transcriber"], "harmonics": tuple(ck["transcriber"]["harmonics"])})
    lm = load_lm_features("A", ck["lm"], root=lm_root) if ck["kind"] == "lm_transcriber" else None
    h = make_h(tcfg, feat, lm, ck.get("adapter"))
    h.net.load_state_dict(ck["state_dict"])
    h.net.eval()
    return h


def save_g(g: GModel, path: str | Path, extra: dict | None = None) -> None:
    cfg = asdict(g.net.cfg)
    kind = "lm_performer" if g.lm is not None else "performer"
    if isinstance(g.net, BasisPerformer):  # methods.basis: a ridge over note features (and LM^V's, if g.lm)
        kind = "basis_performer"
    ck = {"kind": kind, "performer": cfg,
          "lm": g.lm.path if g.lm is not None else None, "lm_md5": _lm_hash(g.lm.path, getattr(g.lm, "root", ".")) if g.lm is not None else None,
          "state_dict": {k: v.detach().cpu() for k, v in g.net.state_dict().items()}, "extra": extra or {}}
    if kind == "basis_performer":
        ck["basis"] = {"n_in": g.net.n_in, "features": g.net.features}
    with atomic_path(path) as tmp:  # a torn checkpoint never sits under the final name
        torch.save(ck, tmp)


def load_g(path: str | Path, lm_root: str | Path = ".") -> GModel:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    pcfg = PerformerConfig.from_params(ck["performer"])
    if ck["kind"] == "basis_performer":
        lm = load_lm_features("V", ck["lm"], root=lm_root) if ck["lm"] else None
        g = GModel(BasisPerformer(pcfg, ck["basis"]["n_in"], ck["basis"]["features"]), lm)
    else:
        lm = load_lm_features("V", ck["lm"], root=lm_root) if ck["kind"] == "lm_performer" else None
        g = make_g(pcfg, lm)
    g.net.load_state_dict(ck["state_dict"])
    g.net.eval()
    return g


__all__ = ["load_g", "load_h", "save_g", "save_h"]
