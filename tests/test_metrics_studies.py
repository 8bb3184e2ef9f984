import itertools
import math

import numpy as np
import pytest
import torch

from captum_pi import PerPositionForward, SinglePassProgressive, feature_attributions
from captum_pi.metrics import (
    ActivationStudyResult,
    activation_study,
    aopc,
    inverse_activation_study,
    mean_confidence_interval,
)
from metrics_toys import ADDITIVE, BOS, FEATURES, IDS, S, sigmoid, trapezoid_area
from toy_models import MASK_ID, tiny_classifier


def test_activation_study_on_additive_model_matches_hand_computation_and_is_optimal():
    attributions = torch.tensor([S])
    result = activation_study(ADDITIVE, IDS, attributions, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    # Descending scores 2.0, 1.5, 0.5, -1.0, -2.5 give running sums:
    expected_curve = [sigmoid(x) for x in [0.0, 2.0, 3.5, 4.0, 3.0, 0.5]]
    np.testing.assert_allclose(result.curves[0], expected_curve, atol=1e-5)
    assert result.orders[0].tolist() == [0, 4, 2, 1, 3]
    assert result.areas[0] == pytest.approx(trapezoid_area(expected_curve), abs=1e-6)
    best = max(
        trapezoid_area([sigmoid(sum(S[i] for i in order[:j])) for j in range(6)])
        for order in itertools.permutations(range(5))
    )
    assert result.areas[0] == pytest.approx(best, abs=1e-6)
    assert result.study == "activation"


def test_inverse_activation_study_on_additive_model_matches_hand_computation_and_is_optimal():
    result = inverse_activation_study(
        ADDITIVE, IDS, torch.tensor([S]), target=1, feature_mask=FEATURES, baselines=MASK_ID
    )
    expected_curve = [sigmoid(x) for x in [0.0, -2.5, -3.5, -3.0, -1.5, 0.5]]
    np.testing.assert_allclose(result.curves[0], expected_curve, atol=1e-5)
    worst = min(
        trapezoid_area([sigmoid(sum(S[i] for i in order[:j])) for j in range(6)])
        for order in itertools.permutations(range(5))
    )
    assert result.areas[0] == pytest.approx(worst, abs=1e-6)
    assert result.study == "inverse_activation"


def test_a_worse_attribution_gets_a_lower_activation_area():
    wrong = torch.tensor([[-2.0, 1.0, -0.5, 2.5, -1.5]])
    result = activation_study(ADDITIVE, IDS, wrong, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    expected_curve = [sigmoid(x) for x in [0.0, -2.5, -3.5, -3.0, -1.5, 0.5]]
    assert result.areas[0] == pytest.approx(trapezoid_area(expected_curve), abs=1e-6)


def test_ties_keep_sequence_order_in_both_studies():
    zeros = torch.zeros(1, 5)
    running = [0.0] + list(itertools.accumulate(S))
    for study in (activation_study, inverse_activation_study):
        result = study(ADDITIVE, IDS, zeros, target=1, feature_mask=FEATURES, baselines=MASK_ID)
        assert result.orders[0].tolist() == [0, 1, 2, 3, 4]
        np.testing.assert_allclose(result.curves[0], [sigmoid(x) for x in running], atol=1e-5)
    tied = torch.tensor([[1.0, 3.0, 1.0, 3.0, 0.0]])
    descending = activation_study(ADDITIVE, IDS, tied, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    ascending = inverse_activation_study(ADDITIVE, IDS, tied, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    assert descending.orders[0].tolist() == [1, 3, 0, 2, 4]
    assert ascending.orders[0].tolist() == [4, 0, 2, 1, 3]


def test_ties_keep_sequence_order_with_many_features():
    ids = torch.tensor([[BOS] + [5 + i % 5 for i in range(40)]])
    features = torch.tensor([[-1] + list(range(40))])
    attributions = torch.tensor([[1.0 if i % 3 == 0 else 0.0 for i in range(40)]])
    result = activation_study(ADDITIVE, ids, attributions, target=1, feature_mask=features, baselines=MASK_ID)
    ones = [i for i in range(40) if i % 3 == 0]
    assert result.orders[0].tolist() == ones + [i for i in range(40) if i % 3 != 0]


def test_default_target_is_predicted_class_and_other_class_mirrors_the_curve():
    attributions = torch.tensor([S])
    default = activation_study(ADDITIVE, IDS, attributions, feature_mask=FEATURES, baselines=MASK_ID)
    assert default.targets.tolist() == [1]  # total score 0.5 > 0
    other = activation_study(ADDITIVE, IDS, attributions, target=0, feature_mask=FEATURES, baselines=MASK_ID)
    np.testing.assert_allclose(other.curves[0], 1.0 - default.curves[0], atol=1e-5)


def test_token_level_attributions_give_the_same_study_as_per_feature_ones():
    ids = torch.tensor([[BOS, 5, 5, 6, 7, 7, 7, 8]])
    words = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3]])
    per_feature = torch.tensor([[0.3, -1.0, 2.0, 0.1]])
    token_level = torch.tensor([[0.0, 0.3, 0.3, -1.0, 2.0, 2.0, 2.0, 0.1]])
    first = activation_study(ADDITIVE, ids, per_feature, target=1, feature_mask=words, baselines=MASK_ID)
    second = activation_study(ADDITIVE, ids, token_level, target=1, feature_mask=words, baselines=MASK_ID)
    np.testing.assert_allclose(first.curves[0], second.curves[0])
    # words 2 (7,7,7 -> 1.5), 0 (5,5 -> 4.0), 3 (8 -> -2.5), 1 (6 -> -1.0)
    expected = [sigmoid(x) for x in [0.0, 1.5, 5.5, 3.0, 2.0]]
    np.testing.assert_allclose(first.curves[0], expected, atol=1e-5)
    broken = token_level.clone()
    broken[0, 2] = 0.7
    with pytest.raises(ValueError, match="FeatureAblation"):
        activation_study(ADDITIVE, ids, broken, target=1, feature_mask=words, baselines=MASK_ID)


@pytest.mark.parametrize("perturbations_per_eval", [1, 3, 64])
def test_batched_padded_examples_match_single_examples_and_rows_are_counted(perturbations_per_eval):
    short_ids = torch.tensor([[BOS, 9, 6, 0, 0]])
    short_words = torch.tensor([[-1, 0, 1, -1, -1]])
    ids = torch.cat([torch.tensor([[BOS, 5, 6, 7, 8]]), short_ids])
    words = torch.tensor([[-1, 0, 1, 2, 3], [-1, 0, 1, -1, -1]])
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    attributions = torch.tensor([[0.1, 0.4, -0.2, 0.3], [1.0, 2.0, float("nan"), float("nan")]])
    forward = PerPositionForward(ADDITIVE)
    together = activation_study(
        forward, ids, attributions, target=1, feature_mask=words, baselines=MASK_ID,
        attention_mask=attention, perturbations_per_eval=perturbations_per_eval,
    )
    total_rows = (4 + 1) + (2 + 1)
    assert (together.n_rows, together.n_calls) == (total_rows, math.ceil(total_rows / perturbations_per_eval))
    assert (forward.n_rows, forward.n_calls) == (together.n_rows, together.n_calls)
    again = activation_study(
        forward, ids, attributions, target=1, feature_mask=words, baselines=MASK_ID,
        attention_mask=attention, perturbations_per_eval=perturbations_per_eval,
    )
    assert (again.n_rows, again.n_calls) == (together.n_rows, together.n_calls)  # counts are per call
    assert forward.n_rows == 2 * total_rows
    alone = activation_study(
        ADDITIVE, short_ids[:, :3], attributions[1:, :2], target=1, feature_mask=short_words[:, :3], baselines=MASK_ID
    )
    np.testing.assert_allclose(together.curves[1], alone.curves[0], atol=1e-5)
    np.testing.assert_allclose(together.curves[1], [sigmoid(x) for x in [0.0, -1.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(together.curves[0], [sigmoid(x) for x in [0.0, -1.0, -3.5, -1.5, -1.0]], atol=1e-6)


def test_activation_study_on_tiny_gpt2_matches_hugging_face_predictions_on_masked_inputs():
    model = tiny_classifier("gpt2")
    ids = torch.tensor([[BOS, 12, 40, 41, 7, 33, 20]])
    words = torch.tensor([[-1, 0, 1, 1, 2, 3, 4]])
    attributions = torch.tensor([[0.2, -0.4, 0.9, 0.0, -0.1]])
    mask_id = 3
    result = activation_study(model, ids, attributions, target=2, feature_mask=words, baselines=mask_id, masking="replace")
    order = [2, 0, 3, 4, 1]
    expected = []
    for j in range(6):
        keep = [f < 0 or f in order[:j] for f in words[0].tolist()]
        masked = torch.where(torch.tensor(keep), ids[0], torch.tensor(mask_id))
        with torch.no_grad():
            expected.append(float(torch.softmax(model(input_ids=masked[None]).logits[0], -1)[2]))
    np.testing.assert_allclose(result.curves[0], expected, atol=1e-5)


def test_invalid_arguments_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="masking='replace' needs `baselines`"):
        activation_study(ADDITIVE, IDS, torch.tensor([S]), feature_mask=FEATURES, masking="replace")
    with pytest.raises(ValueError, match="masking must be one of"):
        aopc(ADDITIVE, IDS, torch.tensor([S]), feature_mask=FEATURES, masking="mask")
    with pytest.raises(ValueError, match=r"per feature \[B, 5\] or per token \[B, 6\]"):
        activation_study(ADDITIVE, IDS, torch.zeros(1, 4), feature_mask=FEATURES, baselines=MASK_ID)
    with pytest.raises(ValueError, match="finite"):
        activation_study(ADDITIVE, IDS, torch.tensor([[1.0, float("nan"), 0, 0, 0]]), feature_mask=FEATURES, baselines=MASK_ID)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        aopc(ADDITIVE, IDS, torch.tensor([S]), feature_mask=FEATURES, baselines=MASK_ID, perturbations_per_eval=0)
    with pytest.raises(ValueError, match="fractions"):
        aopc(ADDITIVE, IDS, torch.tensor([S]), feature_mask=FEATURES, baselines=MASK_ID, fractions=(0.0, 0.5))


def test_mean_confidence_interval_is_the_student_t_interval_and_drops_nan():
    interval = mean_confidence_interval([1.0, 2.0, 3.0, float("nan"), 4.0])
    # sd = sqrt(5/3), t_{0.975, 3} = 3.182446305284263
    assert interval.mean == pytest.approx(2.5)
    assert interval.half_width == pytest.approx(3.182446305284263 * math.sqrt(5 / 3) / 2, rel=1e-9)
    assert interval.n_examples == 4
    assert (interval.low, interval.high) == pytest.approx((2.5 - interval.half_width, 2.5 + interval.half_width))
    assert math.isnan(mean_confidence_interval([0.7]).half_width)


def test_study_summary_and_mean_curve_and_concatenate():
    scores = torch.tensor([S, [0.0, 1.0, 0.0, -1.0, 2.0], [-1.0, 0.5, 0.2, 0.1, 3.0]])
    ids = IDS.repeat(3, 1)
    result = activation_study(ADDITIVE, ids, scores, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    assert result.summary().mean == pytest.approx(result.areas.mean())
    grid, mean = result.mean_curve(n_points=11)  # the grid holds every j / 5
    assert np.trapezoid(mean, grid) == pytest.approx(result.areas.mean(), abs=1e-6)
    np.testing.assert_allclose(mean[::2], np.mean(result.curves, axis=0), atol=1e-6)
    parts = [
        activation_study(ADDITIVE, ids[i : i + 1], scores[i : i + 1], target=1, feature_mask=FEATURES, baselines=MASK_ID)
        for i in range(3)
    ]
    joined = ActivationStudyResult.concatenate(parts)
    np.testing.assert_allclose(joined.areas, result.areas)
    assert joined.n_rows == 18


def test_metrics_accept_progressive_attributions_end_to_end():
    model = tiny_classifier("llama")
    ids = torch.randint(4, 64, (3, 9), generator=torch.Generator().manual_seed(2))
    ids[:, 0] = BOS
    words = torch.tensor([[-1, 0, 0, 1, 2, 2, 3, 4, 5]])
    attr = SinglePassProgressive(model).attribute(ids, feature_mask=words)
    per_feature = feature_attributions(attr, words)
    token_study = activation_study(model, ids, attr, feature_mask=words, baselines=3)
    feature_study = activation_study(model, ids, per_feature, feature_mask=words, baselines=3)
    np.testing.assert_allclose(token_study.areas, feature_study.areas, atol=1e-6)
    assert ((token_study.areas >= 0) & (token_study.areas <= 1)).all()
    assert token_study.n_rows == 3 * 7


def test_activation_study_and_aopc_under_deletion_match_the_models_own_predictions():
    from toy_models import deleted_ids, hf_value

    model = tiny_classifier("qwen2")
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 3]])
    scores = torch.tensor([[0.5, -1.0, 2.0, 0.1]])
    value = lambda coalition: hf_value(model, deleted_ids(ids[0], features[0], coalition), 1)  # noqa: E731
    study = activation_study(model, ids, scores, target=1, feature_mask=features)
    order = [2, 0, 3, 1]
    expected = [value(set(order[:k])) for k in range(5)]
    np.testing.assert_allclose(study.curves[0], expected, atol=1e-5)
    result = aopc(model, ids, scores, target=1, feature_mask=features, fractions=(0.5,))
    full = value({0, 1, 2, 3})
    assert result.comprehensiveness[0] == pytest.approx(full - value({1, 3}), abs=1e-5)
    assert result.sufficiency[0] == pytest.approx(full - value({0, 2}), abs=1e-5)
