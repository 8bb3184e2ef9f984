import itertools

import numpy as np
import pytest
import torch

from captum_pi.metrics import coalition_values, shapley_from_game
from toy_models import deleted_ids, exact_shapley, hf_value, tiny_classifier

IDS = torch.tensor([[1, 7, 9, 13, 21, 33, 40], [1, 5, 6, 8, 3, 0, 0]])
FEATURES = torch.tensor([[-1, 0, 0, 1, 2, 3, 3], [-1, 0, 1, 2, 2, -1, -1]])
ATTENTION = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])


def _coalitions(n):
    return [set(c) for size in range(n + 1) for c in itertools.combinations(range(n), size)]


@pytest.mark.parametrize("masking", ["delete", "replace"])
def test_every_coalition_value_is_the_models_own_prediction(masking):
    model = tiny_classifier("llama")
    result = coalition_values(model, IDS, target=1, feature_mask=FEATURES, attention_mask=ATTENTION,
                              baselines=3, masking=masking, perturbations_per_eval=5)
    for row, n in ((0, 4), (1, 3)):
        length = int(ATTENTION[row].sum())
        ids, features = IDS[row, :length], FEATURES[row, :length]
        for coalition in _coalitions(n):
            if masking == "delete":
                kept = deleted_ids(ids, features, coalition)
            else:
                keep = torch.tensor([f < 0 or f in coalition for f in features.tolist()])
                kept = torch.where(keep, ids, torch.full_like(ids, 3))
            code = sum(1 << k for k in coalition)
            assert result.games[row][code] == pytest.approx(hf_value(model, kept, 1), abs=1e-5)
    expected_rows = [2 ** 3, 2 ** 2] if masking == "delete" else [2 ** 4, 2 ** 3]
    assert result.n_samples == expected_rows and result.n_rows == sum(expected_rows)


def test_shapley_from_game_equals_enumeration_over_orders():
    game = np.random.default_rng(0).normal(size=2 ** 5)
    expected = exact_shapley(lambda s: game[sum(1 << k for k in s)], 5)
    np.testing.assert_allclose(shapley_from_game(game), expected.numpy(), atol=1e-12)
    assert shapley_from_game(game).sum() == pytest.approx(game[-1] - game[0])
    with pytest.raises(ValueError, match="2\\^n values"):
        shapley_from_game(np.zeros(6))


def test_too_many_features_are_refused_before_any_pass():
    model = tiny_classifier("gpt2")
    with pytest.raises(ValueError, match="max_features=3"):
        coalition_values(model, IDS, feature_mask=FEATURES, attention_mask=ATTENTION, max_features=3)
