"""Judging a label-free selection: over every seed subset, the F1 of the seed a criterion picks."""
from __future__ import annotations

import pytest

from lmm_utils.evaluation.selection import selection_groups, selection_lines, selection_summary


def _rows(f1s: list[float], recon: list[float], lmM: list[float], method: str = "lmm", K: int = 0) -> list[dict]:
    return [{"method": method, "K": K, "seed": s, "f1": f, "recon": r, "lmM": m}
            for s, (f, r, m) in enumerate(zip(f1s, recon, lmM))]


def test_a_criterion_that_ranks_like_f1_picks_the_best_and_an_inverted_one_the_worst():
    f1 = [0.6, 0.9, 0.7, 0.8]
    rows = _rows(f1, recon=[-x for x in f1], lmM=f1)          # recon inverted, LM^M aligned
    (g,) = selection_groups(rows, pick_from=3)
    assert g["subsets"] == 4 and g["seeds"] == [0, 1, 2, 3]
    assert g["pick_lmM"] == pytest.approx(g["best"]) and g["pick_recon"] == pytest.approx(g["worst"])
    assert g["worst"] < g["random"] < g["best"]
    s = selection_summary([g], rows)
    assert s["K=0"]["gain_lmM"] > 0 > s["K=0"]["gain_recon"] and s["K>=1"] == {}
    assert s["spearman_K0"]["lmM"] == pytest.approx(1.0) and s["spearman_K0"]["recon"] == pytest.approx(-1.0)
    assert "| K = 0 | 1 |" in "\n".join(selection_lines(s))


def test_groups_of_one_seed_are_left_out_and_pick_from_one_is_refused():
    rows = _rows([0.5], [0.0], [0.0]) + _rows([0.5, 0.7], [1.0, 0.0], [0.0, 1.0], K=4)
    groups = selection_groups(rows)
    assert [(g["method"], g["K"]) for g in groups] == [("lmm", 4)] and groups[0]["subsets"] == 1
    with pytest.raises(ValueError, match="pick_from"):
        selection_groups(rows, pick_from=1)


def test_a_tie_is_worth_the_tied_seeds_mean_and_a_repeated_seed_is_refused():
    rows = _rows([0.6, 0.9, 0.7], recon=[1.0, 1.0, 0.0], lmM=[0.0, 0.0, 0.0])
    (g,) = selection_groups(rows)
    assert g["pick_recon"] == pytest.approx(0.75) and g["pick_lmM"] == pytest.approx(g["random"])
    with pytest.raises(ValueError, match="twice"):
        selection_groups(rows + rows[:1])
