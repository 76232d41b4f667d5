"""What a stage costs around its notebook: the wrapper (`python -m lmm_utils.pipeline.stage`) with and without
`stage.skip_iri_grammar` (jsonschema's optional IRI checker, rfc3987_syntax, builds ~40 lark grammars when papermill
imports nbformat).

    .venv/bin/python benchmarks/stage_start.py [--repeats 5] [--notebook notebooks/02_split.ipynb --sections split]
        [--out benchmarks/results/stage_start.json]

Two measurements per case, each in fresh processes, alternating the cases so that machine drift hits both:
  import   `import papermill` alone (after the skip or not): the part the skip removes
  stage    the whole wrapper on a small stage's notebook (default: split, whose outputs it rewrites with the same
           bytes; run it in a project whose split stage has run), minus papermill's own duration of the notebook:
           what every stage pays around its notebook (Python start, imports, params check, kernel start, writing)
Prints the medians and their ratio; asserts nothing. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("skip", "no_skip")
IMPORT = "from lmm_utils.pipeline import stage\n{call}\nimport papermill\n"
# the wrapper with the skip undone: skip_iri_grammar replaced by a no-op before main() runs
STAGE = "import sys\nfrom lmm_utils.pipeline import stage\n{undo}\nstage.main(sys.argv[1:])\n"


def seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def notebook_seconds(path: Path) -> float:
    return float(json.loads(path.read_text())["metadata"]["papermill"]["duration"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--notebook", default="notebooks/02_split.ipynb")
    p.add_argument("--sections", default="split")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    out_nb = ROOT / "reports" / Path(args.notebook).name
    rows: dict[str, dict[str, list[float]]] = {c: {"import": [], "stage_minus_notebook": []} for c in CASES}
    for _ in range(args.repeats):
        for case in CASES:
            call = "stage.skip_iri_grammar()" if case == "skip" else ""
            rows[case]["import"].append(seconds([sys.executable, "-c", IMPORT.format(call=call)]))
            undo = "" if case == "skip" else "stage.skip_iri_grammar = lambda: None"
            wall = seconds([sys.executable, "-c", STAGE.format(undo=undo), args.notebook, "--sections", args.sections])
            rows[case]["stage_minus_notebook"].append(wall - notebook_seconds(out_nb))
    result = {"notebook": args.notebook, "repeats": args.repeats,
              "median_s": {c: {k: round(statistics.median(v), 3) for k, v in r.items()} for c, r in rows.items()},
              "runs_s": {c: {k: [round(x, 3) for x in v] for k, v in r.items()} for c, r in rows.items()}}
    med = result["median_s"]
    result["saved_per_stage_s"] = round(med["no_skip"]["stage_minus_notebook"] - med["skip"]["stage_minus_notebook"], 3)
    result["import_ratio"] = round(med["no_skip"]["import"] / med["skip"]["import"], 2)
    print(json.dumps({k: result[k] for k in ("median_s", "saved_per_stage_s", "import_ratio")}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
