"""Run one pipeline stage: a notebook, through papermill, on the project's registered kernel.

    python -m lmm_utils.stage notebooks/01_corpus.ipynb --sections corpus [-p name=value] [--out reports/x.ipynb]

Each listed params.yaml section is injected as one dict parameter of the same name. The executed
notebook is written under a temporary name and renamed only when every cell has run, so a failed or
killed stage never leaves an executed notebook that looks complete (a failed run is kept as
`*.failed.ipynb` for debugging).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from .params import load_params, section
from .paths import project_root

KERNEL_NAME = os.environ.get("LMM_KERNEL", "lmm")


class StageError(RuntimeError):
    pass


def check_kernel(name: str = KERNEL_NAME) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise StageError(
            f"Jupyter kernel {name!r} is not registered. Run `make setup` (or "
            f"`.venv/bin/python -m ipykernel install --sys-prefix --name {name}`)."
        ) from None


def _scalar(text: str):
    return yaml.safe_load(text)


def run_stage(notebook: str, sections: list[str], extra: dict, out: str | None = None) -> Path:
    import papermill as pm

    root = project_root()
    params = load_params(root / "params.yaml")
    parameters = {name: section(params, name) for name in sections}
    parameters.update(extra)
    nb_path = root / notebook
    if not nb_path.is_file():
        raise StageError(f"notebook {notebook} not found")
    out_path = root / (out or f"reports/{nb_path.name}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.running.ipynb")
    failed = out_path.with_name(f"{out_path.stem}.failed.ipynb")
    for stale in (out_path, failed):
        stale.unlink(missing_ok=True)
    check_kernel()
    try:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmm_utils.stage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook")
    parser.add_argument("--sections", default="", help="comma-separated params.yaml sections to inject")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra parameter (YAML value)")
    parser.add_argument("--out", help="executed notebook path (default reports/<notebook name>)")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.param:
        name, _, value = item.partition("=")
        extra[name] = _scalar(value)
    try:
        out = run_stage(args.notebook, [s for s in args.sections.split(",") if s], extra, args.out)
    except StageError as exc:
        sys.exit(f"stage error: {exc}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
