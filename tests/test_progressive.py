import pytest
import torch
from torch import nn

from captum_pi import PerPositionForward, SinglePassProgressive, feature_attributions
from captum_pi._core.progressive import build_feature_layouts
from toy_models import ARCHITECTURES, tiny_classifier


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_intermediate_prediction_equals_prediction_on_truncated_input(architecture):
    model = tiny_classifier(architecture)
    ids = torch.randint(1, 64, (1, 12), generator=torch.Generator().manual_seed(3))
    per_position = PerPositionForward(model)(ids)[0]
    for t in range(ids.shape[1]):
        with torch.no_grad():
            truncated = model(input_ids=ids[:, : t + 1]).logits[0]
        torch.testing.assert_close(per_position[t], truncated, atol=1e-5, rtol=0)


def test_counts_model_calls_and_rows():
    forward = PerPositionForward(tiny_classifier("gpt2"))
    forward(torch.ones(3, 5, dtype=torch.long))
    forward(torch.ones(2, 5, dtype=torch.long))
    assert (forward.n_calls, forward.n_rows) == (2, 5)


def test_non_causal_model_is_rejected():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=2)
    with pytest.raises(ValueError, match="not a decoder-only sequence classifier"):
        SinglePassProgressive(BertForSequenceClassification(config))


def test_model_whose_score_head_sees_the_future_is_rejected():
    model = tiny_classifier("gpt2")
    model.transformer.h[0].attn.is_causal = False
    original = model.transformer.forward

    def bidirectional(*args, **kwargs):
        # feed every position the mean of all hidden states: a non-causal model
        output = original(*args, **kwargs)
        hidden = output.last_hidden_state
        output.last_hidden_state = hidden + hidden.mean(dim=1, keepdim=True)
        return output

    model.transformer.forward = bidirectional
    with pytest.raises(ValueError, match="is not causal"):
        PerPositionForward(model)


def test_callable_must_return_per_position_logits():
    forward = PerPositionForward(lambda ids, attention_mask=None: torch.zeros(ids.shape[0], 2))
    with pytest.raises(ValueError, match=r"\[B, T, C\]"):
        forward(torch.ones(1, 4, dtype=torch.long))


def test_train_mode_gives_eval_results_and_is_restored():
    model = tiny_classifier("gpt2")
    model.config.resid_pdrop = model.config.attn_pdrop = 0.5
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.5
    ids = torch.randint(1, 64, (1, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[-1, 0, 0, 1, 2, 2, 3, 4]])
    expected = SinglePassProgressive(model).attribute(ids, feature_mask=mask)
    model.train()
    got = SinglePassProgressive(model).attribute(ids, feature_mask=mask)
    torch.testing.assert_close(got, expected)
    assert model.training


@pytest.mark.parametrize(
    "feature_mask, message",
    [
        ([[0, 0, 1, 0, 2]], "feature 0 is not one contiguous span"),
        ([[0, 0, -1, 0, 1]], "feature 0 is not one contiguous span"),
        ([[1, 1, 0, 0, 2]], "found feature 1 where feature 0 was expected"),
        ([[0, 2, 2, 3, 3]], "found feature 2 where feature 1 was expected"),
        ([[-1, -1, -1, -1, -1]], "has no feature"),
        ([[0, 1, 2, 3, -2]], ">= 0 for features or -1"),
        ([[0, 1, 2]], "feature_mask must have shape"),
        ([[0.0, 1.0, 2.0, 3.0, 4.0]], "integer ids"),
    ],
)
def test_feature_mask_validation_names_the_problem(feature_mask, message):
    ids = torch.ones(1, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=message):
        build_feature_layouts(ids, torch.tensor(feature_mask))


def test_feature_on_padding_and_left_padding_are_rejected():
    ids = torch.ones(1, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="padding must be -1"):
        build_feature_layouts(ids, torch.tensor([[0, 1, 2, 3, 4]]), torch.tensor([[1, 1, 1, 0, 0]]))
    with pytest.raises(ValueError, match="not right-padded"):
        build_feature_layouts(ids, None, torch.tensor([[0, 1, 1, 1, 1]]))


def test_layout_spans_and_prefix():
    ids = torch.arange(1, 9)[None]
    (layout,) = build_feature_layouts(ids, torch.tensor([[-1, -1, 0, 0, 1, -1, 2, -1]]))
    assert layout.starts.tolist() == [2, 4, 6]
    assert layout.ends.tolist() == [3, 4, 6]
    assert layout.prefix_end == 1
    assert layout.length == 8


def test_feature_attributions_reads_one_value_per_feature_and_pads_with_nan():
    attributions = torch.tensor([[0.0, 5.0, 5.0, 7.0, 0.0], [1.0, 2.0, 0.0, 0.0, 0.0]])
    feature_mask = torch.tensor([[-1, 0, 0, 1, -1], [0, 1, -1, -1, -1]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    phi = feature_attributions(attributions, feature_mask, attention_mask)
    assert phi[0].tolist() == [5.0, 7.0]
    assert phi[1].tolist() == [1.0, 2.0]
    assert torch.isnan(feature_attributions(attributions, None, attention_mask)[1, 2:]).all()
