"""The dashboard: `dvc metrics show` lists only the headline files (a few numbers per stage, all of them together
under 160 columns), the full numbers and figures are plain outputs, and `dvc plots show` draws a curated, ordered
list. Fast checks of dvc.yaml and of the headline functions; the tiny pipeline run checks the real files
(tests/pipeline/test_pipeline.py)."""
import io
import json
from contextlib import redirect_stdout

import pytest
import yaml

from lmm_utils.core.io import MAX_HEADLINE, write_headline
from lmm_utils.data import datacard
from lmm_utils.evaluation import report
from lmm_utils.lm import report as lm_report
from lmm_utils.mapping import summary
from lmm_utils.synth import stage as synth_stage

WIDTH = 160  # columns of the terminal `dvc metrics show` and `dvc exp show` must fit
# The curated plots, in the order `dvc plots show` draws them (dvc.yaml's top-level `plots:`).
PLOTS = [*(f"reports/plots/evaluate/curves/{key}.json" for key in report.PLOTTED),
         *(f"reports/dvclive/pretrain_{m}/plots/metrics/train/loss.tsv" for m in ("V", "A")),
         *(f"reports/plots/data_{name}_hist.csv" for name in ("pitch", "duration", "tempo"))]


def _dvc_yaml(root) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text())


def _entries(items) -> list[str]:
    return [i if isinstance(i, str) else next(iter(i)) for i in items or []]


def _stage_files(root) -> dict[str, list[str]]:
    """{"outs" | "metrics" | "plots": paths of every stage, foreach keys filled in (matrix paths keep ${item})}."""
    out: dict[str, list[str]] = {"outs": [], "metrics": [], "plots": []}
    for stage in _dvc_yaml(root)["stages"].values():
        keys = list(stage["foreach"]) if "foreach" in stage else [None]
        body = stage.get("do", stage)
        for kind in out:
            for path in _entries(body.get(kind)):
                out[kind] += [path.replace("${key}", k) if k else path for k in keys]
    return out


def plot_files(root) -> list[str]:
    """Every file dvc.yaml's top-level plots read, in order (a plot with a y mapping reads each of its files)."""
    files = []
    for entry in _dvc_yaml(root)["plots"]:
        name, props = next(iter(entry.items()))
        files += list(props["y"]) if isinstance(props.get("y"), dict) else [name]
    return files


def test_only_headline_files_are_metrics(root):
    files = _stage_files(root)
    assert sorted(files["metrics"]) == sorted(f"reports/headline/{n}.json"
                                              for n in ("data", "lm_V", "lm_A", "lm_M", "map", "eval", "synth"))
    assert not files["plots"], "stages declare no plots: the curated list is dvc.yaml's top-level plots"
    assert "metrics" not in _dvc_yaml(root), "no top-level metrics either"
    for full in ("reports/metrics/data.json", "reports/metrics/summary.json", "reports/metrics/evaluate.json",
                 "reports/metrics/synth.json", "reports/metrics/pretrain_V.json"):
        assert full in files["outs"], f"{full} stays a plain output"
    for written in (datacard.HEADLINE_FILE, summary.HEADLINE_FILE, report.HEADLINE_FILE, synth_stage.HEADLINE_FILE,
                    lm_report.headline_file("V"), lm_report.headline_file("A")):
        assert written.as_posix() in files["metrics"], written


def test_curated_plots_in_order_and_each_an_output(root):
    files = plot_files(root)
    assert [f for f in files if not f.endswith("val/loss.tsv")] == PLOTS
    outs = _stage_files(root)["outs"]
    for f in files:
        assert any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs), f"plot {f} is no stage's output"
    templates = {next(iter(e.values())).get("template") for e in _dvc_yaml(root)["plots"]} - {None}
    for t in templates:
        assert (root / ".dvc/plots" / f"{t}.json").is_file(), t


def test_write_headline_is_flat_small_and_rounded(tmp_path):
    out = write_headline({"a": 0.123456, "n": 3, "best": "lmm", "none": None, "nan": float("nan")},
                         tmp_path / "h.json")
    assert out == {"a": 0.1235, "n": 3, "best": "lmm"} == json.loads((tmp_path / "h.json").read_text())
    with pytest.raises(TypeError, match="nested"):
        write_headline({"nested": {"x": 1}}, tmp_path / "h.json")
    with pytest.raises(ValueError, match="at most"):
        write_headline({f"k{i}": i for i in range(MAX_HEADLINE + 1)}, tmp_path / "h.json")


def metrics_show_width(headlines: dict[str, dict]) -> tuple[int, str]:
    """The width of `dvc metrics show` for these headline files, rendered by DVC's own table code."""
    from dvc.compare import show_metrics  # deferred in a test: DVC's import is slow and only this test needs it

    buf = io.StringIO()
    with redirect_stdout(buf):
        show_metrics({"": {"data": {p: {"data": d} for p, d in headlines.items()}}}, precision=5, round_digits=True)
    text = buf.getvalue()
    return max(len(line) for line in text.splitlines()), text


def test_metrics_show_fits_160_columns_even_with_the_ablations(tmp_path):
    """Worst case: the benchmark's sweep (K=16, the ablations' gains; the longest method name), one file per stage,
    values of the sizes the stages write (F1 and bits below 10, S's log-mel L1 below 10)."""
    def row(method, f1, g_f1=0.5):
        return {"method": method, "K": 16, "seed": 0, "train": {"seconds": 1.0}, "diagnostic": {},
                "h": {"T": {"all": {"note_f1": f1}}}, "g": {"T": {"all": {"note_f1": g_f1}}}}

    runs = [row("supervised", 0.123456), row("synth_pairs", 0.654321), row("lmm", 0.5, 0.61),
            row("lmm-no_lmA", 0.6543, 0.7), row("lmm-no_lmV", 0.4, 0.7)]
    card = {"pools": {p: {"excerpts": 20000, "audio_hours": 12.3456} for p in ("U_V", "U_A", "P", "T")}}
    curves = {"supervised": (0.1, 0.2, 0.3), "lmm": (0.2, 0.05, 0.01)}  # lmm at K=16 below supervised at K=1
    pts = [{"method": m, "K": k, "mean": v} for m, vs in curves.items() for k, v in zip((1, 16, 64), vs)]
    headlines = {
        datacard.HEADLINE_FILE: datacard.headline(card),
        synth_stage.HEADLINE_FILE: synth_stage.headline({"kind": "neural",
                                                         "test": {"neural": {"logmel_l1": 0.777777}}}),
        **{lm_report.headline_file(m): lm_report.headline({"modality": m, "test": {"lm_bits_per_token": 1.870512}})
           for m in ("V", "A")},
        summary.HEADLINE_FILE: summary.headline(summary.summarize(runs), [0, 1, 4, 16, 64, 256]),
        report.HEADLINE_FILE: report.headline({report.HEADLINE_CURVE: pts}, {}),
    }
    written = {p.as_posix(): write_headline(h, tmp_path / p.name) for p, h in headlines.items()}
    assert set(written[summary.HEADLINE_FILE.as_posix()]) >= {"gain_lmA", "gain_lmV", "best_K16"}
    assert written[report.HEADLINE_FILE.as_posix()] == {"mult_K16": "<= 0.0625x"}
    width, text = metrics_show_width(written)
    assert width <= WIDTH, f"`dvc metrics show` is {width} columns wide:\n{text}"
