import itertools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from captum_pi import (  # noqa: E402
    MultiPassProgressive,
    PerPositionForward,
    SinglePassProgressive,
    feature_attributions,
)
from captum_pi.metrics import (  # noqa: E402
    ActivationStudyResult,
    FidelityResult,
    activation_study,
    aopc,
    inverse_activation_study,
    mean_confidence_interval,
    plot_activation_curves,
    plot_fidelity_gap,
    progressive_fidelity,
    progressive_shapley_values,
    shapley_agreement,
    shapley_values,
)
from toy_models import MASK_ID, RunningSumClassifier, exact_shapley, masked_value, tiny_classifier  # noqa: E402

BOS = 1


class AdditiveLogitModel(nn.Module):
    r"""Two classes; at every position the logit of class 1 minus that of class 0 is
    the running sum of per-token scores (the mask token and BOS score 0), so
    ``p(1 | x_S) = sigmoid(sum_{i in S} s_i)``. A pairwise term ``interaction`` is
    added once both tokens ``pair`` have been read."""

    def __init__(self, scores: dict, interaction: float = 0.0, pair: tuple = (0, 0)) -> None:
        super().__init__()
        table = torch.zeros(64, dtype=torch.float64)
        for token, score in scores.items():
            table[token] = score
        self.table = table
        self.interaction = interaction
        self.pair = pair

    def forward(self, input_ids: Tensor, attention_mask: Tensor = None) -> Tensor:
        scores = self.table[input_ids]
        if attention_mask is not None:
            scores = scores * attention_mask
        running = scores.cumsum(dim=1)
        seen_first = (input_ids == self.pair[0]).cumsum(1).clamp(max=1)
        seen_second = (input_ids == self.pair[1]).cumsum(1).clamp(max=1)
        running = running + self.interaction * seen_first * seen_second
        return torch.stack([torch.zeros_like(running), running], dim=-1)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def trapezoid_area(points: list) -> float:
    step = 1.0 / (len(points) - 1)
    return sum((a + b) / 2 * step for a, b in zip(points[:-1], points[1:]))


# Five one-token features after a fixed BOS token; token 5 + i carries score S[i].
S = [2.0, -1.0, 0.5, -2.5, 1.5]
IDS = torch.tensor([[BOS, 5, 6, 7, 8, 9]])
FEATURES = torch.tensor([[-1, 0, 1, 2, 3, 4]])
ADDITIVE = AdditiveLogitModel({5 + i: s for i, s in enumerate(S)})


def test_activation_study_on_additive_model_matches_hand_computation_and_is_optimal():
    attributions = torch.tensor([S])
    result = activation_study(ADDITIVE, IDS, attributions, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    # Descending scores 2.0, 1.5, 0.5, -1.0, -2.5 give running sums:
    expected_curve = [sigmoid(x) for x in [0.0, 2.0, 3.5, 4.0, 3.0, 0.5]]
    np.testing.assert_allclose(result.curves[0], expected_curve, atol=1e-6)
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
    np.testing.assert_allclose(result.curves[0], expected_curve, atol=1e-6)
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
        np.testing.assert_allclose(result.curves[0], [sigmoid(x) for x in running], atol=1e-6)
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
    np.testing.assert_allclose(other.curves[0], 1.0 - default.curves[0], atol=1e-6)


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
    np.testing.assert_allclose(first.curves[0], expected, atol=1e-6)
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
    np.testing.assert_allclose(together.curves[1], alone.curves[0], atol=1e-6)
    np.testing.assert_allclose(together.curves[1], [sigmoid(x) for x in [0.0, -1.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(together.curves[0], [sigmoid(x) for x in [0.0, -1.0, -3.5, -1.5, -1.0]], atol=1e-6)


def test_activation_study_on_tiny_gpt2_matches_hugging_face_predictions_on_masked_inputs():
    model = tiny_classifier("gpt2")
    ids = torch.tensor([[BOS, 12, 40, 41, 7, 33, 20]])
    words = torch.tensor([[-1, 0, 1, 1, 2, 3, 4]])
    attributions = torch.tensor([[0.2, -0.4, 0.9, 0.0, -0.1]])
    mask_id = 3
    result = activation_study(model, ids, attributions, target=2, feature_mask=words, baselines=mask_id)
    order = [2, 0, 3, 4, 1]
    expected = []
    for j in range(6):
        keep = [f < 0 or f in order[:j] for f in words[0].tolist()]
        masked = torch.where(torch.tensor(keep), ids[0], torch.tensor(mask_id))
        with torch.no_grad():
            expected.append(float(torch.softmax(model(input_ids=masked[None]).logits[0], -1)[2]))
    np.testing.assert_allclose(result.curves[0], expected, atol=1e-5)


def test_invalid_arguments_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="baselines"):
        activation_study(ADDITIVE, IDS, torch.tensor([S]), feature_mask=FEATURES)
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


# ------------------------------------------------------------------------ AOPC

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
    np.testing.assert_allclose(result.comprehensiveness_per_fraction[0], comprehensiveness, atol=1e-6)
    np.testing.assert_allclose(result.sufficiency_per_fraction[0], sufficiency, atol=1e-6)
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


# ------------------------------------------------------------------- Shapley

GAME_SCORES = {30: 1.0, 31: -2.0, 32: 0.5, 33: 3.0, 34: -0.25, 35: 0.75, 36: 1.5}
GAME_IDS = torch.tensor([[BOS, 30, 31, 32, 33, 34, 35, 36]])
GAME_FEATURES = torch.tensor([[-1, 0, 1, 2, 3, 4, 5, 6]])


@pytest.mark.parametrize("perturbations_per_eval", [7, 64])
def test_exact_shapley_splits_a_pairwise_interaction_equally(perturbations_per_eval):
    model = AdditiveLogitModel(GAME_SCORES, interaction=2.0, pair=(31, 35))
    forward = PerPositionForward(model)
    result = shapley_values(
        forward, GAME_IDS, target=1, feature_mask=GAME_FEATURES, baselines=MASK_ID,
        target_type="logit", perturbations_per_eval=perturbations_per_eval,
    )
    expected = [1.0, -2.0 + 1.0, 0.5, 3.0, -0.25, 0.75 + 1.0, 1.5]
    np.testing.assert_allclose(result.values[0].numpy(), expected, atol=1e-6)
    assert result.exact == [True]
    assert result.n_rows == 2 ** 7 == forward.n_rows
    assert result.n_calls == math.ceil(128 / perturbations_per_eval)


def test_kernel_shap_beyond_the_exact_limit_recovers_additive_and_approximates_interaction():
    additive = AdditiveLogitModel(GAME_SCORES)
    result = shapley_values(
        additive, GAME_IDS, target=1, feature_mask=GAME_FEATURES, baselines=MASK_ID,
        target_type="logit", max_exact_features=4,
    )
    assert result.exact == [False] and result.n_samples == [16 * 7]
    assert result.n_rows == 16 * 7 + 1  # Kernel SHAP's coalitions + the unmasked input
    np.testing.assert_allclose(result.values[0].numpy(), list(GAME_SCORES.values()), atol=1e-3)
    interacting = AdditiveLogitModel(GAME_SCORES, interaction=2.0, pair=(31, 35))
    estimate = shapley_values(
        interacting, GAME_IDS, target=1, feature_mask=GAME_FEATURES, baselines=MASK_ID,
        target_type="logit", max_exact_features=4, n_samples=400, seed=3,
    )
    exact = shapley_values(
        interacting, GAME_IDS, target=1, feature_mask=GAME_FEATURES, baselines=MASK_ID, target_type="logit"
    )
    agreement = shapley_agreement(
        interacting, GAME_IDS, estimate.values, feature_mask=GAME_FEATURES, baselines=MASK_ID, shapley=exact
    )
    assert agreement.cosine[0] > 0.99
    assert agreement.relative_l2[0] < 0.1


def test_exact_shapley_on_tiny_gpt2_matches_brute_force_with_padding():
    model = tiny_classifier("gpt2")
    mask_id = 3  # not the pad id 0, so the model's own pooling finds the last token
    ids = torch.tensor([[BOS, 12, 40, 41, 7, 33, 20, 9], [BOS, 50, 51, 17, 22, 0, 0, 0]])
    words = torch.tensor([[-1, 0, 1, 1, 2, 3, 4, 5], [-1, 0, 0, 1, 2, -1, -1, -1]])
    attention = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    result = shapley_values(
        model, ids, feature_mask=words, baselines=mask_id, attention_mask=attention, perturbations_per_eval=20
    )
    assert result.n_rows == 2 ** 6 + 2 ** 3
    for row, length, n in [(0, 8, 6), (1, 5, 3)]:
        target = int(result.targets[row])
        row_ids, row_words = ids[row, :length], words[row, :length].tolist()

        def value(coalition):
            keep = torch.tensor([f < 0 or f in coalition for f in row_words])
            masked = torch.where(keep, row_ids, torch.tensor(mask_id))
            with torch.no_grad():
                return float(torch.softmax(model(input_ids=masked[None]).logits[0].double(), -1)[target])

        with torch.no_grad():
            assert target == int(model(input_ids=row_ids[None]).logits[0].argmax())
        np.testing.assert_allclose(result.values[row, :n].numpy(), exact_shapley(value, n).numpy(), atol=1e-5)
    assert torch.isnan(result.values[1, 3:]).all()


def test_agreement_scores_match_hand_computation():
    reference = torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]], dtype=torch.float64)
    attributions = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 2.0]])
    ids = torch.tensor([[5, 6, 7], [5, 6, 7]])
    result = shapley_agreement(ADDITIVE, ids, attributions, baselines=MASK_ID, shapley=reference)
    assert result.cosine[0] == pytest.approx(17 / math.sqrt(14 * 21))
    assert result.cosine[1] == pytest.approx(15 / math.sqrt(17 * 21))
    assert result.spearman[0] == pytest.approx(1.0)
    assert result.spearman[1] == pytest.approx(-math.sqrt(3) / 2)  # ranks (3, 1.5, 1.5) vs (1, 2, 3)
    assert result.relative_l2[0] == pytest.approx(1 / math.sqrt(21))
    assert result.relative_l2[1] == pytest.approx(math.sqrt(4 + 0 + 4) / math.sqrt(21))
    assert (result.n_calls, result.n_rows) == (0, 0)
    constant = shapley_agreement(ADDITIVE, ids[:1], torch.ones(1, 3), baselines=MASK_ID, shapley=reference[:1])
    assert math.isnan(constant.spearman[0])
    assert constant.summary()["spearman"].n_examples == 0


def test_agreement_of_shapley_values_with_themselves_is_perfect():
    model = AdditiveLogitModel(GAME_SCORES, interaction=-1.0, pair=(30, 36))
    first = shapley_agreement(
        model, GAME_IDS, torch.tensor([list(GAME_SCORES.values())]), target=1, feature_mask=GAME_FEATURES,
        baselines=MASK_ID, target_type="logit",
    )
    assert first.n_rows == 128
    again = shapley_agreement(
        model, GAME_IDS, first.shapley.values, feature_mask=GAME_FEATURES, baselines=MASK_ID, shapley=first.shapley
    )
    assert again.cosine[0] == pytest.approx(1.0)
    assert again.relative_l2[0] == pytest.approx(0.0, abs=1e-6)
    assert again.spearman[0] == pytest.approx(1.0)


# --------------------------------------------------------------- PI fidelity

WORDS = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4]])
WORD_IDS = torch.tensor([[BOS, 9, 3, 17, 22, 8, 30, 4, 11, 13]])


def test_fidelity_gap_is_zero_on_the_exactness_model():
    model = RunningSumClassifier(vocab_size=32, seed=1)
    ids = WORD_IDS.repeat(2, 1)
    ids[1, 3] = 25
    result = progressive_fidelity(model, ids, feature_mask=WORDS, baselines=MASK_ID, perturbations_per_eval=4)
    for row in range(2):
        target = int(result.targets[row])
        expected = [masked_value(model, ids[row], WORDS[0], set(range(k)), target) for k in range(1, 6)]
        np.testing.assert_allclose(result.masked[row], expected, atol=1e-6)
        np.testing.assert_allclose(result.gaps[row], 0.0, atol=1e-6)
    np.testing.assert_allclose(result.prefix_gaps, 0.0, atol=1e-6)
    assert result.max_abs_gap.max() < 1e-6
    rows = 2 + 2 * (5 - 1 + 1)  # unmasked rows; n - 1 masked and one fully masked per example
    assert (result.n_rows, result.n_calls) == (rows, 1 + math.ceil(10 / 4))


def test_fidelity_gap_sees_a_fixed_suffix_that_intermediate_predictions_ignore():
    model = RunningSumClassifier(vocab_size=32, seed=1)
    ids = torch.tensor([[BOS, 9, 17, 22, 6, 7]])
    features = torch.tensor([[-1, 0, 1, 2, -1, -1]])
    result = progressive_fidelity(model, ids, target=0, feature_mask=features, baselines=MASK_ID)
    with torch.no_grad():
        logits = model(ids)[0]
    ends = [1, 2, 3]
    np.testing.assert_allclose(result.intermediate[0], torch.softmax(logits[ends].double(), -1)[:, 0].numpy(), atol=1e-6)
    expected_masked = [masked_value(model, ids[0], features[0], set(range(k)), 0) for k in range(1, 4)]
    np.testing.assert_allclose(result.masked[0], expected_masked, atol=1e-6)
    assert np.abs(result.gaps[0]).min() > 1e-4


def test_fidelity_gap_on_tiny_gpt2_is_nonzero_and_matches_hugging_face():
    model = tiny_classifier("gpt2")
    mask_id = 3
    result = progressive_fidelity(model, WORD_IDS, feature_mask=WORDS, baselines=mask_id)
    target = int(result.targets[0])
    ends = [2, 3, 6, 7, 9]
    with torch.no_grad():
        intermediate = [float(torch.softmax(model(input_ids=WORD_IDS[:, : e + 1]).logits[0], -1)[target]) for e in ends]
        masked = []
        for k in range(1, 6):
            keep = torch.tensor([f < k for f in WORDS[0].tolist()])
            masked_ids = torch.where(keep, WORD_IDS[0], torch.tensor(mask_id))
            masked.append(float(torch.softmax(model(input_ids=masked_ids[None]).logits[0], -1)[target]))
    np.testing.assert_allclose(result.intermediate[0], intermediate, atol=1e-5)
    np.testing.assert_allclose(result.masked[0], masked, atol=1e-5)
    assert result.gaps[0][-1] == pytest.approx(0.0, abs=1e-6)  # x'_n is the unmasked input
    assert result.max_abs_gap[0] > 1e-3
    assert result.mean_abs_gap[0] == pytest.approx(np.mean(np.abs(np.array(intermediate) - masked)), abs=1e-5)


def test_gap_by_relative_position_bins_hand_built_gaps():
    result = FidelityResult(
        intermediate=[np.zeros(4), np.zeros(2)],
        masked=[np.zeros(4), np.zeros(2)],
        gaps=[np.array([0.1, -0.2, 0.3, 0.0]), np.array([0.5, -0.6])],
        prefix_gaps=np.array([np.nan, np.nan]),
        targets=torch.tensor([0, 0]),
        n_calls=0,
        n_rows=0,
    )
    # relative positions: 0.25, 0.5, 0.75, 1.0 and 0.5, 1.0
    centers, mean, count = result.gap_by_relative_position(n_bins=2)
    np.testing.assert_allclose(centers, [0.25, 0.75])
    np.testing.assert_allclose(count, [3, 3])
    np.testing.assert_allclose(mean, [(0.1 + 0.2 + 0.5) / 3, (0.3 + 0.0 + 0.6) / 3])
    np.testing.assert_allclose(result.max_abs_gap, [0.3, 0.6])


# ------------------------------------------------------------------- plots


def test_activation_plot_draws_the_mean_curve_of_each_method():
    ids = IDS.repeat(2, 1)
    good = torch.tensor([S, S])
    bad = -good
    studies = {
        name: activation_study(ADDITIVE, ids, attr, target=1, feature_mask=FEATURES, baselines=MASK_ID)
        for name, attr in [("exact", good), ("reversed", bad)]
    }
    figure = plot_activation_curves(studies, n_points=11)
    lines = figure.axes[0].get_lines()
    assert [line.get_label().split(" ")[0] for line in lines] == ["exact", "reversed"]
    for line, result in zip(lines, studies.values()):
        np.testing.assert_allclose(line.get_ydata(), result.mean_curve(11)[1])
    plt.close(figure)
    inverse = inverse_activation_study(ADDITIVE, ids, good, target=1, feature_mask=FEATURES, baselines=MASK_ID)
    with pytest.raises(ValueError, match="one study"):
        plot_activation_curves({"a": studies["exact"], "b": inverse})


def test_fidelity_plot_draws_the_binned_mean_gap():
    model = tiny_classifier("gpt2")
    sp = SinglePassProgressive(model)
    result = progressive_fidelity(sp.per_position, WORD_IDS, feature_mask=WORDS, baselines=3)
    figure = plot_fidelity_gap({"gpt2": result}, n_bins=5)
    line = figure.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), result.gap_by_relative_position(5)[1])
    assert len(figure.axes[0].collections) == 1
    plt.close(figure)


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


# ------------------------------------------------------ Shapley values of the PI game


def test_progressive_game_equals_the_masking_game_where_pi_is_exact():
    model = RunningSumClassifier(vocab_size=32, seed=3)
    common = dict(target=2, feature_mask=WORDS, baselines=MASK_ID, perturbations_per_eval=7)
    pi_game = progressive_shapley_values(model, WORD_IDS, **common)
    masking_game = shapley_values(model, WORD_IDS, **common)
    np.testing.assert_allclose(pi_game.values.numpy(), masking_game.values.numpy(), atol=1e-6)
    assert pi_game.n_rows == 2 ** 5 and pi_game.exact == [True]


def _pi_game_by_hand(model, ids, words, mask_id, target):
    r"""v_PI(S) from Hugging Face's own pooled logits: the input masked to S, cut after
    the last token of S's last feature (the whole input for the empty and full S)."""
    n = max(words) + 1
    ends = [max(t for t, f in enumerate(words) if f == feature) for feature in range(n)]

    def value(coalition):
        keep = torch.tensor([f < 0 or f in coalition for f in words])
        masked = torch.where(keep, ids, torch.tensor(mask_id))
        if coalition and len(coalition) < n:
            masked = masked[: ends[max(coalition)] + 1]
        with torch.no_grad():
            return float(torch.softmax(model(input_ids=masked[None]).logits[0].double(), -1)[target])

    return exact_shapley(value, n)


def test_progressive_game_on_tiny_gpt2_matches_brute_force_and_differs_from_masking_game():
    model = tiny_classifier("gpt2", seed=2)
    mask_id = 3
    ids = torch.tensor([[BOS, 12, 40, 41, 7, 33, 20, 9], [BOS, 50, 51, 17, 22, 0, 0, 0]])
    words = torch.tensor([[-1, 0, 1, 1, 2, 3, 4, 5], [-1, 0, 0, 1, 2, -1, -1, -1]])
    attention = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    common = dict(target=1, feature_mask=words, baselines=mask_id, attention_mask=attention)
    pi_game = progressive_shapley_values(model, ids, perturbations_per_eval=20, **common)
    masking_game = shapley_values(model, ids, **common)
    for row, length, n in [(0, 8, 6), (1, 5, 3)]:
        expected = _pi_game_by_hand(model, ids[row, :length], words[row, :length].tolist(), mask_id, 1)
        np.testing.assert_allclose(pi_game.values[row, :n].numpy(), expected.numpy(), atol=1e-5)
    assert torch.isnan(pi_game.values[1, 3:]).all()
    assert (pi_game.values[0] - masking_game.values[0]).abs().max() > 1e-3


def test_multi_pass_converges_to_the_progressive_game_not_the_masking_game():
    model = tiny_classifier("gpt2", seed=2)
    mask_id = 3
    ids = torch.tensor([[BOS, 12, 40, 41, 7, 33, 20, 9]])
    words = torch.tensor([[-1, 0, 1, 1, 2, 3, 4, 4]])
    common = dict(target=1, feature_mask=words, baselines=mask_id)
    pi_game = progressive_shapley_values(model, ids, **common).values[0].float()
    masking_game = shapley_values(model, ids, **common).values[0].float()
    estimate = torch.stack([
        feature_attributions(MultiPassProgressive(model).attribute(ids, n_samples=400 * 5, seed=seed, **common),
                             words)[0]
        for seed in range(2)]).mean(0)
    pi_error = (estimate - pi_game).abs().max().item()
    assert pi_error < 0.1 * pi_game.abs().max().item()
    assert pi_error < 0.5 * (estimate - masking_game).abs().max().item()


def test_progressive_game_rejects_rows_with_too_many_features():
    model = RunningSumClassifier(vocab_size=32, seed=3)
    with pytest.raises(ValueError, match="5 features > max_exact_features=4"):
        progressive_shapley_values(model, WORD_IDS, feature_mask=WORDS, baselines=MASK_ID, max_exact_features=4)
    with pytest.raises(ValueError, match="needs `baselines`"):
        progressive_shapley_values(model, WORD_IDS, feature_mask=WORDS)
