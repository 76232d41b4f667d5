"""evaluation.ablations_md: target minus each ablation at the same K, marked by the seed bands, and the claim rule
(a term helps h only with a gain beyond the band on two of chorales, T_timbre and T_noisy)."""
from lmm_utils.evaluation import ablations_md


def _cell(t: float, timbre: float, noisy: float, chorales: float, vel: float, sd: float = 0.01, n: int = 3) -> dict:
    h = {"note F1": t, "T_timbre note F1": timbre, "T_noisy note F1": noisy, "note F1 chorales": chorales}
    return {"n_seeds": n, "h": h, "h_std": {k: sd for k in h}, "g": {"velocity r": vel}, "g_std": {"velocity r": sd}}


SUMMARY = {
    "lmm-K0": _cell(0.70, 0.65, 0.60, 0.50, 0.20),
    "lmm-no_lmM-K0": _cell(0.69, 0.55, 0.50, 0.49, 0.20),   # gains beyond the band on T_timbre and T_noisy
    "lmm-no_recon-K0": _cell(0.80, 0.75, 0.70, 0.60, 0.25),  # lmm below it everywhere
    "lmm-no_lmV-K4": _cell(0.70, 0.65, 0.60, 0.50, 0.20),    # no lmm at K = 4: not compared
    "supervised-K4": _cell(0.90, 0.90, 0.85, 0.80, 0.30),
}


def test_rows_compare_at_the_same_K_only_and_mark_the_bands():
    rows = {r["ablation"]: r for r in ablations_md.ablation_rows(SUMMARY, "lmm")}
    assert set(rows) == {"lmm-no_lmM", "lmm-no_recon"}
    diff, where = rows["lmm-no_lmM"]["h T_timbre"]
    assert abs(diff - 0.10) < 1e-9 and where == "above"
    assert rows["lmm-no_lmM"]["h T"][1] == "overlap" and rows["lmm-no_recon"]["h T"][1] == "below"
    assert ablations_md.claim(rows["lmm-no_lmM"]) == (2, True)
    assert ablations_md.claim(rows["lmm-no_recon"]) == (0, False)


def test_lines_state_the_claim_and_survive_missing_parts():
    text = "\n".join(ablations_md.ablation_lines(SUMMARY, "lmm"))
    assert "| `lmm-no_lmM` | 0 | +0.010 | +0.100 ▲ | +0.100 ▲ |" in text
    assert "K = 0, no_lmM: its gain is beyond the seed band on 2 of chorales, T_timbre and T_noisy, so the claim that it helps h holds" in text
    assert "no_recon" in text and "does not hold" in text
    one_seed = {"lmm-K0": _cell(0.7, 0.6, 0.5, 0.4, 0.2, n=1), "lmm-no_lmM-K0": {"n_seeds": 1, "h": {"note F1": 0.6}}}
    lines = ablations_md.ablation_lines(one_seed, "lmm")
    assert "+0.100 (1 seed)" in lines[2] and "–" in lines[2]
    assert ablations_md.ablation_lines({"supervised-K1": _cell(0.5, 0.5, 0.5, 0.5, 0.1)}, "lmm")[0].startswith("- no")
