"""Run one pipeline stage: a notebook, through papermill, on the project's registered kernel.

    python -m lmm_utils.pipeline.stage notebooks/01_corpus.ipynb --sections corpus [-p name=value] [--out reports/x.ipynb]
    python -m lmm_utils.pipeline.stage notebooks/06_pretrain.ipynb --sections pretrain --each modality=V,A \
        --out reports/06_pretrain_{modality}.ipynb     # one run per value, all at once, each in its own process

Each listed params.yaml section is injected as one dict parameter of the same name. The executed
notebook is written under a temporary name and renamed only when every cell has run, so a failed or
killed stage never leaves an executed notebook that looks complete (a failed run is kept as
`*.failed.ipynb` for debugging).

Why --each: a small training loop gains little from a second thread, so on 2 cores two independent notebooks side
by side, one thread each (pipeline.threads.thread_share), take about as long as one (LM^V and LM^A: README "Time"). The first run that
fails stops the others; the stage then fails.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from lmm_utils.core.params import ParamsError, load_params, section
from lmm_utils.core.paths import project_root
from lmm_utils.pipeline.checks import check_section
from lmm_utils.pipeline.threads import share_env

KERNEL_NAME = os.environ.get("LMM_KERNEL", "lmm")


class StageError(RuntimeError):
    pass


def skip_iri_grammar() -> None:
    """Keep jsonschema from importing rfc3987_syntax in this process: ~1.6 s of the 2.3 s a stage spent around its
    notebook (benchmarks/stage_start.py).

    papermill imports nbformat, which imports jsonschema, which imports rfc3987_syntax when it is installed
    (jupyterlab's jsonschema[format-nongpl] brings it) and so builds ~40 lark grammars at import, only for the
    "iri" format checker: nothing in papermill, nbformat, nbclient or jupyter_client checks formats, so the notebooks
    run and are written the same without it (jsonschema treats the module as absent). A process that imported
    jsonschema already keeps what it has.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def check_kernel(name: str = KERNEL_NAME) -> None:
    # deferred: the Jupyter stack (~1 s) loads only when a stage runs
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise StageError(
            f"Jupyter kernel {name!r} is not registered. Run `make setup` (or "
            f"`.venv/bin/python -m ipykernel install --sys-prefix --name {name}`)."
        ) from None


def check_notebook_parameters(nb_path: Path, parameters: dict) -> list[str]:
    """Refuse a notebook whose parameters cell papermill could not override; list where its defaults differ.

    papermill injects the values after the cell tagged `parameters`. Without that tag it injects at the top,
    and the notebook's own assignments would then silently win; a later cell that assigns a section again
    would win too. Both are errors. Defaults that merely differ from params.yaml (after `dvc exp run -S`, or
    an edit in JupyterLab) are reported: the stage runs with params.yaml's values either way.
    """

    skip_iri_grammar()
    import nbformat  # deferred: the Jupyter stack loads only when a notebook is read

    nb = nbformat.read(str(nb_path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    fix = "tag the cell that assigns them `parameters`, or `git checkout` the notebook"
    if not tagged:
        raise StageError(f"{nb_path.name} has no cell tagged 'parameters', so params.yaml's values could not "
                         f"override the notebook's own: {fix}")
    defaults = {}
    for node in ast.parse(code[tagged[0]].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                defaults[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                defaults[node.targets[0].id] = None
    missing = [name for name in parameters if name not in defaults]
    if missing:
        raise StageError(f"the parameters cell of {nb_path.name} does not define {missing}; "
                         "run `python -m lmm_utils.core.params sync-notebooks` or restore the cell")
    for cell in code[tagged[0] + 1:]:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # IPython magics; papermill reports real syntax errors when the cell runs
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            names = {t.id for t in targets if isinstance(t, ast.Name)} & set(parameters)
            if names:
                raise StageError(f"{nb_path.name} assigns {sorted(names)} again after its parameters cell, which would "
                                 "override params.yaml's values; read them from the parameters cell instead")
    return [f"{nb_path.name}: {where}" for name in parameters
            for where in _differences(defaults[name], parameters[name], name)][:5]


def _differences(default, value, where: str) -> list[str]:
    if isinstance(default, dict) and isinstance(value, dict):
        out = []
        for key in sorted(set(default) | set(value), key=str):
            if key not in value:
                out.append(f"{where}.{key} is in the notebook but not in params.yaml")
            elif key not in default:
                out.append(f"{where}.{key} is in params.yaml but not in the notebook")
            else:
                out += _differences(default[key], value[key], f"{where}.{key}")
        return out
    return [] if default == value else [f"{where} = {default!r} in the notebook, {value!r} in params.yaml"]


def _scalar(text: str):
    return yaml.safe_load(text)


def run_stage(notebook: str, sections: list[str], extra: dict, out: str | None = None) -> Path:
    skip_iri_grammar()
    import papermill as pm  # deferred: the Jupyter stack (~0.5 s) loads only when a stage runs

    root = project_root()
    params = load_params(root / "params.yaml")
    parameters = {name: check_section(name, section(params, name)) for name in sections}
    parameters.update(extra)
    nb_path = root / notebook
    if not nb_path.is_file():
        raise StageError(f"notebook {notebook} not found")
    differences = check_notebook_parameters(nb_path, {name: parameters[name] for name in sections})
    if differences:
        print("note: the notebook's parameters cell differs from params.yaml; the stage runs with params.yaml's "
              "values (`python -m lmm_utils.core.params sync-notebooks` makes JupyterLab runs match):\n  "
              + "\n  ".join(differences), file=sys.stderr)
    out_path = root / (out or f"reports/{nb_path.name}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.running.ipynb")
    failed = out_path.with_name(f"{out_path.stem}.failed.ipynb")
    for stale in (out_path, failed):
        stale.unlink(missing_ok=True)
    check_kernel()
    try:
        with kernel_env_without_ci():
            pm.execute_notebook(
                str(nb_path), str(tmp), parameters=parameters, kernel_name=KERNEL_NAME,
                log_output=True, progress_bar=False, cwd=str(root),
            )
    except BaseException:
        if tmp.exists():
            os.replace(tmp, failed)
        raise
    os.replace(tmp, out_path)
    return out_path


@contextlib.contextmanager
def kernel_env_without_ci():
    """$CI unset while the kernel starts (it inherits this process's environment), restored after: with $CI set,
    pyfluidsynth prints where it found libfluidsynth at import (lmm_utils/pipeline/__init__.py), and in a kernel
    that line would become a cell output in every executed notebook and stage log. No stage code reads $CI."""
    ci = os.environ.pop("CI", None)
    try:
        yield
    finally:
        if ci is not None:
            os.environ["CI"] = ci


def each_commands(notebook: str, sections: str, params: list[str], each: str, out: str | None) -> list[list[str]]:
    """--each NAME=V1,V2 -> one stage command per value (-p NAME=value, --out with {NAME} filled in)."""
    name, _, values = each.partition("=")
    vals = [v for v in values.split(",") if v]
    if not name or not vals:
        raise StageError(f"--each needs NAME=VALUE1,VALUE2 (got {each!r})")
    if out is None or "{" + name + "}" not in out:
        raise StageError(f"--each needs an --out that holds {{{name}}}: otherwise every run writes the same notebook")
    if len(set(vals)) != len(vals):
        raise StageError(f"--each repeats a value: {each!r}")
    base = [sys.executable, "-m", "lmm_utils.pipeline.stage", notebook, "--sections", sections]
    for p in params:
        base += ["-p", p]
    return [base + ["-p", f"{name}={v}", "--out", out.replace("{" + name + "}", v)] for v in vals]


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run_together(commands: list[list[str]], poll_s: float = 0.5) -> None:
    """Run the commands at once, each with its share of the cores (THREADS_ENV); wait for all. The first that fails
    stops the others -> StageError."""
    env = share_env(len(commands))
    # DVC (or a user) stopping the stage with SIGTERM must stop the runs too: raise, so `finally` terminates them.
    # (Signal handlers can only be set from the main thread; elsewhere the caller owns the signals.)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm) if main_thread else None
    procs: list[subprocess.Popen] = []
    try:
        for c in commands:  # one at a time, so a failed start still stops the ones already running
            procs.append(subprocess.Popen(c, env=env))
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(poll_s)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    bad = [" ".join(c[1:]) for c, p in zip(commands, procs) if p.returncode != 0]
    if bad:
        raise StageError("failed: " + "; ".join(bad))


def build_parser() -> argparse.ArgumentParser:
    """The runner's command line (also read back from dvc.lock's `cmd` by upstream_rebase.injected_names)."""
    parser = argparse.ArgumentParser(prog="python -m lmm_utils.pipeline.stage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook")
    parser.add_argument("--sections", default="", help="comma-separated params.yaml sections to inject")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra parameter (YAML value)")
    parser.add_argument("--out", help="executed notebook path (default reports/<notebook name>)")
    parser.add_argument("--each", metavar="NAME=V1,V2",
                        help="run the notebook once per value, all at once, each in its own process; --out holds {NAME}")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.each:
        try:
            run_together(each_commands(args.notebook, args.sections, args.param, args.each, args.out))
        except StageError as exc:
            sys.exit(f"stage error: {exc}")
        return
    extra = {}
    for item in args.param:
        name, _, value = item.partition("=")
        extra[name] = _scalar(value)
    try:
        out = run_stage(args.notebook, [s for s in args.sections.split(",") if s], extra, args.out)
    except (StageError, ParamsError) as exc:
        sys.exit(f"stage error: {exc}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
