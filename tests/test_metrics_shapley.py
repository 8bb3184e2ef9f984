import math

import numpy as np
import pytest
import torch

from captum_pi import MultiPassProgressive, PerPositionForward, feature_attributions
from captum_pi.metrics import progressive_shapley_values, shapley_agreement, shapley_values
from metrics_toys import ADDITIVE, BOS, WORD_IDS, WORDS, AdditiveLogitModel
from toy_models import MASK_ID, RunningSumClassifier, exact_shapley, tiny_classifier

GAME_SCORES = {30: 1.0, 31: -2.0, 32: 0.5, 33: 3.0, 34: -0.25, 35: 0.75, 36: 1.5}
GAME_IDS = torch.tensor([[BOS, 30, 31, 32, 33, 34, 35, 36]])
GAME_FEATURES = torch.tensor([[-1, 0, 1, 2, 3, 4, 5, 6]])


@pytest.mark.parametrize("perturbations_per_eval", [7, 64])
def test_exact_shapley_splits_a_pairwise_interaction_equally(perturbations_per_eval):
    model = AdditiveLogitModel(GAME_SCORES, interaction=2.0, pair=(31, 35))
    forward = PerPositionForward(model)
    result = shapley_values(
        forward, GAME_IDS, target=1, feature_mask=GAME_FEATURES, baselines=MASK_ID, masking="replace",
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
        model, ids, feature_mask=words, baselines=mask_id, masking="replace", attention_mask=attention, perturbations_per_eval=20
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
        baselines=MASK_ID, masking="replace", target_type="logit",
    )
    assert first.n_rows == 128
    again = shapley_agreement(
        model, GAME_IDS, first.shapley.values, feature_mask=GAME_FEATURES, baselines=MASK_ID, masking="replace", shapley=first.shapley
    )
    assert again.cosine[0] == pytest.approx(1.0)
    assert again.relative_l2[0] == pytest.approx(0.0, abs=1e-6)
    assert again.spearman[0] == pytest.approx(1.0)


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
    common = dict(target=1, feature_mask=words, baselines=mask_id, masking="replace", attention_mask=attention)
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
    common = dict(target=1, feature_mask=words, baselines=mask_id, masking="replace")
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
        progressive_shapley_values(model, WORD_IDS, feature_mask=WORDS, masking="replace")


@pytest.mark.parametrize("with_prefix", [True, False])
def test_half_cost_exact_shapley_under_deletion_equals_brute_force(with_prefix):
    from toy_models import deleted_ids, hf_value

    model = tiny_classifier("llama")
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 3, 4]])
    if not with_prefix:
        ids, features = ids[:, 1:], features[:, 1:]
    n = 5
    forward = PerPositionForward(model)
    result = shapley_values(forward, ids, target=1, feature_mask=features, baselines=None if with_prefix else 1,
                            perturbations_per_eval=7)
    def value(coalition):
        kept = deleted_ids(ids[0], features[0], coalition)
        return hf_value(model, kept if kept.numel() else torch.tensor([1]), 1)
    torch.testing.assert_close(result.values[0].double(), exact_shapley(value, n), atol=1e-5, rtol=0)
    expected_rows = 2 ** (n - 1) + (0 if with_prefix else 1)
    assert result.n_samples == [expected_rows] and result.n_rows == expected_rows == forward.n_rows
    # the full enumeration (as under replacement) gives the same values at twice the cost
    suffixed = torch.cat([ids, torch.tensor([[50]])], dim=1), torch.cat([features, torch.tensor([[-1]])], dim=1)
    full = shapley_values(model, suffixed[0], target=1, feature_mask=suffixed[1], baselines=1)
    assert full.n_samples == [2 ** n]


def test_under_deletion_the_progressive_game_is_the_masking_game():
    model = tiny_classifier("gpt2")
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40], [1, 5, 6, 8, 3, 0, 0]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 3], [-1, 0, 1, 2, 2, -1, -1]])
    attention = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    common = dict(target=0, feature_mask=features, attention_mask=attention, masking="delete")
    masking_game = shapley_values(model, ids, **common)
    progressive = progressive_shapley_values(model, ids, **common)
    torch.testing.assert_close(progressive.values, masking_game.values, atol=1e-5, rtol=0, equal_nan=True)
    replaced = progressive_shapley_values(model, ids, **{**common, "masking": "replace"}, baselines=3)
    assert (replaced.values - masking_game.values).abs().nan_to_num().max() > 1e-3
