r"""The bookkeeping of the benchmark scripts that turns cached per-review results into
the claims and budgets the README quotes (the benchmarks themselves run from
benchmarks/, never in the unit tests)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import faithfulness  # noqa: E402
import shapley_budget  # noqa: E402


def _examples(as_aucs, ias_aucs):
    return [{"as_auc": a, "ias_auc": i} for a, i in zip(as_aucs, ias_aucs)]


def test_claim_rows_pick_the_best_rival_per_study_and_compute_paired_gains():
    results = {
        "sp-pi": _examples([0.6, 0.7, 0.8], [0.20, 0.30, 0.10]),
        "gae": _examples([0.5, 0.6, 0.7], [0.10, 0.20, 0.00]),     # best IAS rival
        "a-last": _examples([0.55, 0.65, 0.75], [0.3, 0.4, 0.2]),  # best AS rival
        "kernel-shap": _examples([0.9, 0.9, 0.9], [0.0, 0.0, 0.0]),  # not a 1-pass rival
    }
    rows = {row["study"]: row for row in faithfulness.claim_rows(results)}
    assert set(rows) == {"AS", "IAS"}  # no MP-PI results: only SP-PI's claim
    assert rows["AS"]["best_rival"] == "A-Last"
    assert rows["AS"]["relative_gain"] == pytest.approx((0.7 - 0.65) / 0.65)
    assert rows["AS"]["difference"] == pytest.approx(0.05)
    assert rows["AS"]["difference_ci"] == pytest.approx(0.0, abs=1e-12)  # constant differences
    assert faithfulness.verdict(rows["AS"]) == "holds"  # a constant +0.05 per review
    assert rows["IAS"]["best_rival"] == "GAE"
    assert rows["IAS"]["relative_gain"] == pytest.approx(-(0.2 - 0.1) / 0.1)
    assert rows["IAS"]["difference"] == pytest.approx(-0.1)


@pytest.mark.parametrize("differences, expected", [
    ([0.10, 0.12, 0.08, 0.11], "holds"),
    ([-0.10, -0.12, -0.08, -0.11], "reversed"),
    ([0.10, -0.12, 0.08, -0.11], "not significant"),
])
def test_verdict_follows_the_confidence_interval(differences, expected):
    ours = np.array([0.5, 0.5, 0.5, 0.5]) + np.array(differences)
    results = {"mp-pi": _examples(ours, 1 - ours), "kernel-shap": _examples([0.5] * 4, [0.5] * 4)}
    as_row = [row for row in faithfulness.claim_rows(results) if row["study"] == "AS"][0]
    assert faithfulness.verdict(as_row) == expected


def test_budget_ratio_of_mp_pi_to_kernel_shap():
    assert shapley_budget.budget_ratio({"mp-pi": 2, "kernel-shap": 8}) == "0.25"
    assert shapley_budget.budget_ratio({"kernel-shap": 8}) == "only Kernel SHAP reaches 0.95"
    assert shapley_budget.budget_ratio({"mp-pi": 4}) == "only MP-PI reaches 0.95"
    assert "neither" in shapley_budget.budget_ratio({})
