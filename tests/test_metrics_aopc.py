import math

import numpy as np
import pytest
import torch

from captum_pi.metrics import aopc
from metrics_toys import BOS, AdditiveLogitModel, sigmoid
from toy_models import MASK_ID

TEN_SCORES = [3.0, -1.0, 0.5, 2.0, -2.0, 1.0, 0.0, -0.5, 1.5, -3.0]
TEN_IDS = torch.tensor([[BOS] + [20 + i for i in range(10)]])
TEN_FEATURES = torch.tensor([[-1] + list(range(10))])
TEN_MODEL = AdditiveLogitModel({20 + i: s for i, s in enumerate(TEN_SCORES)})


@pytest.mark.parametrize("perturbations_per_eval", [1, 32])
def test_aopc_on_additive_model_matches_hand_computation(perturbations_per_eval):
    result = aopc(
        TEN_MODEL, TEN_IDS, torch.tensor([TEN_SCORES]), target=1, feature_mask=TEN_FEATURES,
        baselines=MASK_ID, perturbations_per_eval=perturbations_per_eval,
    )
    # 1, 5, 10, 20, 50 % of 10 features: top 1, 1, 1, 2, 5; top sums 3, 3, 3, 5, 8; total 1.5
    assert result.n_top.tolist() == [[1, 1, 1, 2, 5]]
    full = sigmoid(1.5)
    top_sums = [3.0, 3.0, 3.0, 5.0, 8.0]
    comprehensiveness = [full - sigmoid(1.5 - t) for t in top_sums]
    sufficiency = [full - sigmoid(t) for t in top_sums]
    np.testing.assert_allclose(result.comprehensiveness_per_fraction[0], comprehensiveness, atol=1e-5)
    np.testing.assert_allclose(result.sufficiency_per_fraction[0], sufficiency, atol=1e-5)
    assert result.comprehensiveness[0] == pytest.approx(sum(comprehensiveness) / 5, abs=1e-6)
    assert result.sufficiency[0] == pytest.approx(sum(sufficiency) / 5, abs=1e-6)
    assert result.full_values[0] == pytest.approx(full)
    assert result.n_rows == 1 + 2 * 3  # one unmasked row, two per distinct top size
    assert result.n_calls == math.ceil(7 / perturbations_per_eval)


def test_aopc_rounds_up_with_at_least_one_feature():
    ids = torch.tensor([[BOS] + [20 + i % 10 for i in range(30)]])
    features = torch.tensor([[-1] + list(range(30))])
    result = aopc(TEN_MODEL, ids, torch.arange(30.0)[None], feature_mask=features, baselines=MASK_ID)
    assert result.n_top.tolist() == [[1, 2, 3, 6, 15]]
    assert result.n_rows == 1 + 2 * 5
    hundred = aopc(
        TEN_MODEL, torch.tensor([[20 + i % 10 for i in range(100)]]), torch.zeros(1, 100),
        baselines=MASK_ID, fractions=(0.07,),
    )
    assert hundred.n_top.tolist() == [[7]]  # 0.07 * 100 == 7.000000000000001 in floating point
    tiny = aopc(TEN_MODEL, TEN_IDS[:, :4], torch.tensor([[0.1, 0.2, 0.3]]), feature_mask=TEN_FEATURES[:, :4], baselines=MASK_ID)
    assert tiny.n_top.tolist() == [[1, 1, 1, 1, 2]]
