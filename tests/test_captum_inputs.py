import pytest
import torch
from captum.attr import TextTemplateInput, TextTokenInput
from tiny_text import tiny_tokenizer

from captum_pi.captum_inputs import adapt_input
from captum_pi.text import mask_token_id


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_captum_text_token_input_is_adapted(tokenizer):
    inp = TextTokenInput("It works 😀", tokenizer, skip_tokens=["<bos>"])
    adapted = adapt_input(inp, tokenizer)
    view = adapted.features
    assert view.feature_mask[0, 0] == -1
    assert view.n_itp_features == inp.n_itp_features == adapted.n_itp_features
    assert view.baselines == mask_token_id(tokenizer)
    assert view.text == "<bos>It works 😀"
    plain_tokens = inp.inp_tensor[0, 1:-2].tolist()  # the emoji's byte pieces come last
    assert view.values[: len(plain_tokens)] == [tokenizer.decode([t]).strip() for t in plain_tokens]
    assert view.values[-1] == "😀"
    assert torch.equal(view.input_ids, inp.inp_tensor)


def test_captum_text_template_input_is_adapted_in_reading_order(tokenizer):
    inp = TextTemplateInput("Review: {1} was {0}!", values=["great", "Dinner"], baselines=["bad", "Lunch"])
    with pytest.warns(UserWarning) as record:
        adapted = adapt_input(inp, tokenizer)
    messages = " ".join(str(w.message) for w in record)
    assert "baselines are not used" in messages and "follows the last feature" in messages
    view = adapted.features
    assert view.text == "Review: Dinner was great!"
    assert view.values == ["Dinner", "great"]
    assert adapted.itp_index == [1, 0]
    mapped = adapted.to_original(torch.tensor([[10.0, 20.0]]))
    assert mapped.tolist() == [[20.0, 10.0]]


def test_captum_text_template_input_with_named_fields_and_groups(tokenizer):
    inp = TextTemplateInput(
        "{a} {b} works. {c}", values={"a": "It", "b": "really", "c": "Great"}, mask={"a": 0, "b": 0, "c": 1}
    )
    adapted = adapt_input(inp, tokenizer)
    assert adapted.features.values == ["It really", "Great"]
    assert adapted.n_itp_features == 2
    not_adjacent = TextTemplateInput("{} and {} or {}", values=["A", "B", "C"], mask=[0, 1, 0])
    with pytest.raises(ValueError, match="contiguous"):
        adapt_input(not_adjacent, tokenizer)


def test_unsupported_inputs_are_rejected(tokenizer):
    with pytest.raises(TypeError, match="TextFeatureInput"):
        adapt_input("plain text", tokenizer)
    callable_template = TextTemplateInput(lambda a: f"{a}!", values=["Hi"])
    with pytest.raises(ValueError, match="callable template"):
        adapt_input(callable_template, tokenizer)
