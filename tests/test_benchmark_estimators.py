r"""The estimator leaderboard's table model and budgets (benchmarks/estimators.py)."""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import estimators  # noqa: E402
import game_tables  # noqa: E402

from captum_pi.metrics import shapley_from_game  # noqa: E402

GAME = np.random.default_rng(3).normal(size=2 ** 5)
TABLE = {"game": GAME, "masking": np.array("delete")}


class MaskSeenClassifier(torch.nn.Module):
    r"""A causal running-sum classifier whose mask token has an embedding of its own,
    so that under replacement its intermediate predictions are not the game's values
    (the masked features after a position still change the final prediction)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embedding = torch.nn.Parameter(torch.randn(32, 8, generator=generator))
        self.out = torch.nn.Parameter(torch.randn(8, 2, generator=generator))

    def forward(self, input_ids, attention_mask=None):
        state = self.embedding[input_ids].cumsum(dim=1)
        return torch.tanh(state) @ self.out


def _replacement_review(n: int = 5, seed: int = 0):
    model = MaskSeenClassifier(seed)
    features = torch.randint(2, 32, (1, n), generator=torch.Generator().manual_seed(seed))
    ids = torch.cat([torch.tensor([[estimators.BOS]]), features], dim=1)
    feature_mask = torch.tensor([[-1] + list(range(n))])
    table = game_tables.replacement_table(model, ids, feature_mask, estimators.MASK_ID, label=1)
    return model, ids, feature_mask, {**table, "masking": np.array("replace")}


def test_the_table_model_predicts_the_value_of_the_features_read_so_far():
    model = estimators.TableGameModel(GAME)
    ids = torch.tensor([[1, 2, 4, 6], [1, 3, 5, 0]])  # BOS, features 0, 2, 4 / BOS, features 1, 3, padding
    logits = model(ids, torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert logits[0, :, 0].tolist() == [GAME[0], GAME[1], GAME[1 + 4], GAME[1 + 4 + 16]]
    assert logits[1, :3, 0].tolist() == [GAME[0], GAME[2], GAME[2 + 8]]
    assert model.rows == 2


@pytest.mark.parametrize("name", ["MP-PI", "Kernel SHAP (Captum)", "LIME (Captum, ridge)", "Kernel SHAP (shapiq)"])
def test_estimators_get_exactly_their_budget(name):
    phi, rows = estimators.ESTIMATORS[name](TABLE, 5, 10, 0)
    assert phi.shape == (5,) and rows == 10


def test_shapley_value_sampling_gets_the_permutations_that_fit():
    assert estimators.svs_permutations(10, 5) == 2 and estimators.svs_permutations(5, 5) == 1
    _, rows = estimators.ESTIMATORS["Shapley Value Sampling (Captum)"](TABLE, 5, 10, 0)
    assert rows <= 10


def test_mp_pi_on_the_table_model_is_exact_once_every_coalition_is_revealed():
    phi, rows = estimators.ESTIMATORS["MP-PI"](TABLE, 5, 40, 0)
    np.testing.assert_allclose(phi, shapley_from_game(GAME), atol=1e-6)  # float32 logits
    assert rows == 2 ** 4  # the prefix (BOS) gives the empty value; 16 passes reveal all


def test_a_replacement_table_holds_every_coalition_and_what_each_pass_reads():
    model, ids, feature_mask, table = _replacement_review()
    n = 5
    for code in range(2 ** n):
        masked = ids.clone()
        for feature in range(n):
            if not code >> feature & 1:
                masked[0, 1 + feature] = estimators.MASK_ID
        with torch.no_grad():
            probs = torch.softmax(model(masked)[0].double(), dim=-1)[:, 1].numpy()
        np.testing.assert_allclose(table["reads"][code], probs[1:], rtol=1e-6)
        assert table["game"][code] == pytest.approx(probs[-1], rel=1e-6)
    prefix_only = table["reads"][np.arange(2 ** n) & 1, 0]  # reads after feature 0 see only feature 0
    np.testing.assert_array_equal(table["reads"][:, 0], prefix_only)
    assert table["rows"] == 2 ** n


def test_the_table_model_replays_replacement_reads_where_pi_is_not_exact():
    _, _, _, table = _replacement_review()
    model = estimators.TableGameModel(table["game"], table["reads"])
    ids = torch.tensor([[1, 2, 0, 4, 0, 6]])  # BOS, feature 0, masked 1, feature 2, masked 3, feature 4
    values = model(ids)[0, :, 0].numpy()
    np.testing.assert_array_equal(values, [table["game"][0], *(table["reads"][code, k] for k, code in
                                                               enumerate([1, 1, 5, 5, 21]))])
    assert np.abs(table["reads"][5, 2] - table["game"][5]) > 1e-3  # the premise fails: a real test


@pytest.mark.parametrize("name", ["mp-pi", "kernel-shap"])
def test_estimators_on_a_replacement_table_match_the_model_it_replays(name):
    from captum_pi import feature_attributions
    from captum_pi.registry import METHODS

    model, ids, feature_mask, table = _replacement_review()
    direct = METHODS[name].build(model).attribute(ids, target=1, feature_mask=feature_mask, n_samples=8, seed=0,
                                                  masking="replace", baselines=estimators.MASK_ID)
    title = {"mp-pi": "MP-PI", "kernel-shap": "Kernel SHAP (Captum)"}[name]
    replayed, rows = estimators.ESTIMATORS[title](table, 5, 8, 0)
    np.testing.assert_allclose(replayed, feature_attributions(direct.double(), feature_mask)[0].numpy(),
                               atol=1e-6)  # the model computes in float32
    assert rows == 8


def test_a_replacement_table_without_reads_is_refused():
    with pytest.raises(ValueError, match="rerun benchmarks/game_tables.py"):
        estimators.ESTIMATORS["MP-PI"]({"game": GAME, "masking": np.array("replace")}, 5, 10, 0)
