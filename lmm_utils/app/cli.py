"""`lmm`: the trained models on your own files.

    lmm transcribe AUDIO... -o DIR        h: recordings -> performance MIDI (DIR/<stem>.mid)
    lmm perform SCORE -o OUT.mid [--wav OUT.wav]   g: a score (MusicXML / MIDI / ABC / kern) -> performance
    lmm evaluate REF EST [--json]         note metrics of an estimate against a reference (MIDI or TSV)

Which model: --run picks a checkpoint folder (a run name under data/runs or any folder with h.pt / g.pt);
--shipped the model shipped inside the package (lmm_utils/app/shipped). Without either: the project's run under
data/runs with the most pairs (lmm before supervised, the lowest seed: the rule the shipped models were picked by,
which reads no score, since every score is on the test pools), else -- outside a project, or before its first
sweep -- the shipped model. The command always says which it used.
A bad input file is reported and the batch goes on; the exit status is 1 if any input failed, 2 for a
usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmm_utils.core.io import jsonable
from lmm_utils.models.harmonics import HARMONIC_RATIO

EXIT_FAILED, EXIT_USAGE = 1, 2


class CLIError(RuntimeError):
    """A failure that ends the command (no usable run, unreadable checkpoint ...)."""


class NoTrainedRun(CLIError):
    """The project has no trained run to default to (then the shipped model is the default)."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


# --- which run -------------------------------------------------------------------------------------------

def _root() -> Path:
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.core.paths import project_root

    try:
        return project_root()
    except FileNotFoundError:
        return Path.cwd()


def _run_by_name(name: str, root: Path) -> Path | None:
    """A run folder by its name, wherever discover_runs finds it (the run-folder layout is scoring's to know)."""
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.evaluation.scoring import RUNS_DIR, discover_runs

    return next((r.path for r in discover_runs(root / RUNS_DIR) if r.name == name), None)


def resolve_run(arg: str | None, need: str, root: Path) -> tuple[Path, str]:
    """(run folder, why it was chosen). `need` = "h" or "g" (its checkpoint must exist). Without `arg`: the
    project's run picked by the rule the shipped model was picked by (shipping.RULE: the most pairs, lmm before
    supervised, the lowest seed; no score is read, since every score is on the test pools)."""
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.app import shipping
    from lmm_utils.evaluation.scoring import RUNS_DIR, discover_runs

    ck = f"{need}.pt"
    if arg:
        for cand in (Path(arg), root / RUNS_DIR / arg, _run_by_name(arg, root)):
            if cand is not None and cand.is_dir():
                if not (cand / ck).is_file():
                    raise CLIError(f"run {cand} has no {ck}")
                return cand, "given with --run"
        raise CLIError(f"--run {arg!r}: no such folder (tried {arg} and {root / RUNS_DIR / arg})")
    runs = [r for r in discover_runs(root / RUNS_DIR) if (r.path / ck).is_file()]
    if not runs:
        raise NoTrainedRun(f"no trained run with {ck} under {root / RUNS_DIR}: run `dvc repro` (stage map) "
                           "or pass --run DIR")
    try:
        r = shipping.pick(runs, need).run
    except shipping.ShippingError as exc:
        raise CLIError(str(exc)) from None
    return r.path, f"the project's run with the most pairs ({r.method}, K={r.K}, seed {r.seed}), of {len(runs)} runs"


def choose_model(args: argparse.Namespace, need: str, root: Path) -> tuple[Path, Path]:
    """(checkpoint folder, LM root) for h or g: --run, --shipped, the project's run with the most pairs, else the
    shipped model.
    Prints which it used (stderr)."""
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.app import shipping

    why_shipped, no_run = "given with --shipped", ""
    if not args.shipped:
        try:
            run, why = resolve_run(args.run, need, root)
            _say(f"{need}: {run} ({why})")
            return run, root
        except NoTrainedRun as exc:
            why_shipped = f"no trained run in {root}"
            no_run = str(exc)
    try:
        ck, prov = shipping.shipped_model(need, shipping.SHIPPED_DIR)
    except shipping.ShippingError as exc:
        raise CLIError(str(exc) if args.shipped else f"{no_run}; and {exc}") from None
    # the shipped folder is its own LM root: ship() re-saved LM-reading checkpoints to name shipped/lm/<A|V>
    _say(f"{need}: the shipped model {ck} ({why_shipped}): {shipping.describe(prov, need)}")
    return ck.parent, ck.parent


def _load(kind: str, run: Path, lm_root: Path):
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.methods.checkpoints import load_g, load_h

    try:
        return (load_h if kind == "h" else load_g)(run / f"{kind}.pt", lm_root=lm_root)
    except FileNotFoundError as exc:
        raise CLIError(f"{run / (kind + '.pt')}: needs {exc.filename} (a frozen LM; run `dvc repro pretrain`)") from None
    except Exception as exc:  # torch raises many types on a corrupt or foreign checkpoint
        raise CLIError(f"{run / (kind + '.pt')}: not a readable {kind} checkpoint ({type(exc).__name__}: {exc})") from None


# --- commands ---------------------------------------------------------------------------------------------

CLIPPED_WARNING = 0.001  # share of samples at full scale above which a recording is called clipped


def cmd_transcribe(args: argparse.Namespace) -> int:
    import torch  # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)

    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from tqdm import tqdm

    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.app.inference import ChunkConfig, InputError, transcribe_file
    from lmm_utils.core.io import atomic_path
    from lmm_utils.core.motion import write_midi
    from lmm_utils.models.transcriber import DecodeConfig

    if args.harmonics < 0:
        _say(f"error: --harmonics must be 0 (off) or a ratio above 0, got {args.harmonics}")
        return 2
    torch.set_num_threads(args.threads)
    run, lm_root = choose_model(args, "h", _root())
    h = _load("h", run, lm_root)
    decode_cfg = DecodeConfig(harmonic_ratio=args.harmonics)
    if args.harmonics == DecodeConfig().harmonic_ratio:
        _say(f"decoding: as the methods decode (harmonic suppression at ratio {args.harmonics:g})")
    elif args.harmonics > 0:
        _say(f"decoding: harmonic suppression at ratio {args.harmonics:g} (the methods decode at "
             f"{DecodeConfig().harmonic_ratio:g})")
    else:
        _say("decoding: no harmonic suppression (the methods decode at "
             f"{DecodeConfig().harmonic_ratio:g})")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ChunkConfig(args.chunk, args.margin)
    failed: dict[str, str] = {}
    used: set[str] = set()
    for path in tqdm(args.audio, desc="transcribe", disable=len(args.audio) < 2 or args.quiet):
        stem = Path(path).stem
        try:
            if stem in used:
                raise InputError(f"{path}: another input already wrote {stem}.mid")
            stats: dict = {}
            perf = transcribe_file(h, path, cfg, decode_cfg, progress=not args.quiet, stats=stats)
            if stats["clipped_fraction"] > CLIPPED_WARNING:
                _say(f"note: {path} is clipped ({100 * stats['clipped_fraction']:.1f} % of samples at full scale): "
                     "distortion adds partials, so expect extra notes")
            with atomic_path(out / f"{stem}.mid") as tmp:
                write_midi(perf, tmp)
            used.add(stem)
            if not args.quiet:
                _say(f"{path} -> {out / (stem + '.mid')} ({len(perf.notes)} notes)")
        except InputError as exc:
            failed[str(path)] = str(exc)
            _say(f"lmm transcribe: error: {exc}")
    return _report(failed, len(args.audio))


def cmd_perform(args: argparse.Namespace) -> int:
    import torch  # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)

    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.app.inference import score_from_file
    from lmm_utils.core.io import atomic_path
    from lmm_utils.core.motion import write_midi

    torch.set_num_threads(args.threads)
    score, notes = score_from_file(args.score, args.tempo, args.default_tempo, args.dynamic)
    for n in notes:
        _say(f"note: {n}")
    if args.plain:
        # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
        from lmm_utils.models.performer import plain_performance

        perf = plain_performance(score)
        _say("g: the plain performer (metronome timing, dynamics-mark velocities)")
    else:
        run, lm_root = choose_model(args, "g", _root())
        perf = _load("g", run, lm_root).perform([score])[0]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        write_midi(perf, tmp)
    _say(f"{args.score} -> {out} ({len(perf.notes)} notes, {perf.duration:.1f} s, tempo mark {score.tempo_bpm:g})")
    if args.wav:
        # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
        import soundfile as sf

        # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
        from lmm_utils.data.render import FluidRenderer, MissingSystemDependency, RecordingConditions

        try:
            audio = FluidRenderer(args.sample_rate).render(perf, RecordingConditions(soundfont=args.soundfont))
        except (MissingSystemDependency, ValueError) as exc:
            raise CLIError(f"--wav: {exc}") from None
        wav = Path(args.wav)
        wav.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(wav) as tmp:
            sf.write(str(tmp), audio, args.sample_rate, format="WAV")
        _say(f"rendered with FluidSynth ({args.soundfont}) -> {wav}")
    return 0


def note_table(ref, est) -> dict[str, float]:
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.evaluation.metrics import transcription_scores

    out = transcription_scores(ref, est)
    out["n_ref"], out["n_est"] = float(len(ref.notes)), float(len(est.notes))
    return out


def format_table(m: dict[str, float]) -> str:
    rows = [("note (onset 50 ms, pitch)", "note"), ("+ offset", "note_offset"),
            ("+ offset + velocity", "note_offset_velocity"), ("frame (50 fps, key down)", "frame")]
    lines = [f"{'':28s} {'precision':>9s} {'recall':>9s} {'F1':>9s}"]
    for label, k in rows:
        lines.append(f"{label:28s} {m[k + '_p']:9.3f} {m[k + '_r']:9.3f} {m[k + '_f1']:9.3f}")
    lines.append(f"notes: reference {int(m['n_ref'])}, estimate {int(m['n_est'])}")
    if "aligned_note_f1" in m:
        lines.append(f"performance: DTW-aligned note F1 {m['aligned_note_f1']:.3f}, tempo |ln ratio| "
                     f"{m['tempo_log_error']:.3f}, velocity MAE {m['velocity_mae']:.1f}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.app.inference import InputError, read_notes

    failed = {}
    perfs = []
    for path in (args.ref, args.est):
        try:
            perfs.append(read_notes(path, args.pitch_unit))
        except InputError as exc:
            failed[path] = str(exc)
            _say(f"lmm evaluate: error: {exc}")
    if failed:
        return EXIT_FAILED
    m = note_table(*perfs)
    if args.performance:
        # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
        from lmm_utils.evaluation.metrics import performance_scores

        m.update({k: v for k, v in performance_scores(*perfs).items() if not k.startswith("note_")})
    if args.json:
        print(json.dumps(jsonable(m), indent=1))
    else:
        print(format_table(m))
    return 0


def _report(failed: dict[str, str], total: int) -> int:
    if failed:
        _say(f"{len(failed)} of {total} input(s) failed:")
        for path, why in failed.items():
            _say(f"  {path}: {why}")
        return EXIT_FAILED
    return 0


# --- parser -----------------------------------------------------------------------------------------------

def _shipped_line(kind: str) -> str:
    """Which run the shipped model came from (its provenance; shipping imports no torch, so `lmm --help` stays fast)."""
    from lmm_utils.app import shipping  # deferred: only --help and the shipped-model path need it

    try:
        prov = shipping.load_provenance()
        return f"The shipped {kind} (used outside a project, or with --shipped) is {shipping.describe(prov, kind)}."
    except (shipping.ShippingError, KeyError, TypeError):
        return f"No {kind} is shipped with this copy ({shipping.SHIP_COMMAND})."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_help = ("checkpoint folder: a run name under data/runs (e.g. lmm-K16-s0) or a path. Default: the project's "
                "run with the most pairs (lmm before supervised, lowest seed; no score read), else (no trained run "
                "here) the shipped model")
    shipped_help = ("the model shipped inside the package (lmm_utils/app/shipped; its provenance is printed), even "
                    "in a project with trained runs")

    t = sub.add_parser("transcribe", help="h: audio -> performance MIDI",
                       description="Transcribe recordings (any sample rate, mono or stereo, any length) with h. "
                                   "Writes DIR/<stem>.mid per input; a bad file is reported and skipped.")
    t.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files (wav, flac, ogg, mp3 ...)")
    t.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    which = t.add_mutually_exclusive_group()
    which.add_argument("--run", help=run_help)
    which.add_argument("--shipped", action="store_true", help=shipped_help)
    t.add_argument("--chunk", type=float, default=20.0, help="seconds per window (default 20)")
    t.add_argument("--margin", type=float, default=2.0, help="context seconds either side of a window (default 2)")
    t.add_argument("--harmonics", type=float, default=HARMONIC_RATIO, metavar="RATIO",
                   help="drop an onset an octave, twelfth or two octaves above an onset stronger than it / RATIO "
                        f"(partials heard as notes; default {HARMONIC_RATIO:g}, as the methods decode, chosen on P's "
                        "validation part, never T: README 'Harmonic suppression'; 0: off)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("-q", "--quiet", action="store_true", help="only errors")
    t.set_defaults(func=cmd_transcribe)

    f = sub.add_parser("perform", help="g: score -> performance MIDI (optionally rendered to WAV)",
                       description="Perform a score (MusicXML, MIDI, ABC, kern) with g: the whole piece, its tempo mark "
                                   "(or --tempo, or a default) and dynamics (mf where it has none). "
                                   + _shipped_line("g"))
    f.add_argument("score", metavar="SCORE")
    f.add_argument("-o", "--output", required=True, metavar="OUT.mid")
    f.add_argument("--wav", metavar="OUT.wav", help="also render the performance with FluidSynth")
    which = f.add_mutually_exclusive_group()
    which.add_argument("--run", help=run_help)
    which.add_argument("--shipped", action="store_true", help=shipped_help)
    f.add_argument("--plain", action="store_true", help="the plain performer instead of a trained g (no checkpoint)")
    f.add_argument("--tempo", type=float, help="quarter notes per minute (overrides the score's mark)")
    f.add_argument("--default-tempo", type=float, default=100.0, help="when the score has no mark (default 100)")
    f.add_argument("--dynamic", default="mf", choices=("pp", "p", "mp", "mf", "f", "ff"),
                   help="dynamics before the score's first mark (default mf)")
    f.add_argument("--soundfont", default="FluidR3_GM.sf2", help="for --wav (default FluidR3_GM.sf2)")
    f.add_argument("--sample-rate", type=int, default=44100, help="for --wav (default 44100)")
    f.add_argument("--threads", type=int, default=1)
    f.set_defaults(func=cmd_perform)

    e = sub.add_parser("evaluate", help="note metrics of an estimate against a reference",
                       description="Note P/R/F1 (onset within 50 ms, then + offset, + velocity) and frame P/R/F1 of EST "
                                   "against REF. Files: MIDI, or TSV/CSV/TXT rows 'onset offset pitch [velocity]' "
                                   "(seconds).")
    e.add_argument("ref", metavar="REF")
    e.add_argument("est", metavar="EST")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--performance", action="store_true",
                   help="also g's metrics: DTW-aligned note F1, tempo error, velocity error")
    e.add_argument("--pitch-unit", choices=("auto", "midi", "hz"), default="auto",
                   help="pitch column of TSV files (auto: MIDI if all are integers 0..127, else Hz)")
    e.set_defaults(func=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 ok, 1 an input or the run failed, 2 usage (argparse). The console script exits with it."""
    args = build_parser().parse_args(argv)
    # deferred: each subcommand imports what it runs (`lmm --help` loads no torch)
    from lmm_utils.app.inference import InputError

    try:
        return args.func(args)
    except (CLIError, InputError) as exc:
        _say(f"lmm {args.command}: error: {exc}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
