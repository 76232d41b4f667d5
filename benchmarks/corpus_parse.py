"""The corpus stage's parse with and without music21's pickle cache and beaming (lmm_utils.pipeline.music21_parse).

    .venv/bin/python benchmarks/corpus_parse.py [--works N] [--workers 0] [--out benchmarks/results/corpus_parse.json]

Each case parses the default profile's corpus (params.yaml `corpus`; the first N works of its list with --works) in a
fresh process whose music21 scratch folder is a new temporary one, as on a fresh clone:
  corpus_parse  corpus_parse: no pickle cache, no beaming (what the stage does now)
  no_pickles    parse_without_pickle_cache alone (what the stage did from bd67149)
  pickles       music21's default: parse, beam, freeze a pickle, thaw it back (what the stage did before)
  warm          music21's default again, in the scratch folder `pickles` filled (a re-run in the same venv before)
It prints the seconds and a hash of the parsed works (their JSON lines and the skipped list) per case, and whether
the hashes agree: the stage must write the same works either way. Run it on an idle machine; asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_case(case: str, works: int | None, workers: int) -> dict:
    """Runs inside the case's own process (music21's scratch folder comes from its TMPDIR)."""
    from lmm_utils.core.params import load_params
    from lmm_utils.data.corpus import list_works, parse_works
    from lmm_utils.data.music21_compat import add_bundle_iteration
    from lmm_utils.pipeline.music21_parse import corpus_parse, parse_without_pickle_cache

    section = load_params(ROOT / "params.yaml")["corpus"]
    add_bundle_iteration()
    refs = list_works(section["collections"], section.get("max_works_per_collection"), section["seed"],
                      section.get("max_works_by_collection"))[:works]
    block = {"corpus_parse": corpus_parse, "no_pickles": parse_without_pickle_cache}.get(case, contextlib.nullcontext)
    start = time.perf_counter()
    with block():
        pieces, skipped = parse_works(refs, workers)
    seconds = time.perf_counter() - start
    h = hashlib.sha256()
    for p in pieces:
        h.update(json.dumps(p.to_dict()).encode() + b"\n")
    h.update(json.dumps(skipped, sort_keys=True).encode())
    return {"case": case, "works": len(refs), "parsed": len(pieces), "seconds": round(seconds, 1),
            "sha256": h.hexdigest()[:16]}


def run_case(case: str, scratch: str, works: int | None, workers: int) -> dict:
    env = {**os.environ, "TMPDIR": scratch}  # music21's default scratch folder is $TMPDIR/music21
    cmd = [sys.executable, __file__, "--case", case, "--workers", str(workers)] + (["--works", str(works)] if works else [])
    out = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    row["pickle_files"] = len(list(Path(scratch, "music21").glob("*.p.gz")))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--works", type=int, default=None, help="the first N works of the corpus list (default all)")
    ap.add_argument("--workers", type=int, default=0, help="parse processes, as corpus.workers (0 = all cores)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(parse_case(args.case, args.works, args.workers)))
        return
    with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as fresh, \
            tempfile.TemporaryDirectory() as fresh2:
        rows = [run_case("corpus_parse", fresh2, args.works, args.workers),
                run_case("no_pickles", fresh, args.works, args.workers),
                run_case("pickles", cold, args.works, args.workers),
                run_case("warm", cold, args.works, args.workers)]
    by = {r["case"]: r for r in rows}
    result = {"rows": rows, "same_works": len({r["sha256"] for r in rows}) == 1,
              "pickles_over_no_pickles": round(by["pickles"]["seconds"] / by["no_pickles"]["seconds"], 2),
              "no_pickles_over_warm": round(by["no_pickles"]["seconds"] / by["warm"]["seconds"], 2),
              "no_pickles_over_corpus_parse": round(by["no_pickles"]["seconds"] / by["corpus_parse"]["seconds"], 2),
              "pickles_over_corpus_parse": round(by["pickles"]["seconds"] / by["corpus_parse"]["seconds"], 2),
              "cores": os.cpu_count()}
    for r in rows:
        print(f"{r['case']:>12}: {r['seconds']:6.1f} s, {r['parsed']}/{r['works']} works, {r['pickle_files']} pickles "
              f"in scratch, works hash {r['sha256']}")
    print(f"same works: {result['same_works']}; pickles / no_pickles = {result['pickles_over_no_pickles']}x; "
          f"no_pickles / corpus_parse = {result['no_pickles_over_corpus_parse']}x; "
          f"pickles / corpus_parse = {result['pickles_over_corpus_parse']}x; no_pickles / warm = {result['no_pickles_over_warm']}x")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
