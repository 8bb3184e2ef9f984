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


def brute_force_value(model, inp, coalition, target):
    r"""P(target) at the final token of the input with features outside ``coalition``
    masked, by building the ids by hand and calling the model's own forward."""
    ids = inp.input_ids[0].clone()
    for position, feature in enumerate(inp.feature_mask[0].tolist()):
        if feature >= 0 and feature not in coalition:
            ids[position] = inp.baselines
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0]
    return float(torch.softmax(logits.double(), -1)[target])


@pytest.mark.parametrize("perturbations_per_eval", [1, 4])
def test_captum_methods_on_a_hf_classifier_match_brute_force(tokenizer, gpt2, perturbations_per_eval):
    inp = TextFeatureInput(TEXT, tokenizer, level="sentence", template="Review: {}")
    n = inp.n_itp_features
    target = 2
    every = set(range(n))
    full = brute_force_value(gpt2, inp, every, target)
    ablation = LLMClassifierAttribution(FeatureAblation(gpt2), tokenizer).attribute(
        inp, target="positive", perturbations_per_eval=perturbations_per_eval
    )
    expected = [full - brute_force_value(gpt2, inp, every - {k}, target) for k in range(n)]
    assert torch.allclose(ablation.seq_attr, torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    shapley = LLMClassifierAttribution(ShapleyValues(gpt2), tokenizer).attribute(
        inp, target=target, perturbations_per_eval=perturbations_per_eval
    )
    exact = exact_shapley(lambda s: brute_force_value(gpt2, inp, s, target), n)
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
    exact = LLMClassifierAttribution(ShapleyValues(gpt2), tokenizer).attribute(tokens, target=1)
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
