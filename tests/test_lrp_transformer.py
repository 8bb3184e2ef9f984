import pytest
import torch
from torch import nn

from captum_pi import feature_attributions
from captum_pi._core.captum_adapters import TokenInputXGradient
from captum_pi._core.lrp_transformer import TransformerLRP, conservative_propagation
from toy_models import ARCHITECTURES, tiny_classifier

IDS = torch.randint(3, 64, (2, 10), generator=torch.Generator().manual_seed(0))
WORDS = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4]])
BIAS_FREE = ("llama", "mistral", "gemma3")  # no biases, no learned position embeddings


def _target_logit(model, ids, target):
    with torch.no_grad():
        return model(ids).logits[:, target].double()


@pytest.mark.parametrize("architecture", BIAS_FREE)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_token_relevances_sum_to_the_explained_logit(architecture, dtype, tolerance):
    model = tiny_classifier(architecture).to(dtype)
    relevance = TransformerLRP(model).relevance(IDS, target=1)
    logit = _target_logit(model, IDS, 1)
    conserved = relevance.double().sum(dim=(1, 2))
    # RMSNorm computes in float32 inside the model, hence 1e-6 rather than 1e-12 in float64
    assert (conserved - logit).abs().max() <= tolerance * max(1.0, float(logit.abs().max()))
    signed = TransformerLRP(model).attribute(IDS, target=1, aggregation="sum", feature_mask=WORDS)
    fixed_token = relevance[:, 0].double().sum(dim=1)  # BOS is not a feature
    features = feature_attributions(signed, WORDS).double().sum(dim=1)
    assert (features + fixed_token - logit).abs().max() <= 5 * tolerance * max(1.0, float(logit.abs().max()))


def _first_layer(model):
    layer_class = model.base_model._can_record_outputs["hidden_states"]
    return next(module for module in model.modules() if isinstance(module, layer_class))


def _randomise_biases(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_relevance_is_conserved_when_biases_and_positions_are_accounted_for(architecture):
    r"""The rules make the network linear in the first layer's input (token plus
    position embeddings) and its additive parameters, so their relevances sum to the
    logit exactly (computed here independently of TransformerLRP's own pass)."""
    model = tiny_classifier(architecture).double()
    _randomise_biases(model)
    biases = [parameter for name, parameter in model.named_parameters() if name.endswith("bias")]
    captured = {}

    def capture(_module, args, kwargs):
        captured["hidden"] = args[0] if args else kwargs["hidden_states"]

    handle = _first_layer(model).register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with conservative_propagation(model) as state:
            logit = model(IDS[:1]).logits[0, 2]
            hidden = captured["hidden"]
            gradients = torch.autograd.grad(logit, [hidden] + biases, allow_unused=True)
    finally:
        handle.remove()
    state.check_attention_blocked()
    assert state.attention_maps == model.config.num_hidden_layers
    total = (hidden * gradients[0]).sum() + sum(
        (bias * gradient).sum() for bias, gradient in zip(biases, gradients[1:]) if gradient is not None
    )
    total, logit = float(total.detach()), float(logit.detach())
    assert total == pytest.approx(logit, abs=1e-6 * max(1.0, abs(logit)))
    assert abs(logit) > 1e-3


def _hook_snapshot(model):
    return {
        name: (tuple(module._forward_hooks), tuple(module._forward_pre_hooks),
               tuple(module._backward_hooks))
        for name, module in model.named_modules()
    }


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_model_is_left_exactly_as_it_was(architecture):
    model = tiny_classifier(architecture)
    before = model(IDS).logits.detach()
    implementation = model.config._attn_implementation
    # transformers installs its own (dormant) output-recording hooks the first time
    # attentions are requested; the snapshot is taken after that
    model(IDS, output_attentions=True)
    hooks = _hook_snapshot(model)
    with conservative_propagation(model):
        inside = model(IDS).logits.detach()
        assert model.config._attn_implementation == "eager"
    TransformerLRP(model).attribute(IDS)
    assert model.config._attn_implementation == implementation
    assert _hook_snapshot(model) == hooks
    torch.testing.assert_close(inside, before, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(IDS).logits.detach(), before, atol=0, rtol=0)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_rules_change_the_gradient():
    model = tiny_classifier("llama")
    lrp = TransformerLRP(model).attribute(IDS, target=0, target_type="logit", feature_mask=WORDS)
    ixg = TokenInputXGradient(model).attribute(IDS, target=0, target_type="logit", feature_mask=WORDS)
    assert not torch.allclose(lrp, ixg, atol=1e-6)


class FancyNorm(nn.Module):
    def forward(self, hidden):
        return hidden / hidden.abs().amax(-1, keepdim=True)


def test_unsupported_normalisation_is_named():
    model = tiny_classifier("llama")
    model.model.norm = FancyNorm()
    with pytest.raises(ValueError, match="LlamaForSequenceClassification.*FancyNorm"):
        TransformerLRP(model)


def test_unsupported_gating_is_named():
    model = tiny_classifier("gpt2")
    model.transformer.h[0].mlp.gate = nn.Linear(32, 32)
    with pytest.raises(ValueError, match="GPT2ForSequenceClassification.*gate"):
        TransformerLRP(model)


def test_normalisation_formula_is_matched_exactly_with_large_activations():
    r"""Gemma's RMSNorm scales by (1 + w); with a few very large scales (as in real
    Gemma 3 checkpoints) a loose match could take it for Llama's w and change the
    forward value. The value inside the context must be the model's own."""
    model = tiny_classifier("gemma3")
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
                parameter[0] = 1000.0  # an outlier dimension
    logit = _target_logit(model, IDS, 1)
    with conservative_propagation(model):
        inside = _target_logit(model, IDS, 1)
    torch.testing.assert_close(inside, logit, atol=1e-5, rtol=1e-5)
    relevance = TransformerLRP(model).relevance(IDS, target=1).double().sum(dim=(1, 2))
    assert (relevance - logit).abs().max() <= 1e-4 * max(1.0, float(logit.abs().max()))
