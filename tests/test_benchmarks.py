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


def test_cached_per_position_matches_the_model_and_counts_requested_rows():
    import torch
    from _common import CachedPerPosition
    from toy_models import tiny_classifier

    from captum_pi import PerPositionForward

    model = tiny_classifier("gpt2", n_classes=3)
    direct = PerPositionForward(model)
    cached = CachedPerPosition(model, chunk=2)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 64, (3, 12), generator=generator)
    ids[1, :7] = ids[0, :7]  # row 1's real tokens are a prefix of row 0
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 10:] = 0
    expected = direct(ids, mask)
    got = cached(ids, mask)
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert (got[~real] == 0).all()
    assert (cached.rows_requested, cached.rows_computed) == (3, 2)  # the prefix row is not computed
    # A later request for prefixes of computed rows (unpadded) is answered from the cache.
    with cached.measure() as rows:
        again = cached(ids[:1, :5])
        again_direct = cached(ids[2:, :10])
    assert rows == {"rows": 2, "computed": 0}
    assert torch.allclose(again, direct(ids[:1, :5]), atol=1e-5)
    assert torch.allclose(again_direct, direct(ids[2:, :10]), atol=1e-5)
    cached.clear()
    assert len(cached) == 0
    with cached.measure() as rows:
        cached(ids[:1, :5])
    assert rows == {"rows": 1, "computed": 1}


@pytest.mark.parametrize("masking", ["delete", "replace"])
def test_methods_and_exact_values_through_the_cache_equal_those_on_the_model(masking):
    import torch
    from _common import CachedPerPosition
    from toy_models import tiny_classifier

    from captum_pi.metrics import shapley_values
    from captum_pi.registry import METHODS

    model = tiny_classifier("gpt2", n_classes=2)
    ids = torch.randint(3, 64, (1, 14), generator=torch.Generator().manual_seed(1))
    ids[0, 0] = 1  # BOS, a fixed token
    feature_mask = torch.tensor([[-1, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4]])
    common = dict(target=1, feature_mask=feature_mask, baselines=5, masking=masking)
    cached = CachedPerPosition(model)
    exact = shapley_values(model, ids, **common).values
    assert torch.allclose(shapley_values(cached, ids, **common).values, exact, atol=1e-5)
    for name in ("mp-pi", "kernel-shap", "shapley-value-sampling"):
        on_model = METHODS[name].build(model).attribute(ids, seed=0, n_samples=12, **common)
        with cached.measure() as rows:
            through_cache = METHODS[name].build(cached).attribute(ids, seed=0, n_samples=12, **common)
        assert torch.allclose(through_cache, on_model, atol=1e-5), name
        assert rows["computed"] == 0  # every coalition was computed for the exact values
        assert rows["rows"] > 0
