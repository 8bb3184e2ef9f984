import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace

import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import (
    FeatureAblation,
    IntegratedGradients,
    KernelShap,
    Lime,
    ShapleyValues,
    ShapleyValueSampling,
    TextTemplateInput,
    TextTokenInput,
)
from captum.attr._core.llm_attr import LLMAttributionResult
from tiny_text import LABELS, AdditiveTextModel, tiny_gpt2_classifier, tiny_tokenizer
from toy_models import exact_shapley

from captum_pi import MultiPassProgressive, SinglePassProgressive, feature_attributions
from captum_pi.registry import METHODS as METHODS_BY_NAME
from captum_pi.llm_attr import ClassifierAttributionResult, LLMClassifierAttribution
from captum_pi.text import TextFeatureInput, mask_token_id

TEXT = "It works great. Not bad at all... Dr. Smith agrees."
SHORT = "It works. Not bad, really."  # 5 words: ShapleyValues enumerates 5! orders


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def additive(tokenizer):
    return AdditiveTextModel(len(tokenizer), mask_token_id(tokenizer))


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    return tiny_gpt2_classifier(len(tokenizer))


# Every accepted method, built exactly as a Captum user builds it, with the keyword
# arguments that make it exact on an additive game.
METHODS = {
    "sp-pi": (SinglePassProgressive, {}),
    "mp-pi": (MultiPassProgressive, {"n_samples": 40, "seed": 0}),
    "feature-ablation": (FeatureAblation, {}),
    "shapley-values": (ShapleyValues, {}),
    "shapley-value-sampling": (ShapleyValueSampling, {"n_samples": 3}),
    "kernel-shap": (KernelShap, {"n_samples": 60}),
    "lime": (Lime, {"n_samples": 60}),
}


def build(name, model):
    cls, kwargs = METHODS[name]
    if cls is Lime:
        return Lime(model, interpretable_model=SkLearnLinearRegression()), kwargs
    return cls(model), kwargs


@pytest.mark.parametrize("perturbations_per_eval", [1, 7])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_recovers_additive_logits(tokenizer, additive, name, perturbations_per_eval):
    torch.manual_seed(0)
    inp = TextFeatureInput(SHORT, tokenizer, level="word", template="Review: {}")
    method, kwargs = build(name, additive)
    if name != "sp-pi":
        kwargs = {**kwargs, "perturbations_per_eval": perturbations_per_eval}
    result = LLMClassifierAttribution(method, tokenizer, target_type="logit").attribute(inp, target=1, **kwargs)
    expected = additive.feature_logit_contributions(inp.input_ids, inp.feature_mask, target=1)
    assert torch.allclose(result.seq_attr, expected, atol=1e-5), (name, result.seq_attr, expected)


def brute_force_value(model, inp, coalition, target, masking="replace"):
    r"""P(target) at the final token of the input with features outside ``coalition``
    masked (replaced by the mask token, or deleted), by building the ids by hand and
    calling the model's own forward."""
    ids = []
    for token, feature in zip(inp.input_ids[0].tolist(), inp.feature_mask[0].tolist()):
        if feature < 0 or feature in coalition:
            ids.append(token)
        elif masking == "replace":
            ids.append(inp.baselines)
    ids = torch.tensor(ids)
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0]
    return float(torch.softmax(logits.double(), -1)[target])


@pytest.mark.parametrize("masking", ["delete", "replace"])
@pytest.mark.parametrize("perturbations_per_eval", [1, 4])
def test_captum_methods_on_a_hf_classifier_match_brute_force(tokenizer, gpt2, perturbations_per_eval, masking):
    inp = TextFeatureInput(TEXT, tokenizer, level="sentence", template="Review: {}", masking=masking)
    n = inp.n_itp_features
    target = 2
    every = set(range(n))
    full = brute_force_value(gpt2, inp, every, target, masking)
    ablation = LLMClassifierAttribution(FeatureAblation(gpt2), tokenizer).attribute(
        inp, target="positive", perturbations_per_eval=perturbations_per_eval
    )
    expected = [full - brute_force_value(gpt2, inp, every - {k}, target, masking) for k in range(n)]
    assert torch.allclose(ablation.seq_attr, torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    assert ablation.masking == masking and ablation.to_dict()["masking"] == masking
    shapley = LLMClassifierAttribution(ShapleyValues(gpt2), tokenizer).attribute(
        inp, target=target, perturbations_per_eval=perturbations_per_eval
    )
    exact = exact_shapley(lambda s: brute_force_value(gpt2, inp, s, target, masking), n)
    assert torch.allclose(shapley.seq_attr, exact, atol=1e-5)
    assert ablation.output_probs.item() == pytest.approx(full, abs=1e-6)


def test_progressive_methods_match_direct_calls(tokenizer, gpt2):
    inp = TextFeatureInput(TEXT, tokenizer, level="word", template="Review: {}")
    for method in (SinglePassProgressive(gpt2), MultiPassProgressive(gpt2)):
        kwargs = {"seed": 3} if isinstance(method, MultiPassProgressive) else {}
        result = LLMClassifierAttribution(method, tokenizer).attribute(inp, target=0, **kwargs)
        direct = method.attribute(
            inp.input_ids, target=0, feature_mask=inp.feature_mask, baselines=inp.baselines, **kwargs
        )
        starts = [int((inp.feature_mask[0] == k).nonzero()[0]) for k in range(inp.n_itp_features)]
        assert torch.allclose(result.seq_attr, direct[0, starts].double(), atol=1e-6)


def test_sp_pi_through_the_wrapper_is_locally_accurate(tokenizer, gpt2):
    inp = TextFeatureInput(TEXT, tokenizer, level="word", template="Review: {}")
    result = LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer).attribute(inp)
    prefix_end = int((inp.feature_mask[0] >= 0).nonzero()[0]) - 1
    with torch.no_grad():
        probs = torch.softmax(gpt2(input_ids=inp.input_ids).logits.double(), -1)[0]
    before = float(torch.softmax(
        gpt2(input_ids=inp.input_ids[:, : prefix_end + 1]).logits.double().detach(), -1
    )[0, result.target])
    assert result.target == int(probs.argmax())
    assert float(result.seq_attr.sum()) == pytest.approx(float(probs[result.target]) - before, abs=1e-5)


def test_seed_is_accepted_and_ignored_by_deterministic_methods(tokenizer, gpt2):
    # one set of keyword arguments serves every method a user swaps in
    inp = TextFeatureInput(TEXT, tokenizer, level="word")
    explainer = LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer)
    torch.testing.assert_close(explainer.attribute(inp, seed=0).seq_attr, explainer.attribute(inp).seq_attr)
    with pytest.raises(TypeError, match="n_samples"):
        explainer.attribute(inp, n_samples=4)  # other arguments it lacks still fail loudly


class RecordingProtocolMethod:
    r"""A method following the package's uniform protocol: it records its call and
    gives feature k the attribution 10 * k + 1 (spread over the feature's tokens)."""

    def __init__(self, model):
        self.forward_func = model
        self.calls = []

    def attribute(self, inputs, target=None, feature_mask=None, baselines=None, attention_mask=None, **kwargs):
        self.calls.append(dict(inputs=inputs, target=target, feature_mask=feature_mask,
                               baselines=baselines, attention_mask=attention_mask, **kwargs))
        return torch.where(feature_mask >= 0, 10.0 * feature_mask + 1, torch.zeros(())).float()


def test_protocol_methods_get_ids_feature_mask_and_the_mask_token(tokenizer, gpt2):
    method = RecordingProtocolMethod(gpt2)
    inp = TextFeatureInput(TEXT, tokenizer, level="sentence")
    result = LLMClassifierAttribution(method, tokenizer).attribute(inp, target="negative", budget_hint=5)
    call = method.calls[-1]
    assert torch.equal(call["inputs"], inp.input_ids)
    assert torch.equal(call["feature_mask"], inp.feature_mask)
    assert call["baselines"] == mask_token_id(tokenizer)
    assert call["target"] == 0 and call["budget_hint"] == 5
    assert "target_type" not in call  # left at the method's own default
    assert result.seq_attr.tolist() == [1.0, 11.0, 21.0]
    LLMClassifierAttribution(method, tokenizer, target_type="logit").attribute(inp)
    assert method.calls[-1]["target_type"] == "logit"

    class NoTargetType:
        forward_func = gpt2

        def attribute(self, inputs, target=None, feature_mask=None, baselines=None, attention_mask=None):
            return torch.zeros(inputs.shape)

    with pytest.raises(ValueError, match="no target_type argument"):
        LLMClassifierAttribution(NoTargetType(), tokenizer, target_type="logit").attribute(inp)


def test_captum_inputs_are_attributed_in_their_own_feature_order(tokenizer, gpt2):
    method = RecordingProtocolMethod(gpt2)
    template = TextTemplateInput("Review: {1} was {0}", values=["great", "Dinner"])
    result = LLMClassifierAttribution(method, tokenizer).attribute(template)
    assert result.input_tokens == ["great", "Dinner"]
    assert result.seq_attr.tolist() == [11.0, 1.0]  # "Dinner" is read first
    tokens = TextTokenInput("It works", tokenizer, skip_tokens=["<bos>"])
    exact = LLMClassifierAttribution(ShapleyValues(gpt2), tokenizer, masking="replace").attribute(
        tokens, target=1
    )
    view = SimpleNamespace(
        input_ids=tokens.inp_tensor,
        feature_mask=torch.tensor([[-1] + list(range(tokens.n_itp_features))]),
        baselines=mask_token_id(tokenizer),
    )
    expected = exact_shapley(lambda s: brute_force_value(gpt2, view, s, 1), tokens.n_itp_features)
    assert torch.allclose(exact.seq_attr, expected, atol=1e-5)


def test_result_is_an_llm_attribution_result_that_plots(tokenizer, gpt2):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    inp = TextFeatureInput(TEXT, tokenizer, level="word")
    result = LLMClassifierAttribution(KernelShap(gpt2), tokenizer).attribute(inp, target="neutral", n_samples=30)
    assert isinstance(result, LLMAttributionResult) and isinstance(result, ClassifierAttributionResult)
    assert result.input_tokens == inp.values
    assert result.output_tokens == ["neutral"]
    assert result.token_attr.shape == (1, inp.n_itp_features)
    assert torch.allclose(result.probabilities.sum(), torch.tensor(1.0, dtype=torch.float64))
    for plot in (result.plot_seq_attr, result.plot_token_attr):
        fig, ax = plot()
        assert isinstance(fig, Figure)
        assert [t.get_text() for t in ax.get_xticklabels()] == inp.values
        plt.close(fig)
    summary = result.to_dict()
    assert [f["text"] for f in summary["features"]] == inp.values
    assert summary["target"] == {"index": 1, "label": "neutral"}
    assert set(summary["probabilities"]) == set(LABELS.values())


def test_targets_are_indices_or_label_names(tokenizer, gpt2):
    explainer = LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer)
    inp = TextFeatureInput("It works.", tokenizer)
    assert explainer.attribute(inp, target="Positive").target == 2
    assert explainer.attribute(inp, target=1).target_label == "neutral"
    with pytest.raises(ValueError, match=r"Unknown label 'great'.*negative"):
        explainer.attribute(inp, target="great")
    with pytest.raises(ValueError, match="out of range"):
        explainer.attribute(inp, target=3)


def test_the_users_method_is_left_unchanged_and_arguments_are_checked(tokenizer, gpt2):
    kernel_shap = KernelShap(gpt2)
    explainer = LLMClassifierAttribution(kernel_shap, tokenizer)
    assert kernel_shap.forward_func is gpt2
    inp = TextFeatureInput("It works.", tokenizer)
    with pytest.raises(ValueError, match="baselines"):
        explainer.attribute(inp, baselines=0)
    with pytest.raises(TypeError, match="does not support Captum's IntegratedGradients"):
        LLMClassifierAttribution(IntegratedGradients(gpt2), tokenizer)
    with pytest.raises(TypeError, match="inp must be one of"):
        explainer.attribute("It works.")


def test_text_longer_than_the_context_is_rejected(tokenizer):
    short_model = tiny_gpt2_classifier(len(tokenizer), n_positions=16)
    explainer = LLMClassifierAttribution(SinglePassProgressive(short_model), tokenizer)
    with pytest.raises(ValueError, match="reads at most 16 tokens"):
        explainer.attribute(TextFeatureInput(TEXT * 3, tokenizer))


def test_a_non_causal_classifier_is_rejected(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=2,
    ))
    with pytest.raises(ValueError, match="not a decoder-only sequence classifier"):
        LLMClassifierAttribution(FeatureAblation(bert), tokenizer)



@pytest.mark.parametrize("name", sorted(METHODS_BY_NAME))
def test_every_registry_method_through_the_wrapper_equals_a_direct_call(tokenizer, gpt2, name):
    spec = METHODS_BY_NAME[name]
    inp = TextFeatureInput("Works. Not bad, really.", tokenizer, level="word", template="Review: {}")
    options = {"seed": 5} if spec.stochastic else {}
    result = LLMClassifierAttribution(spec.build(gpt2), tokenizer).attribute(inp, target=2, **options)
    direct = spec.build(gpt2).attribute(
        inp.input_ids, target=2, feature_mask=inp.feature_mask, baselines=inp.baselines,
        attention_mask=inp.attention_mask, **options,
    )
    expected = feature_attributions(direct.detach().double(), inp.feature_mask)[0]
    assert result.seq_attr.shape == (inp.n_itp_features,)
    assert torch.allclose(result.seq_attr, expected, atol=1e-6), (name, result.seq_attr, expected)
    assert result.target_type == (spec.default_target_type or "prob")


# --- many inputs at once -------------------------------------------------------------

# Lengths differ, so every batch but the last is right-padded.
BATCH_TEXTS = [
    "Works well.",
    "It works great. Not bad at all... Dr. Smith agrees.",
    "Not bad, really.",
    "It works. Not bad, really.",
    "Terrible side effects: nausea, headache and dizziness.",
]


def batch_inputs(tokenizer):
    return TextFeatureInput.from_texts(BATCH_TEXTS, tokenizer, level="word", template="Review: {}")


def model_probabilities(model, inp):
    r"""Ground truth: the HF model's own prediction on the unpadded input."""
    with torch.no_grad():
        return torch.softmax(model(input_ids=inp.input_ids).logits[0].double(), -1)


BATCHED_METHODS = {
    "sp-pi": (lambda model: SinglePassProgressive(model), {}),
    "mp-pi": (lambda model: MultiPassProgressive(model), {"seed": 0, "n_samples": 12}),
    "input-x-gradient": (lambda model: METHODS_BY_NAME["input-x-gradient"].build(model), {}),
    "captum-kernel-shap": (lambda model: KernelShap(model), {"seed": 0, "n_samples": 24}),
}


@pytest.mark.parametrize("name", list(BATCHED_METHODS))
def test_a_text_explained_in_a_batch_is_explained_as_alone(tokenizer, gpt2, name):
    factory, kwargs = BATCHED_METHODS[name]
    explainer = LLMClassifierAttribution(factory(gpt2), tokenizer)
    inputs = batch_inputs(tokenizer)
    lengths = {inp.input_ids.shape[1] for inp in inputs}
    assert len(lengths) == len(inputs)  # every row but the longest of a batch is padded
    alone = [explainer.attribute(inp, **kwargs) for inp in inputs]
    batched = explainer.attribute_batch(inputs, batch_size=3, **kwargs)
    assert len(batched) == len(inputs)
    for inp, one, many in zip(inputs, alone, batched):
        truth = model_probabilities(gpt2, inp)
        assert torch.allclose(many.probabilities, truth, atol=1e-5, rtol=0), (name, inp.text)
        assert torch.allclose(one.probabilities, truth, atol=1e-5, rtol=0)
        assert many.target == one.target == int(truth.argmax())
        assert many.features is inp and many.input_tokens == inp.values
        assert many.seq_attr.shape == (inp.n_itp_features,)
        assert torch.allclose(many.seq_attr, one.seq_attr, atol=1e-5, rtol=0), (name, inp.text)


def test_batch_results_do_not_depend_on_the_batch_size(tokenizer, gpt2):
    explainer = LLMClassifierAttribution(MultiPassProgressive(gpt2), tokenizer)
    inputs = batch_inputs(tokenizer)
    by_size = [explainer.attribute_batch(inputs, batch_size=size, seed=1) for size in (1, 2, 5)]
    for results in by_size[1:]:
        for reference, result in zip(by_size[0], results):
            assert torch.allclose(result.seq_attr, reference.seq_attr, atol=1e-5, rtol=0)


def test_protocol_methods_get_one_right_padded_call_per_batch(tokenizer, gpt2):
    method = RecordingProtocolMethod(gpt2)
    inputs = batch_inputs(tokenizer)
    results = LLMClassifierAttribution(method, tokenizer).attribute_batch(
        inputs, target=["negative", 2, None, 1, 0], batch_size=2, budget_hint=5
    )
    assert [len(call["inputs"]) for call in method.calls] == [2, 2, 1]
    first = method.calls[0]
    lengths = [inp.input_ids.shape[1] for inp in inputs[:2]]
    longest = max(lengths)
    assert first["inputs"].shape == first["feature_mask"].shape == first["attention_mask"].shape == (2, longest)
    for row, inp in enumerate(inputs[:2]):
        length = lengths[row]
        assert torch.equal(first["inputs"][row, :length], inp.input_ids[0])
        assert torch.equal(first["feature_mask"][row, :length], inp.feature_mask[0])
        assert first["attention_mask"][row].tolist() == [1] * length + [0] * (longest - length)
        assert (first["inputs"][row, length:] == tokenizer.pad_token_id).all()
        assert (first["feature_mask"][row, length:] == -1).all()
    assert first["target"].tolist() == [0, 2] and first["baselines"] == mask_token_id(tokenizer)
    assert first["budget_hint"] == 5
    predicted = int(model_probabilities(gpt2, inputs[2]).argmax())
    assert [r.target for r in results] == [0, 2, predicted, 1, 0]
    for inp, result in zip(inputs, results):
        assert result.seq_attr.tolist() == [10.0 * k + 1 for k in range(inp.n_itp_features)]


def test_iter_attribute_batch_yields_each_batch_as_it_is_computed(tokenizer, gpt2):
    method = RecordingProtocolMethod(gpt2)
    inputs = batch_inputs(tokenizer)
    results = LLMClassifierAttribution(method, tokenizer).iter_attribute_batch(inputs, batch_size=2)
    assert method.calls == []
    first = next(results)
    assert first.features is inputs[0] and len(method.calls) == 1
    rest = list(results)
    assert [r.features for r in rest] == inputs[1:] and len(method.calls) == 3


def test_batches_never_mix_mask_tokens(tokenizer, gpt2):
    method = RecordingProtocolMethod(gpt2)
    inputs = batch_inputs(tokenizer)[:3]
    inputs[1] = TextFeatureInput(BATCH_TEXTS[1], tokenizer, template="Review: {}", mask_token="<pad>")
    LLMClassifierAttribution(method, tokenizer).attribute_batch(inputs, batch_size=8)
    assert [len(c["inputs"]) for c in method.calls] == [1, 1, 1]
    assert [c["baselines"] for c in method.calls] == [mask_token_id(tokenizer), 0, mask_token_id(tokenizer)]


def test_captum_methods_are_seeded_for_every_input(tokenizer, gpt2):
    explainer = LLMClassifierAttribution(KernelShap(gpt2), tokenizer)
    inp = batch_inputs(tokenizer)[1]
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = explainer.attribute(inp, seed=4, n_samples=20)
    assert torch.equal(torch.random.get_rng_state(), state)  # the user's generator is untouched
    assert torch.equal(explainer.attribute(inp, seed=4, n_samples=20).seq_attr, first.seq_attr)
    assert not torch.equal(explainer.attribute(inp, seed=5, n_samples=20).seq_attr, first.seq_attr)


def test_a_plain_callable_gets_its_targets_checked_before_any_attribution(tokenizer, additive):
    method = RecordingProtocolMethod(additive)
    explainer = LLMClassifierAttribution(method, tokenizer)
    inputs = batch_inputs(tokenizer)[:3]
    results = explainer.iter_attribute_batch(inputs, target=[0, 7, 1], batch_size=1)
    with pytest.raises(ValueError, match=r"target\[1\]: target 7 is out of range"):
        next(results)
    assert method.calls == []
    results = explainer.attribute_batch(inputs, target=[0, "LABEL_2", None], batch_size=2)
    assert [r.target for r in results[:2]] == [0, 2] and results[0].label_names == ["LABEL_0", "LABEL_1", "LABEL_2"]


def test_batched_calls_are_checked_before_the_model_runs(tokenizer):
    short_model = tiny_gpt2_classifier(len(tokenizer), n_positions=16)
    explainer = LLMClassifierAttribution(SinglePassProgressive(short_model), tokenizer)
    inputs = TextFeatureInput.from_texts(["It works.", "Not bad.", TEXT * 3], tokenizer)
    bad_calls = [
        (dict(inputs=inputs), ValueError, r"inputs\[2\]: The input is \d+ tokens long .* reads at most 16"),
        (dict(inputs=inputs[:2] + ["It works."]), TypeError, r"inputs\[2\]: inp must be one of .*from_texts"),
        (dict(inputs=inputs[0]), TypeError, "inputs must be a list"),
        (dict(inputs=inputs[:2], target=[0, 1, 2]), ValueError, "3 entries for 2 inputs"),
        (dict(inputs=inputs[:2], target=[0, "great"]), ValueError, r"target\[1\]: Unknown label 'great'"),
        (dict(inputs=inputs[:2], target="great"), ValueError, r"^target: Unknown label"),
        (dict(inputs=inputs[:2], target=[0, 1.5]), TypeError, r"target\[1\] must be a class index"),
        (dict(inputs=inputs[:2], batch_size=0), ValueError, "batch_size must be a positive int"),
        (dict(inputs=inputs[:2], baselines=0), ValueError, "set by LLMClassifierAttribution"),
    ]
    for kwargs, error, message in bad_calls:
        with pytest.raises(error, match=message):
            explainer.iter_attribute_batch(**kwargs)
    assert explainer.per_position.n_calls == 0
    assert explainer.attribute_batch([]) == []


def test_lists_are_refused_with_a_pointer_to_the_batch_api(tokenizer, gpt2):
    explainer = LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer)
    inputs = TextFeatureInput.from_texts(["It works.", "Not bad."], tokenizer)
    with pytest.raises(TypeError, match="attribute_batch"):
        explainer.attribute(inputs)
    with pytest.raises(ValueError, match=r"from_texts.*attribute_batch"):
        TextFeatureInput(["It works.", "Not bad."], tokenizer)
    with pytest.raises(TypeError, match="from_texts"):
        explainer.attribute("It works.")
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        TextFeatureInput.from_texts(["It works.", "  "], tokenizer)
    with pytest.raises(TypeError, match="for one text use TextFeatureInput"):
        TextFeatureInput.from_texts("It works.", tokenizer)


def test_show_progress_draws_one_bar_over_the_inputs(tokenizer, gpt2, capsys):
    explainer = LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer)
    explainer.attribute_batch(batch_inputs(tokenizer), batch_size=2, show_progress=True)
    assert "5/5" in capsys.readouterr().err


# --- offsets into the user's text ------------------------------------------------------


@pytest.mark.parametrize("level", ["token", "word", "sentence"])
def test_feature_offsets_point_into_the_users_text(tokenizer, gpt2, level):
    import re
    import warnings

    from captum_pi.text import SuffixWarning

    text = "  It works great. Not bad at all... Dr. Smith agrees. "
    explainer = LLMClassifierAttribution(RecordingProtocolMethod(gpt2), tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuffixWarning)
        inp = TextFeatureInput(text, tokenizer, level=level, template="Review: {}\nSentiment:")
    summary = explainer.attribute(inp).to_dict()
    assert summary["text"] == text
    assert summary["prompt"] == {"prefix": "Review: ", "suffix": "\nSentiment:"}
    assert summary["prompt"]["prefix"] + summary["text"] + summary["prompt"]["suffix"] == inp.text
    features = summary["features"]
    assert [text[f["start"]:f["end"]] for f in features] == [f["text"] for f in features] == inp.values
    if level == "word":
        assert [(f["start"], f["end"]) for f in features] == [m.span() for m in re.finditer(r"\S+", text)]
    if level != "token":  # whitespace tokens are token features of their own
        assert features[0]["start"] == 2 and features[-1]["end"] == len(text.rstrip())


def test_nli_offsets_point_into_the_premise(tokenizer, gpt2):
    premise = "It works. Not bad at all."
    inp = TextFeatureInput.for_nli("The review is positive.", premise, tokenizer)
    summary = LLMClassifierAttribution(RecordingProtocolMethod(gpt2), tokenizer).attribute(inp).to_dict()
    assert summary["text"] == premise and "The review is positive." in summary["prompt"]["prefix"]
    assert [(f["start"], f["end"]) for f in summary["features"]] == [(0, 9), (10, 25)]


MASKING_METHODS = [name for name, spec in METHODS_BY_NAME.items() if spec.masks]


@pytest.mark.parametrize("masking", ["delete", "replace"])
@pytest.mark.parametrize("name", MASKING_METHODS)
def test_every_registry_method_gives_the_same_attributions_through_the_wrapper_and_directly(
    tokenizer, gpt2, name, masking
):
    spec = METHODS_BY_NAME[name]
    inp = TextFeatureInput(TEXT, tokenizer, level="sentence", template="Review: {}", masking=masking)
    options = {"seed": 4} if spec.stochastic else {}
    wrapped = LLMClassifierAttribution(spec.build(gpt2), tokenizer).attribute(inp, target=1, **options)
    direct = spec.build(gpt2).attribute(
        inp.input_ids, target=1, feature_mask=inp.feature_mask, baselines=inp.baselines_for(masking),
        masking=masking, **options,
    )
    expected = feature_attributions(direct, inp.feature_mask)[0].double()
    torch.testing.assert_close(wrapped.seq_attr, expected, atol=1e-6, rtol=0)
    assert wrapped.masking == masking
    # the wrapper's own masking overrides the input's
    other = "replace" if masking == "delete" else "delete"
    overridden = LLMClassifierAttribution(spec.build(gpt2), tokenizer, masking=other).attribute(
        inp, target=1, **options
    )
    assert overridden.masking == other


def test_the_wrapper_refuses_masking_as_a_call_argument(tokenizer, gpt2):
    inp = TextFeatureInput(TEXT, tokenizer, level="sentence")
    with pytest.raises(ValueError, match="set by LLMClassifierAttribution"):
        LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer).attribute(inp, masking="replace")
    with pytest.raises(ValueError, match="masking must be one of"):
        LLMClassifierAttribution(SinglePassProgressive(gpt2), tokenizer, masking="cut")
