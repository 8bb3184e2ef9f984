import itertools
import math

import numpy as np
import pytest

from captum_pi._core.mask_distribution import (
    mask_distribution,
    shapley_cell_probabilities,
    shapley_size_probabilities,
)


def _final_run(coalition):
    run = 1
    while run < len(coalition) and coalition[-run - 1] == coalition[-1] - run:
        run += 1
    return run


def _enumerate_pooled_coalitions(distribution):
    r"""Expected count of every intermediate coalition per pass, by enumerating every
    input coalition S' with its probability and running the S+ / prefix rule."""
    n = distribution.n
    expected = {}
    for size in range(1, n):
        for inputs in itertools.combinations(range(1, n + 1), size):
            probability = distribution.input_probs[size, inputs[-1]]
            tail = tuple(range(inputs[-1] + 1, n + 1)) if distribution.extend else ()
            active = inputs + tail
            for m in range(1, min(len(active), n - 1) + 1):
                prefix = active[:m]
                expected[prefix] = expected.get(prefix, 0.0) + probability
    return expected


@pytest.mark.parametrize("n", [3, 5, 7])
@pytest.mark.parametrize("sampling, solver", [("optimized", "cells"), ("optimized", "sizes"), ("shapley", "auto")])
def test_expected_counts_match_enumeration(n, sampling, solver):
    distribution = mask_distribution(n, sampling, solver)
    expected = _enumerate_pooled_coalitions(distribution)
    cells = np.zeros((n + 1, n + 1))
    for coalition, count in expected.items():
        cells[len(coalition), coalition[-1]] += count
    np.testing.assert_allclose(distribution.cell_counts, cells, atol=1e-12)
    coalitions = list(expected)
    sizes = np.array([len(c) for c in coalitions])
    lasts = np.array([c[-1] for c in coalitions])
    runs = np.array([_final_run(c) for c in coalitions])
    np.testing.assert_allclose(
        distribution._coalition_probability(sizes, lasts, runs),
        [expected[c] for c in coalitions], atol=1e-12,
    )


@pytest.mark.parametrize("n", [4, 6])
def test_exact_coalition_weights_turn_pooled_counts_into_shapley_kernel(n):
    distribution = mask_distribution(n)
    expected = _enumerate_pooled_coalitions(distribution)
    coalitions = list(expected)
    sizes = np.array([len(c) for c in coalitions])
    weights = distribution.weights(
        sizes, np.array([c[-1] for c in coalitions]), np.array([_final_run(c) for c in coalitions]), "coalition"
    )
    weighted = np.array([expected[c] for c in coalitions]) * weights
    kernel = np.array([1 / (math.comb(n, k) * k * (n - k)) for k in sizes])
    np.testing.assert_allclose(weighted / weighted.sum(), kernel / kernel.sum(), rtol=1e-10)


def test_every_coalition_is_reachable_under_optimized_sampling():
    n = 6
    expected = _enumerate_pooled_coalitions(mask_distribution(n))
    for size in range(1, n):
        for coalition in itertools.combinations(range(1, n + 1), size):
            assert expected.get(coalition, 0.0) > 0, coalition


def test_shapley_distribution_closed_forms():
    n = 6
    sizes = shapley_size_probabilities(n)
    assert sizes.sum() == pytest.approx(1.0)
    assert sizes[1] / sizes[2] == pytest.approx((2 * 4) / (1 * 5))
    cells = shapley_cell_probabilities(n)
    np.testing.assert_allclose(cells.sum(axis=1), sizes)
    # Eqn 13 against counting subsets of size 3 whose last element is 5
    assert cells[3, 5] == pytest.approx(sizes[3] * math.comb(4, 2) / math.comb(6, 3))


def test_sampled_masks_follow_the_distribution():
    distribution = mask_distribution(5, "shapley")
    n_masks = 50000
    masks = distribution.sample(np.random.default_rng(0), n_masks)
    size_frequency = np.bincount(masks.sum(axis=1), minlength=6) / n_masks
    probabilities = shapley_size_probabilities(5)
    # 5 standard errors per size: a correct sampler fails with probability ~1e-6 for
    # any seed or numpy stream (a fixed 0.01 at 20000 masks was 3 standard errors)
    standard_error = np.sqrt(probabilities * (1 - probabilities) / n_masks)
    assert (np.abs(size_frequency - probabilities) <= 5 * standard_error).all()
    optimized = mask_distribution(5)
    tails = optimized.sample(np.random.default_rng(0), 2000)
    last_active = 4 - np.argmax(tails[:, ::-1], axis=1)
    assert (last_active == 4).all()  # S+ always runs to the last feature


def test_solver_choice_and_cache():
    assert mask_distribution(20).solver == "cells"
    assert mask_distribution(40).solver == "sizes"
    assert mask_distribution(20, solver="sizes").solver == "sizes"
    assert mask_distribution(12) is mask_distribution(12)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(n=1), "n >= 2"), (dict(n=4, sampling="uniform"), "sampling must be"),
     (dict(n=4, solver="dense"), "solver must be")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_distribution(**kwargs)


@pytest.mark.parametrize("sampling, support", [("optimized", 2 ** 4 - 1), ("shapley", 2 ** 5 - 2)])
def test_distinct_passes_are_distinct_never_unmasked_and_cover_the_support(sampling, support):
    distribution = mask_distribution(5, sampling)
    assert distribution.support_size() == support
    rng = np.random.default_rng(0)
    for wanted in (1, 7, support - 1, support, support + 10):
        masks = distribution.sample_distinct(rng, wanted)
        assert masks.shape == (min(wanted, support), 5)
        assert len({row.tobytes() for row in masks}) == len(masks)
        assert not masks.all(axis=1).any() and masks.any(axis=1).all()
        if sampling == "optimized":
            assert masks[:, -1].all()  # S+: every pass contains the last feature
    everything = distribution.sample_distinct(rng, support)
    if sampling == "optimized":
        # with the unmasked pass, the prefixes of every pass reveal every nonempty coalition
        passes = np.vstack([everything, np.ones((1, 5), dtype=bool)])
        revealed = {
            tuple(row & (np.arange(5) <= k)) for row in passes for k in range(5) if row[k]
        }
        assert revealed == {tuple(c) for c in itertools.product([False, True], repeat=5) if any(c)}


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_border_passes_reveal_every_coalition_of_size_one_and_n_minus_one(n):
    from captum_pi._core.mask_distribution import border_passes

    passes = border_passes(n)
    assert len({row.tobytes() for row in passes}) == len(passes) <= 2 * (n - 1)
    assert passes[:, -1].all() and not passes.all(axis=1).any()
    with_unmasked = np.vstack([passes, np.ones((1, n), dtype=bool)])
    revealed = {tuple(row & (np.arange(n) <= k)) for row in with_unmasked for k in range(n) if row[k]}
    for size in (1, n - 1):
        for members in itertools.combinations(range(n), size):
            assert tuple(np.isin(np.arange(n), members)) in revealed, (size, members)


def test_border_layers_beyond_the_first_come_whole():
    from captum_pi._core.mask_distribution import border_passes

    n = 6
    first = border_passes(n)
    assert np.array_equal(border_passes(n, 4), first[:4])  # layer 1 is cut to the budget
    # layer 2 adds 2 C(5, 2) = 20 passes and {1, 6}, the one of {i, 6} layer 1 leaves
    # to the unmasked pass's prefix {1}
    second = border_passes(n, len(first) + 20)
    assert np.array_equal(second, first)
    both = border_passes(n, len(first) + 21)
    assert len(both) == len(first) + 21 and len({row.tobytes() for row in both}) == len(both)
    assert not both.all(axis=1).any()
    revealed = {tuple(row & (np.arange(n) <= k)) for row in np.vstack([both, np.ones((1, n), bool)])
                for k in range(n) if row[k]}
    for size in (2, n - 2):
        for members in itertools.combinations(range(n), size):
            assert tuple(np.isin(np.arange(n), members)) in revealed, members
