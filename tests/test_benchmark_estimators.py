r"""The estimator leaderboard's table model and budgets (benchmarks/estimators.py)."""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import estimators  # noqa: E402

from captum_pi.metrics import shapley_from_game  # noqa: E402

GAME = np.random.default_rng(3).normal(size=2 ** 5)


def test_the_table_model_predicts_the_value_of_the_features_read_so_far():
    model = estimators.TableGameModel(GAME)
    ids = torch.tensor([[1, 2, 4, 6], [1, 3, 5, 0]])  # BOS, features 0, 2, 4 / BOS, features 1, 3, padding
    logits = model(ids, torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert logits[0, :, 0].tolist() == [GAME[0], GAME[1], GAME[1 + 4], GAME[1 + 4 + 16]]
    assert logits[1, :3, 0].tolist() == [GAME[0], GAME[2], GAME[2 + 8]]
    assert model.rows == 2


@pytest.mark.parametrize("name", ["MP-PI", "Kernel SHAP (Captum)", "LIME (Captum, ridge)", "Kernel SHAP (shapiq)"])
def test_estimators_get_exactly_their_budget(name):
    phi, rows = estimators.ESTIMATORS[name](GAME, 5, 10, 0)
    assert phi.shape == (5,) and rows == 10


def test_shapley_value_sampling_gets_the_permutations_that_fit():
    assert estimators.svs_permutations(10, 5) == 2 and estimators.svs_permutations(5, 5) == 1
    _, rows = estimators.ESTIMATORS["Shapley Value Sampling (Captum)"](GAME, 5, 10, 0)
    assert rows <= 10


def test_mp_pi_on_the_table_model_is_exact_once_every_coalition_is_revealed():
    phi, rows = estimators.ESTIMATORS["MP-PI"](GAME, 5, 40, 0)
    np.testing.assert_allclose(phi, shapley_from_game(GAME), atol=1e-6)  # float32 logits
    assert rows == 2 ** 4  # the prefix (BOS) gives the empty value; 16 passes reveal all
