import pytest
import torch

from captum_pi import SinglePassProgressive, feature_attributions
from toy_models import MASK_ID, RunningSumClassifier, masked_value, tiny_classifier

WORDS = torch.tensor([[0, 0, 1, 2, 2, 2, 3, 4, 4]])
IDS = torch.tensor([[5, 9, 3, 17, 22, 8, 30, 4, 11]])


@pytest.mark.parametrize("target_type", ["prob", "logit", "log_prob"])
def test_equals_differences_of_predictions_on_masked_inputs_on_exactness_model(target_type):
    model = RunningSumClassifier(vocab_size=32, seed=2)
    phi = feature_attributions(
        SinglePassProgressive(model).attribute(
            IDS, target=1, feature_mask=WORDS, baselines=MASK_ID, target_type=target_type
        ),
        WORDS,
    )[0]
    values = [masked_value(model, IDS[0], WORDS[0], set(range(k)), 1, target_type) for k in range(6)]
    expected = torch.tensor(values, dtype=torch.float64).diff()
    torch.testing.assert_close(phi.double(), expected, atol=1e-5, rtol=0)


def test_prefix_token_gives_prediction_before_any_feature():
    model = tiny_classifier("llama")
    ids = torch.tensor([[1, 7, 9, 13, 21, 33]])
    feature_mask = torch.tensor([[-1, -1, 0, 1, 1, 2]])
    attr = SinglePassProgressive(model).attribute(ids, target=2, feature_mask=feature_mask)
    with torch.no_grad():
        probs = [torch.softmax(model(input_ids=ids[:, : t + 1]).logits[0], -1)[2] for t in range(6)]
    expected = torch.stack([probs[2] - probs[1], probs[4] - probs[2], probs[5] - probs[4]])
    torch.testing.assert_close(feature_attributions(attr, feature_mask)[0], expected, atol=1e-5, rtol=0)
    assert attr[0, :2].tolist() == [0.0, 0.0]
    assert attr[0, 3] == attr[0, 4]


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "gemma3"])
def test_local_accuracy(architecture):
    model = tiny_classifier(architecture)
    ids = torch.randint(1, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    sp = SinglePassProgressive(model)
    attr = sp.attribute(ids, feature_mask=WORDS, baselines=3, masking="replace")
    probs = torch.softmax(sp.per_position(ids)[:, -1], -1)
    target = probs.argmax(-1)
    empty = torch.full_like(ids, 3)
    empty_probs = torch.softmax(sp.per_position(empty)[:, -1], -1)
    for row in range(2):
        total = probs[row, target[row]] - empty_probs[row, target[row]]
        assert float(feature_attributions(attr, WORDS)[row].sum()) == pytest.approx(float(total), abs=1e-5)


def test_one_model_call_including_fully_masked_rows():
    sp = SinglePassProgressive(tiny_classifier("gpt2"))
    sp.attribute(IDS.repeat(3, 1), feature_mask=WORDS, baselines=MASK_ID)
    assert (sp.per_position.n_calls, sp.per_position.n_rows) == (1, 6)


def test_padding_and_batching_do_not_change_attributions():
    model = tiny_classifier("qwen2")
    sp = SinglePassProgressive(model)
    long_ids = torch.randint(1, 64, (1, 9), generator=torch.Generator().manual_seed(5))
    short_ids = torch.randint(1, 64, (1, 6), generator=torch.Generator().manual_seed(6))
    short_mask = torch.tensor([[-1, 0, 1, 1, 2, 3]])
    alone_long = sp.attribute(long_ids, feature_mask=WORDS, baselines=4, target=0)
    alone_short = sp.attribute(short_ids, feature_mask=short_mask, target=0)
    batch = torch.cat([long_ids, torch.nn.functional.pad(short_ids, (0, 3), value=0)])
    attention = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    batch_mask = torch.cat([WORDS, torch.nn.functional.pad(short_mask, (0, 3), value=-1)])
    together = sp.attribute(batch, feature_mask=batch_mask, baselines=4, attention_mask=attention, target=0)
    torch.testing.assert_close(together[0], alone_long[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(together[1, :6], alone_short[0], atol=1e-5, rtol=0)
    assert together[1, 6:].abs().sum() == 0


def test_default_target_is_predicted_class():
    model = RunningSumClassifier(seed=4)
    sp = SinglePassProgressive(model)
    predicted = int(model(IDS)[0, -1].argmax())
    torch.testing.assert_close(
        sp.attribute(IDS, feature_mask=WORDS, baselines=MASK_ID),
        sp.attribute(IDS, feature_mask=WORDS, baselines=MASK_ID, target=predicted),
    )


def test_needs_baseline_without_prefix_token():
    with pytest.raises(ValueError, match="pass the mask token id as `baselines`"):
        SinglePassProgressive(RunningSumClassifier()).attribute(IDS, feature_mask=WORDS, masking="replace")
    with pytest.raises(ValueError, match="deleting every feature leaves an empty input"):
        SinglePassProgressive(RunningSumClassifier()).attribute(IDS, feature_mask=WORDS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target=3), "out of range: the model has 3 classes"),
        (dict(target=-1), "out of range"),
        (dict(target=torch.tensor([0, 1])), "one class per row"),
        (dict(target_type="probability"), "target_type must be one of"),
        (dict(baselines=1.5), "mask token id"),
    ],
)
def test_invalid_arguments(kwargs, message):
    sp = SinglePassProgressive(RunningSumClassifier(vocab_size=32))
    arguments = dict(feature_mask=WORDS, baselines=MASK_ID)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sp.attribute(IDS, **arguments)


def test_baseline_outside_the_vocabulary_is_rejected():
    sp = SinglePassProgressive(tiny_classifier("gpt2"))
    with pytest.raises(ValueError, match=r"baselines=99 is not a token id in \[0, 64\)"):
        sp.attribute(IDS, feature_mask=WORDS, baselines=99)


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "qwen2"])
def test_under_deletion_equals_successive_differences_of_the_deletion_game(architecture):
    from toy_models import deleted_ids, hf_value

    model = tiny_classifier(architecture)
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41], [1, 12, 5, 6, 44, 0, 0, 0]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 2, 3, 4], [-1, 0, 1, 1, 2, -1, -1, -1]])
    attention = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    attr = SinglePassProgressive(model).attribute(
        ids, target=1, feature_mask=features, attention_mask=attention, masking="delete"
    )
    phi = feature_attributions(attr, features, attention)
    for row, n in ((0, 5), (1, 3)):
        length = int(attention[row].sum())
        game = [hf_value(model, deleted_ids(ids[row, :length], features[row, :length], set(range(k))), 1)
                for k in range(n + 1)]
        torch.testing.assert_close(phi[row, :n].double(), torch.tensor(game, dtype=torch.float64).diff(), atol=1e-5, rtol=0)


def test_under_deletion_a_row_without_fixed_tokens_reads_the_given_empty_token():
    from toy_models import hf_value

    model = tiny_classifier("llama")
    ids = torch.tensor([[7, 9, 13, 21]])
    features = torch.tensor([[0, 0, 1, 2]])
    phi = feature_attributions(SinglePassProgressive(model).attribute(
        ids, target=0, feature_mask=features, baselines=1), features)[0]
    first = hf_value(model, ids[0, :2], 0) - hf_value(model, torch.tensor([1]), 0)
    assert float(phi[0]) == pytest.approx(first, abs=1e-5)
