"""h beyond the benchmark's recording level: each method's h -- and the Basic Pitch peer -- on T's recordings
re-levelled to a quiet take, an ordinary recording and a hot master (evaluation.levels), on T_timbre (the unheard
piano) and on T_noisy (heavy reverb and background noise), per family.

    rows = robustness_table(run_dirs, ev_data, truth, picked="most_pairs")   # the evaluate stage's robustness table

run_dirs holds one run per method, picked by the caller (the evaluate stage: curves.representative_runs, the most
pairs and the lowest seed, no score read); `picked` names that rule in every row, so a report says how the run was
chosen.

A level-invariant h gives the same row at every level. T_noisy rows appear when the data has T_noisy (data made
before it has none). The peer's rows come from its transcriptions in data/peers/<peer>/{T,T_at_<level>dBFS,
T_timbre,T_noisy} (the references stage); a peer that was not installed has no rows (results_md says so).
"""
from __future__ import annotations

from pathlib import Path

from lmm_utils.core.features import FeatureConfig, log_mel
from lmm_utils.core.io import read_json
from lmm_utils.data.corpus import FAMILIES, family
from lmm_utils.data.evaluation import NOISY_POOL, TEST_POOL, TIMBRE_POOL, EvaluationData, Truth
from lmm_utils.evaluation.levels import LEVELS_DBFS, SILENT_RMS, at_rms_dbfs, level_folder
from lmm_utils.evaluation.metrics import transcription_scores
from lmm_utils.evaluation.predictions import PredictionSource, run_sources
from lmm_utils.evaluation.scoring import PEERS_DIR, SYSTEMS, TRANSCRIPTION_SYSTEMS, score_folder, summarize
from lmm_utils.methods.checkpoints import load_h
from lmm_utils.models.transcriber import DecodeConfig

SUBSETS = ("all", *FAMILIES)
PEER_SUFFIX = " (peer)"


def conditions(levels: tuple[float, ...] = LEVELS_DBFS, noisy: bool = True) -> list[tuple[str, str, float | None]]:
    """(label, pool, level or None = as recorded); T_noisy last when `noisy`."""
    return ([("T as recorded", TEST_POOL, None)] + [(f"T at {lv:+.0f} dBFS", TEST_POOL, lv) for lv in levels]
            + [("T_timbre as recorded", TIMBRE_POOL, None)] + ([("T_noisy as recorded", NOISY_POOL, None)] if noisy else []))


def summary_rows(label: str, rows: list[dict]) -> list[dict]:
    """Per-excerpt rows of one condition -> one row per subset (all, each family): note F1, with offsets, n."""
    summary = summarize(rows)
    return [{"recordings": label, "subset": sub, "note_f1": summary[sub]["note_f1"],
             "note_offset_f1": summary[sub]["note_offset_f1"], "n": int(summary[sub]["n"])}
            for sub in SUBSETS if sub in summary]


def stored_transcriptions(run_dir: Path) -> dict[str, PredictionSource]:
    """{pool: the run's own transcriptions of its recordings} from its predictions file (h: T, h_timbre: T_timbre,
    h_noisy: T_noisy): the as-recorded rows are then the very notes the run's table scored."""
    return {SYSTEMS[s][0]: src for s, src in run_sources(run_dir, TRANSCRIPTION_SYSTEMS).items()}


def run_decoding(run_dir: Path) -> DecodeConfig:
    """How a run decoded its predictions: metrics.json's `decode`; a run made before runs recorded it decoded without
    harmonic suppression (its DecodeConfig had no such field). The re-levelled rows must decode the same way as the
    as-recorded rows read back from the run's predictions, or the level spread would compare two decoders."""
    path = Path(run_dir) / "metrics.json"
    recorded = (read_json(path) if path.is_file() else {}).get("decode")
    if recorded is None:
        return DecodeConfig(harmonic_ratio=0.0)
    return DecodeConfig(**{k: v for k, v in recorded.items() if k in DecodeConfig.__dataclass_fields__})


def h_rows(h, data: EvaluationData, truth: Truth, feat: FeatureConfig,
           levels: tuple[float, ...] = LEVELS_DBFS, stored: dict[str, PredictionSource] | None = None,
           decode: DecodeConfig = DecodeConfig()) -> list[dict]:
    """One row per condition and subset (all, each family): note F1, note F1 with offsets, n. An as-recorded
    excerpt the run already transcribed (`stored`, its predictions) is read back, not transcribed again (half the
    table's inference); the others are transcribed, each recording read once."""
    conds = conditions(levels, noisy=data.has_recordings(NOISY_POOL, truth.ids))
    per_cond: list[list[dict]] = [[] for _ in conds]
    for i in truth.ids:
        t_audio = None
        for rows, (_, pool, level) in zip(per_cond, conds):
            perf, status = (stored[pool].get(i) if stored and pool in stored and level is None
                            else (None, "missing"))
            if status != "ok":
                if level is None:
                    logmel = data.logmel(pool, i, feat)
                else:
                    if t_audio is None:
                        t_audio, _ = data.audio(pool, i)
                    logmel = log_mel(at_rms_dbfs(t_audio, level), feat)
                perf = h.transcribe(logmel, decode)
            rows.append({"id": i, "collection": truth.collection[i], "family": family(truth.collection[i]),
                         "status": "ok", **transcription_scores(truth.perf[i], perf)})
    return [row for rows, (label, _, _) in zip(per_cond, conds) for row in summary_rows(label, rows)]


def peer_rows(peer_dir: Path, truth: Truth, levels: tuple[float, ...] = LEVELS_DBFS) -> list[dict]:
    """A peer's rows, from its transcriptions of each condition's recordings; a condition it has no folder for is
    left out (an older references stage made no level folders; no T_noisy before T_noisy existed)."""
    folders = {"T as recorded": TEST_POOL, **{f"T at {lv:+.0f} dBFS": level_folder(lv) for lv in levels},
               "T_timbre as recorded": TIMBRE_POOL, "T_noisy as recorded": NOISY_POOL}
    out = []
    for label, folder in folders.items():
        if (peer_dir / folder).is_dir():
            out += summary_rows(label, score_folder(peer_dir / folder, truth, "transcription"))
    return out


def level_spread(rows: list[dict]) -> float:
    """Max - min of all-subset note F1 over the re-levelled rows (0 = level-invariant; NaN without them)."""
    at_levels = [r["note_f1"] for r in rows if r["subset"] == "all" and r["recordings"].startswith("T at")]
    return float(max(at_levels) - min(at_levels)) if at_levels else float("nan")


def subset_truth(data: EvaluationData, truth: Truth, robustness_items: int | None) -> Truth:
    """The robustness table's excerpts: the stratified subset eval_ids(robustness_items) of those `truth` holds (the
    runs' evaluation subset), all of them with None. Every condition is scored on the same excerpts."""
    if not robustness_items:
        return truth
    keep = set(data.eval_ids(robustness_items))
    return truth.restrict([i for i in truth.ids if i in keep])


def available_peers(peers_dir: Path) -> list[Path]:
    """Peer folders whose status says the peer ran (status.json available: true)."""
    if not peers_dir.is_dir():
        return []
    return [d for d in sorted(peers_dir.iterdir())
            if d.is_dir() and (d / "status.json").is_file() and read_json(d / "status.json").get("available")]


def robustness_table(run_dirs: dict[str, Path], data: EvaluationData, truth: Truth,
                     levels: tuple[float, ...] = LEVELS_DBFS, peers_dir: Path | None = None,
                     picked: str | None = None) -> list[dict]:
    """{method: one run's folder} -> rows (method, run, picked, recordings, subset, note_f1, note_offset_f1, n), plus
    the spread of all-subset note F1 over the levels per method (`level_spread`: 0 = level-invariant); then each
    available peer (data/peers, or `peers_dir`) as method "<peer> (peer)", run "peer"."""
    out = []
    for method, run_dir in sorted(run_dirs.items()):
        h = load_h(Path(run_dir) / "h.pt", lm_root=data.root)
        rows = h_rows(h, data, truth, h.feat, levels, stored_transcriptions(Path(run_dir)), run_decoding(Path(run_dir)))
        spread = level_spread(rows)
        out += [{"method": method, "run": Path(run_dir).name, "picked": picked, **r, "level_spread": spread}
                for r in rows]
    for peer in available_peers(peers_dir if peers_dir is not None else data.root / PEERS_DIR):
        rows = peer_rows(peer, truth, levels)
        spread = level_spread(rows)
        out += [{"method": peer.name + PEER_SUFFIX, "run": "peer", **r, "level_spread": spread} for r in rows]
    return out


__all__ = ["LEVELS_DBFS", "SILENT_RMS", "PEER_SUFFIX", "at_rms_dbfs", "conditions", "summary_rows", "h_rows",
           "stored_transcriptions", "run_decoding",
           "subset_truth", "peer_rows", "level_spread", "available_peers", "robustness_table"]
