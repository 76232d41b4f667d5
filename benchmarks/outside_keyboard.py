"""The outside check: h on keyboard works that no pool holds (data/corpus.KEYBOARD_WORKS: Joplin's Maple Leaf Rag,
a Chopin mazurka, C. P. E. Bach, Mozart's K. 545, Schoenberg's op. 19, Clara Schumann's polonaises), played by the
benchmark's pianist and recorded on T_timbre's unheard piano at an ordinary level (-20 dBFS RMS), with Basic Pitch
on the same audio.

    .venv/bin/python benchmarks/outside_keyboard.py --project . --runs shipped data/runs/supervised/supervised-K16-s0 \\
        --out benchmarks/results/outside_keyboard.json

The excerpts, the pianist and the piano come from this checkout's params.yaml whatever --project is, so runs of
several projects (e.g. one made before the polyphony family) are scored on the same recordings.

What it measures is what the keyboard writing of the corpus does to h (fast runs, wide-spread accompaniment, dense
chords), not a tuned number: nothing here feeds back into any method. The ground-truth motion is the virtual
pianist's (this is evaluation code, as EvaluationData is); excerpts, performances and recordings are seeded, so a
re-run makes the same audio. Note F1 is mir_eval's onset-and-pitch F1 (lmm_utils.evaluation.metrics).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXTURE_KEYS = ("arpeggiate_prob", "register_prob")  # split.excerpts' transforms of the pools' scores: off here
LEVEL_DBFS = -20.0  # an ordinary recording's RMS (T's recordings average -38)
ROOM = {"reverb_room": 0.4, "reverb_level": 0.25}  # a small room: neither T's dry end nor T_noisy's hall


def keyboard_excerpts(per_piece: int, seed: int):
    """The keyboard works of music21's corpus as excerpts cut as the split stage cuts them (no arpeggiation: the
    writing is already the keyboard's)."""
    import yaml
    from music21 import corpus

    from lmm_utils.data.corpus import WorkRef, is_keyboard_work, parse_works
    from lmm_utils.data.excerpts import ExcerptConfig, make_excerpts
    from lmm_utils.data.music21_compat import add_bundle_iteration

    add_bundle_iteration()
    sources = sorted({str(e.sourcePath) for e in corpus.corpora.CoreCorpus().metadataBundle
                      if is_keyboard_work(str(e.sourcePath))})
    refs = [WorkRef(s.split("/")[0], s) for s in sources]
    pieces, skipped = parse_works(refs, workers=1)
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["split"]["excerpts"]
    # the works as written: none of the pools' texture transforms (data/textures.py), whatever params.yaml says
    cfg = ExcerptConfig.from_params({**section, "max_per_piece": per_piece, **dict.fromkeys(TEXTURE_KEYS, 0.0)})
    excerpts = [e for p in pieces for e in make_excerpts(p, cfg, seed)]
    return excerpts, skipped


def record(excerpts, out_dir: Path, seed: int) -> dict:
    """Play each excerpt with the benchmark's pianist and record it on T_timbre's piano at LEVEL_DBFS -> wav files;
    returns {excerpt id: Performance}."""
    import soundfile as sf
    import yaml

    from lmm_utils.data.excerpts import stable_seed
    from lmm_utils.data.pianist import PianistConfig, perform
    from lmm_utils.data.render import FluidRenderer, RecordingConditions
    from lmm_utils.evaluation.levels import at_rms_dbfs

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    pianist = PianistConfig.from_params(params["perform"]["pianist"])
    piano = params["perform"]["timbre_soundfont"]
    sr = params["features"]["sample_rate"]
    renderer = FluidRenderer(sr)
    cond = RecordingConditions(soundfont=piano["file"], preset=piano["preset"], **ROOM)
    truth = {}
    for e in excerpts:
        perf = perform(e, pianist, np.random.default_rng(stable_seed(seed, e.id, "outside")))
        audio = renderer.render(perf, cond)
        sf.write(out_dir / f"{e.id}.wav", at_rms_dbfs(audio, LEVEL_DBFS), sr, subtype="FLOAT")
        truth[e.id] = perf
    return truth


def transcribe_h(label: str, project: Path, audio_dir: Path, truth: dict, harmonic_ratio: float | None = None) -> dict:
    """{excerpt id: h's Performance} for a run folder (or the shipped h), through `lmm transcribe`'s own path
    (harmonic_ratio None: the methods' decoding, DecodeConfig's default)."""
    from lmm_utils.app.inference import transcribe_file
    from lmm_utils.app.shipping import SHIPPED_DIR, shipped_model
    from lmm_utils.methods.checkpoints import load_h
    from lmm_utils.models.transcriber import DecodeConfig

    if label == "shipped":
        path, _ = shipped_model("h")
        h = load_h(path, lm_root=SHIPPED_DIR)
    else:
        h = load_h(project / label / "h.pt", lm_root=project)
    cfg = DecodeConfig() if harmonic_ratio is None else DecodeConfig(harmonic_ratio=harmonic_ratio)
    return {i: transcribe_file(h, audio_dir / f"{i}.wav", decode_cfg=cfg) for i in truth}


def transcribe_basic_pitch(project: Path, audio_dir: Path, truth: dict, work: Path) -> dict | None:
    from lmm_utils.core.motion import read_midi
    from lmm_utils.evaluation.peers.stage import bp_python, transcribe

    py = bp_python(project)
    if py is None:
        return None
    out = work / "bp"
    transcribe(py, project, [(audio_dir, out)], None)
    return {i: read_midi(out / f"{i}.mid") for i in truth if (out / f"{i}.mid").is_file()}


# What a missed note is like: each true note's attributes, binned (recall per bin tells where h loses notes).
REGISTERS = ((0, 36, "below C2"), (36, 48, "C2-B2"), (48, 60, "C3-B3"), (60, 72, "C4-B4"), (72, 84, "C5-B5"),
             (84, 128, "C6 and up"))
CHORD_SIZES = ((1, 2, "alone"), (2, 3, "2 at once"), (3, 99, "3+ at once"))
NEIGHBOURS = ((0, 3, "0-2 onsets within 150 ms"), (3, 6, "3-5"), (6, 999, "6+"))
VELOCITIES = ((0, 50, "velocity < 50"), (50, 80, "50-79"), (80, 128, "80+"))
SIMULTANEOUS_S = 0.03  # onsets this close count as one chord (a rolled chord's notes too)
NEIGHBOUR_S = 0.15
ATTRIBUTE_BINS = {"register": REGISTERS, "chord": CHORD_SIZES, "crowding": NEIGHBOURS, "velocity": VELOCITIES}


def note_attributes(perf) -> list[dict[str, str]]:
    """Per true note: its register, chord size, how crowded its neighbourhood is, its velocity, each as a bin label."""
    onsets = np.array([n.onset for n in perf.notes])

    def label(bins, v):
        return next(name for lo, hi, name in bins if lo <= v < hi)

    out = []
    for n in perf.notes:
        d = np.abs(onsets - n.onset)
        out.append({"register": label(REGISTERS, n.pitch), "chord": label(CHORD_SIZES, int((d <= SIMULTANEOUS_S).sum())),
                    "crowding": label(NEIGHBOURS, int((d <= NEIGHBOUR_S).sum()) - 1),
                    "velocity": label(VELOCITIES, n.velocity)})
    return out


def recall_by_attribute(truth: dict, estimates: dict) -> dict[str, dict[str, dict]]:
    """{attribute: {bin: {"recall", "n"}}} over every true note of the excerpts `estimates` holds."""
    from lmm_utils.evaluation.metrics import match_notes

    found: dict[tuple[str, str], list[bool]] = {}
    for i, est in estimates.items():
        hit = {r for r, _ in match_notes(truth[i], est)}
        for j, attrs in enumerate(note_attributes(truth[i])):
            for a, b in attrs.items():
                found.setdefault((a, b), []).append(j in hit)
    order = {a: [name for *_, name in bins] for a, bins in ATTRIBUTE_BINS.items()}
    return {a: {b: {"recall": round(float(np.mean(found[a, b])), 4), "n": len(found[a, b])}
                for b in names if (a, b) in found} for a, names in order.items()}


def summarize(rows: dict, collection: dict) -> dict:
    keys = ("note_f1", "note_p", "note_r")
    out = {"all": {k: round(float(np.mean([r[k] for r in rows.values()])), 4) for k in keys} | {"n": len(rows)}}
    for c in sorted(set(collection.values())):
        sub = [r for i, r in rows.items() if collection[i] == c]
        out[c] = {k: round(float(np.mean([r[k] for r in sub])), 4) for k in keys} | {"n": len(sub)}
    return out


def truth_fingerprint(truth: dict) -> str:
    """Of the recordings' true notes: systems merged into one file (--add) must have been scored on the same ones."""
    import hashlib

    blob = json.dumps({i: [[n.pitch, round(n.onset, 4)] for n in truth[i].notes] for i in sorted(truth)})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def main() -> None:
    from lmm_utils.data.textures import texture_stats

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, default=ROOT)
    p.add_argument("--runs", nargs="+", default=["shipped"], help="'shipped' or run folders relative to --project")
    p.add_argument("--label", default="", help="prefix of the runs' labels in the output (e.g. the project's commit)")
    p.add_argument("--per-piece", type=int, default=6, help="excerpts per work (split.excerpts' windows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--add", action="store_true", help="merge into --out's systems instead of replacing the file")
    p.add_argument("--no-peer", action="store_true", help="skip Basic Pitch")
    p.add_argument("--harmonic-ratio", type=float, default=None,
                   help="also each run decoded with harmonic suppression at this ratio (0: off; "
                        "lmm_utils.models.harmonics; the main rows decode as the methods do)")
    args = p.parse_args()
    project = args.project.resolve()
    excerpts, skipped = keyboard_excerpts(args.per_piece, args.seed)
    collection = {e.id: e.collection for e in excerpts}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        audio_dir = work / "audio"
        audio_dir.mkdir()
        truth = record(excerpts, audio_dir, args.seed)
        estimates = {(args.label + label if label != "shipped" else label): transcribe_h(label, project, audio_dir, truth)
                     for label in args.runs}
        if args.harmonic_ratio is not None:
            estimates.update({f"{args.label + label if label != 'shipped' else label} (harmonic ratio {args.harmonic_ratio:g})":
                              transcribe_h(label, project, audio_dir, truth, args.harmonic_ratio)
                              for label in args.runs})
        bp = None if args.no_peer else transcribe_basic_pitch(ROOT, audio_dir, truth, work)
        if bp is not None:
            estimates["Basic Pitch"] = bp
    from lmm_utils.evaluation.metrics import note_scores

    systems = {k: {i: note_scores(truth[i], est) for i, est in v.items()} for k, v in estimates.items()}
    result = {
        "what": "h note F1 (onset 50 ms + pitch) on music21's keyboard works, which no pool holds; T_timbre's piano, "
                f"{LEVEL_DBFS} dBFS RMS, a small room {ROOM}",
        "command": "python benchmarks/outside_keyboard.py " + " ".join(sys.argv[1:]),
        "excerpts": len(excerpts), "works_skipped": skipped, "truth_fingerprint": truth_fingerprint(truth),
        "true_notes": sum(len(p.notes) for p in truth.values()),
        "notes_per_s": round(float(np.mean([texture_stats(e)[0] for e in excerpts])), 3),
        "systems": {k: summarize(v, collection) for k, v in systems.items()},
        "recall_by": {k: recall_by_attribute(truth, v) for k, v in estimates.items()},
    }
    print(json.dumps(result["systems"], indent=1))
    if args.out:  # --add keeps the systems already in the file (another project's runs on the same recordings)
        if args.add and args.out.is_file():
            before = json.loads(args.out.read_text())
            if before.get("truth_fingerprint", result["truth_fingerprint"]) != result["truth_fingerprint"] or (
                    before.get("notes_per_s") != result["notes_per_s"] or before.get("excerpts") != len(excerpts)):
                sys.exit(f"error: {args.out} was scored on other recordings (truth {before.get('truth_fingerprint')}, "
                         f"{before.get('excerpts')} excerpts at {before.get('notes_per_s')} notes/s); not merged")
            result["systems"] = {**before["systems"], **result["systems"]}
            result["recall_by"] = {**before.get("recall_by", {}), **result["recall_by"]}
            result["command"] = before["command"] + " ; " + result["command"]
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
