import math

import numpy as np
import pytest
import torch

from captum_pi import MultiPassProgressive, feature_attributions
from toy_models import MASK_ID, RunningSumClassifier, exact_shapley, masked_value, tiny_classifier

N_FEATURES = 6
IDS = torch.randint(1, 32, (1, 2 * N_FEATURES), generator=torch.Generator().manual_seed(11))
PAIRS = torch.arange(2 * N_FEATURES).div(2, rounding_mode="floor")[None]


def _cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def _exact(model, target, target_type="prob"):
    return exact_shapley(
        lambda coalition: masked_value(model, IDS[0], PAIRS[0], coalition, target, target_type), N_FEATURES
    )


@pytest.mark.parametrize("sampling", ["optimized", "shapley"])
def test_converges_to_exact_shapley_values_on_exactness_model(sampling):
    model = RunningSumClassifier(vocab_size=32, seed=7)
    exact = _exact(model, target=0)
    mp = MultiPassProgressive(model)

    def errors(budget):
        results = []
        for seed in range(6):
            phi = feature_attributions(
                mp.attribute(IDS, target=0, feature_mask=PAIRS, baselines=MASK_ID,
                             n_samples=budget, seed=seed, sampling=sampling), PAIRS)[0]
            results.append(((phi.double() - exact).abs().max().item(), _cosine(phi, exact)))
        return np.mean(results, axis=0)

    small_error, _ = errors(4 * N_FEATURES)
    large_error, large_cosine = errors(256 * N_FEATURES)
    assert large_cosine > 0.99
    assert large_error < 0.5 * small_error
    assert large_error < 0.1 * exact.abs().max().item()


def test_paper_cell_weighting_is_biased_where_coalition_weighting_is_not():
    model = RunningSumClassifier(vocab_size=32, seed=7)
    exact = _exact(model, target=0)
    mp = MultiPassProgressive(model)
    cell, coalition = [
        np.mean([_cosine(feature_attributions(mp.attribute(
            IDS, target=0, feature_mask=PAIRS, baselines=MASK_ID, n_samples=512 * N_FEATURES,
            seed=seed, weighting=weighting), PAIRS)[0], exact) for seed in range(3)])
        for weighting in ("cell", "coalition")
    ]
    assert coalition > cell


class AdditiveLogits(torch.nn.Module):
    r"""Logits are a running sum of token embeddings: the logit game is additive, so
    Shapley values are the features' own contributions."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))

    def forward(self, input_ids, attention_mask=None):
        return (self.embedding[input_ids] * (input_ids != MASK_ID).unsqueeze(-1)).cumsum(1)


@pytest.mark.parametrize("sampling", ["optimized", "shapley"])
def test_exact_on_additive_game_at_the_default_budget(sampling):
    model = AdditiveLogits()
    phi = feature_attributions(
        MultiPassProgressive(model).attribute(
            IDS, target=1, feature_mask=PAIRS, baselines=MASK_ID, target_type="logit",
            sampling=sampling, seed=0), PAIRS)[0]
    contributions = model.embedding[IDS[0], 1].reshape(N_FEATURES, 2).sum(1)
    torch.testing.assert_close(phi, contributions, atol=1e-5, rtol=0)


@pytest.mark.parametrize("perturbations_per_eval", [1, 5, 64])
def test_efficiency_and_cost(perturbations_per_eval):
    model = tiny_classifier("gpt2")
    mp = MultiPassProgressive(model)
    ids = torch.randint(1, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    attr = mp.attribute(ids, feature_mask=PAIRS, baselines=3, masking="replace", n_samples=15, seed=1,
                        perturbations_per_eval=perturbations_per_eval)
    logits = mp.per_position(ids)[:, -1]
    empty = mp.per_position(torch.full_like(ids, 3))[:, -1]
    target = logits.argmax(-1)
    for row in range(2):
        total = torch.softmax(logits[row], -1)[target[row]] - torch.softmax(empty[row], -1)[target[row]]
        assert float(feature_attributions(attr, PAIRS)[row].sum()) == pytest.approx(float(total), abs=1e-5)
    assert mp.per_position.n_rows == 2 * 15 + 2 * 2  # the last 4 rows: the checks above
    expected_calls = 1 + 2 * -(-13 // perturbations_per_eval) + 2
    assert mp.per_position.n_calls == expected_calls


def test_results_do_not_depend_on_perturbations_per_eval():
    mp = MultiPassProgressive(RunningSumClassifier(vocab_size=32, seed=1))
    results = [mp.attribute(IDS, feature_mask=PAIRS, baselines=MASK_ID, seed=3,
                            perturbations_per_eval=size) for size in (1, 7, 100)]
    torch.testing.assert_close(results[0], results[1])
    torch.testing.assert_close(results[0], results[2])


def test_seed_reproducibility():
    mp = MultiPassProgressive(RunningSumClassifier(vocab_size=32, seed=1))
    # beyond the 2 (n - 1) deterministic border passes, the rest is drawn
    options = dict(feature_mask=PAIRS, baselines=MASK_ID, n_samples=20)
    first = mp.attribute(IDS, seed=5, **options)
    again = mp.attribute(IDS, seed=5, **options)
    other = mp.attribute(IDS, seed=6, **options)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_padding_and_batching_do_not_change_attributions():
    mp = MultiPassProgressive(tiny_classifier("llama"))
    long_ids = torch.randint(1, 64, (1, 12), generator=torch.Generator().manual_seed(5))
    short_ids = torch.randint(1, 64, (1, 7), generator=torch.Generator().manual_seed(6))
    short_mask = torch.tensor([[-1, 0, 1, 1, 2, 3, 4]])
    alone_long = mp.attribute(long_ids, feature_mask=PAIRS, baselines=4, seed=2, target=1)
    alone_short = mp.attribute(short_ids, feature_mask=short_mask, baselines=4, seed=2, target=1)
    batch = torch.cat([long_ids, torch.nn.functional.pad(short_ids, (0, 5), value=0)])
    attention = torch.tensor([[1] * 12, [1] * 7 + [0] * 5])
    batch_mask = torch.cat([PAIRS, torch.nn.functional.pad(short_mask, (0, 5), value=-1)])
    together = mp.attribute(batch, feature_mask=batch_mask, baselines=4, attention_mask=attention,
                            seed=2, target=1)
    torch.testing.assert_close(together[0], alone_long[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(together[1, :7], alone_short[0], atol=1e-5, rtol=0)


def test_single_feature_gets_the_whole_difference():
    model = RunningSumClassifier(vocab_size=32, seed=3)
    ids = IDS[:, :3]
    feature_mask = torch.tensor([[-1, 0, 0]])
    attr = MultiPassProgressive(model).attribute(ids, target=2, feature_mask=feature_mask, baselines=MASK_ID)
    full = masked_value(model, ids[0], feature_mask[0], {0}, 2)
    empty = masked_value(model, ids[0], feature_mask[0], set(), 2)
    assert float(attr[0, 1]) == pytest.approx(full - empty, abs=1e-6)


def test_progress_bar(capsys):
    mp = MultiPassProgressive(RunningSumClassifier(vocab_size=32))
    mp.attribute(IDS, feature_mask=PAIRS, baselines=MASK_ID, seed=0, show_progress=True)
    assert "MP-PI passes" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(baselines=None, masking="replace"), "needs `baselines`"),
        (dict(masking="remove"), "masking must be one of"),
        (dict(n_samples=2), "must be an int >= 3"),
        (dict(perturbations_per_eval=0), "perturbations_per_eval must be a positive int"),
        (dict(weighting="uniform"), "weighting must be one of"),
        (dict(sampling="uniform"), "sampling must be one of"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = dict(feature_mask=PAIRS, baselines=MASK_ID)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MultiPassProgressive(RunningSumClassifier(vocab_size=32)).attribute(IDS, **arguments)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_under_deletion_keeps_efficiency_and_converges_to_the_deletion_games_shapley_values(architecture):
    from toy_models import deleted_ids, hf_value

    model = tiny_classifier(architecture)
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 3]])
    n = 4
    value = lambda coalition: hf_value(model, deleted_ids(ids[0], features[0], coalition), 2)  # noqa: E731
    exact = exact_shapley(value, n)
    few = feature_attributions(MultiPassProgressive(model).attribute(
        ids, target=2, feature_mask=features, n_samples=6, seed=0), features)[0]
    assert float(few.sum()) == pytest.approx(value(set(range(n))) - value(set()), abs=1e-5)
    many = feature_attributions(MultiPassProgressive(model).attribute(
        ids, target=2, feature_mask=features, n_samples=4000, seed=0), features)[0]
    # sampling error only: the deletion game is what every pass reads
    assert torch.allclose(many.double(), exact, atol=0.05 * float(exact.abs().max()))
    cosine = float(many.double() @ exact / (many.double().norm() * exact.norm()))
    assert cosine > 0.995


@pytest.mark.parametrize("with_prefix", [True, False])
def test_exact_once_the_budget_reveals_every_coalition(with_prefix):
    from toy_models import deleted_ids, hf_value

    model = tiny_classifier("llama")
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 4]])
    if not with_prefix:
        ids, features = ids[:, 1:], features[:, 1:]
    n = 5

    def value(coalition):
        kept = deleted_ids(ids[0], features[0], coalition)
        return hf_value(model, kept if kept.numel() else torch.tensor([1]), 2)

    exact = exact_shapley(value, n)
    enough = 2 ** (n - 1) + (0 if with_prefix else 1)
    mp = MultiPassProgressive(model)
    forward = mp.per_position
    phi = feature_attributions(mp.attribute(ids, target=2, feature_mask=features, baselines=1,
                                            n_samples=enough, seed=0), features)[0]
    torch.testing.assert_close(phi.double(), exact, atol=2e-6, rtol=0)
    assert forward.n_rows == enough
    more = feature_attributions(mp.attribute(ids, target=2, feature_mask=features, baselines=1,
                                             n_samples=10 * enough, seed=1), features)[0]
    torch.testing.assert_close(more.double(), exact, atol=2e-6, rtol=0)
    assert forward.n_rows == 2 * enough  # never more passes than there are coalitions to reveal
    fewer = feature_attributions(mp.attribute(ids, target=2, feature_mask=features, baselines=1,
                                              n_samples=enough - 4, seed=0), features)[0]
    assert (fewer.double() - exact).abs().max() > 1e-4


def test_distinct_coalitions_count_each_coalition_once_with_the_shapley_kernel():
    from captum_pi._core.multi_pass import distinct_coalitions

    active = np.array([[True, False, True, True], [True, True, False, True], [True, True, True, True]])
    ends = np.arange(12, dtype=float).reshape(3, 4)
    data = distinct_coalitions(active, ends)
    codes = (data.coalitions * (1 << np.arange(4))).sum(axis=1).tolist()
    # {0} three times, {0,2}, {0,2,3}, {0,1}, {0,1,3}, {0,1,2}; the full coalition is dropped
    assert sorted(codes) == sorted([1, 5, 13, 3, 11, 7])
    assert data.values[codes.index(1)] == 0.0 and data.values[codes.index(7)] == 10.0
    sizes = data.coalitions.sum(axis=1)
    expected = [3 / (math.comb(4, k) * k * (4 - k)) for k in sizes]
    np.testing.assert_allclose(data.weights, expected)
