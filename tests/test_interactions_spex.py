r"""SPEX on the shapiq game of a classifier. Apart from tests/test_interactions.py because
SPEX's first call in a process compiles its BCH decoder (galois, numba): 20-40 s."""
import numpy as np
import pytest
import torch

shapiq = pytest.importorskip("shapiq")

from toy_models import tiny_classifier  # noqa: E402

from captum_pi.interactions import TextGame  # noqa: E402


def test_spex_runs_on_a_text_game_and_returns_interaction_values():
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 3]])
    game = TextGame(tiny_classifier("gpt2"), ids, target=0, feature_mask=features)
    values = shapiq.SPEX(n=4, index="FSII", max_order=2, random_state=0).approximate(300, game)
    assert isinstance(values, shapiq.InteractionValues) and values.index == "FSII"
    assert np.isfinite(values.values).all()
    assert values.estimation_budget > 2 ** 4 and game.n_rows <= 2 ** 3  # repeats are cached
    exact = shapiq.ExactComputer(game)("FSII", 2)
    assert abs(values[(0, 1)] - exact[(0, 1)]) < 0.05 * max(abs(exact[(0, 1)]), 1e-2) + 1e-3
