"""stale_metrics: a K taken out of the sweep takes its runs' flat metrics with it, and nothing else."""
from lmm_utils.core.paths import run_metrics_path
from lmm_utils.pipeline.stale_metrics import prune_flat_metrics


def test_runs_outside_the_grid_go_and_everything_else_stays(tmp_path):
    for K in (1, 4, 8):
        for seed in (0, 1):
            p = run_metrics_path(tmp_path, "supervised", K, seed)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("{}")
    (tmp_path / "supervised/notes.json").write_text("{}")                     # not a run's name
    other = run_metrics_path(tmp_path, "lmm", 4, 0)
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    gone = prune_flat_metrics(tmp_path, "supervised", [(1, 0), (1, 1), (8, 0), (8, 1)])
    assert [p.name for p in gone] == ["supervised-K4-s0.json", "supervised-K4-s1.json"]
    left = sorted(p.name for p in (tmp_path / "supervised").iterdir())
    assert left == ["notes.json", "supervised-K1-s0.json", "supervised-K1-s1.json", "supervised-K8-s0.json",
                    "supervised-K8-s1.json"]
    assert other.is_file()
    assert prune_flat_metrics(tmp_path / "nowhere", "supervised", []) == []
