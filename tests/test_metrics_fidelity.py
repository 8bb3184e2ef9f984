import math

import numpy as np
import pytest
import torch

from captum_pi.metrics import FidelityResult, progressive_fidelity
from metrics_toys import BOS, WORD_IDS, WORDS
from toy_models import MASK_ID, RunningSumClassifier, masked_value, tiny_classifier


def test_fidelity_gap_is_zero_on_the_exactness_model():
    model = RunningSumClassifier(vocab_size=32, seed=1)
    ids = WORD_IDS.repeat(2, 1)
    ids[1, 3] = 25
    result = progressive_fidelity(model, ids, feature_mask=WORDS, baselines=MASK_ID, perturbations_per_eval=4)
    for row in range(2):
        target = int(result.targets[row])
        expected = [masked_value(model, ids[row], WORDS[0], set(range(k)), target) for k in range(1, 6)]
        np.testing.assert_allclose(result.masked[row], expected, atol=1e-5)
        np.testing.assert_allclose(result.gaps[row], 0.0, atol=1e-5)
    np.testing.assert_allclose(result.prefix_gaps, 0.0, atol=1e-5)
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
    result = progressive_fidelity(model, WORD_IDS, feature_mask=WORDS, baselines=mask_id, masking="replace")
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


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "gemma3"])
def test_under_deletion_the_premise_holds_exactly(architecture):
    model = tiny_classifier(architecture)
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40], [1, 5, 6, 8, 3, 0, 0]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 3, 3], [-1, 0, 1, 2, 2, -1, -1]])
    attention = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    deleted = progressive_fidelity(model, ids, target=0, feature_mask=features, attention_mask=attention)
    assert max(deleted.max_abs_gap) < 1e-5 and np.nanmax(np.abs(deleted.prefix_gaps)) < 1e-5
    replaced = progressive_fidelity(model, ids, target=0, feature_mask=features, attention_mask=attention,
                                    baselines=3, masking="replace")
    assert max(replaced.max_abs_gap) > 1e-3
