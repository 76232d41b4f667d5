"""Where things live. Every path in the project is relative to the project root (the folder with dvc.yaml)."""
from __future__ import annotations

import os
import re
from pathlib import Path

POOLS = ("U_V", "U_A", "P", "T")
AUDIO_POOLS = ("U_A", "P", "T", "T_timbre", "T_noisy")


def project_root(start: str | Path | None = None) -> Path:
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file() and (d / "lmm_utils").is_dir():
            return d
    raise FileNotFoundError(f"No LMM project root (a folder with dvc.yaml and lmm_utils/) above {here}")


def chdir_to_root() -> Path:
    """Notebooks call this first, so they run the same from JupyterLab (cwd notebooks/) and papermill."""
    root = project_root()
    os.chdir(root)
    return root


DATA = Path("data")
REPORTS = Path("reports")
CORPUS_DIR = DATA / "corpus"
SPLITS = DATA / "splits.json"
SCORES_DIR = DATA / "scores"
ENGRAVINGS_DIR = DATA / "engravings"
MOTION_DIR = DATA / "motion"
AUDIO_DIR = DATA / "audio"
METRICS_DIR = REPORTS / "metrics"
PLOTS_DIR = REPORTS / "plots"
RUNS_DIR = DATA / "runs"  # data/runs/<method>/<run_name>: one folder per mapping run, grouped by method
RUN_METRICS_DIR = METRICS_DIR / "map"  # a flat copy of each run's numbers (a plain output, not a DVC metric)
HEADLINE_DIR = REPORTS / "headline"  # the few numbers per stage that `dvc metrics show` / `dvc exp show` compare


def scores_file(pool: str) -> Path:
    return SCORES_DIR / f"{pool}.jsonl"


def motion_file(pool: str) -> Path:
    return MOTION_DIR / f"{pool}.jsonl"


def audio_path(pool: str, excerpt_id: str) -> Path:
    return AUDIO_DIR / pool / f"{excerpt_id}.flac"


# --- mapping runs: data/runs/<method>/<method>-K<K>-s<seed> -----------------------------------------------

_RUN_NAME = re.compile(r"^(?P<method>.+?)-K(?P<K>\d+)-s(?P<seed>\d+)$")


def run_name(method: str, K: int, seed: int) -> str:
    """The folder name of one run of the mapping sweep (an ablation `lmm-no_lmM` keeps its dashes)."""
    return f"{method}-K{int(K)}-s{int(seed)}"


def method_Ks(map_params: dict, method: str) -> list[int]:
    """The Ks a method runs at: mapping.method_Ks[method] where given (a cheaper default may run an expensive
    method at fewer Ks), else mapping.Ks."""
    return [int(k) for k in ((map_params.get("method_Ks") or {}).get(method) or map_params["Ks"])]


def sweep_runs(map_params: dict) -> list[tuple[str, int, int]]:
    """(method, K, seed) of every run of the sweep params.yaml defines: each method x its Ks x mapping.seeds."""
    return [(m, k, int(s)) for m in map_params["methods"] for k in method_Ks(map_params, m) for s in map_params["seeds"]]


def run_path(runs_dir: str | Path, method: str, K: int, seed: int) -> Path:
    """A run's folder: grouped by method, because one pipeline stage (map@<method>) owns each method's runs."""
    return Path(runs_dir) / method / run_name(method, K, seed)


def run_metrics_path(metrics_dir: str | Path, method: str, K: int, seed: int) -> Path:
    """The flat copy of a run's numbers (reports/metrics/map/<method>/<run>.json)."""
    return Path(metrics_dir) / method / f"{run_name(method, K, seed)}.json"


def parse_run_name(name: str) -> tuple[str, int, int] | None:
    """(method, K, seed) of a run folder's name; None for anything else (e.g. a temporary folder)."""
    m = _RUN_NAME.match(name)
    return (m["method"], int(m["K"]), int(m["seed"])) if m else None
