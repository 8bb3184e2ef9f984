import pytest
import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from captum_pi import feature_attributions
from captum_pi._core.gradient_adapters import TokenInputXGradient
from captum_pi._core.lrp_transformer import (
    TransformerLRP,
    _with_constant_normaliser,
    conservative_propagation,
)
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
    relevance = TransformerLRP(model).relevance(IDS, target=1).double()
    # float32 rounding scales with the relevances that cancel in the sum (~20x the
    # logit here), not with the logit: over 12 seeds of these weights the error was
    # 1.4-22 eps * sum|R| (up to 1.2e-4 * |logit|); a rule that leaks is off by ~|logit|
    tolerance = 100 * torch.finfo(torch.float32).eps * relevance.abs().sum(dim=(1, 2))
    assert ((relevance.sum(dim=(1, 2)) - logit).abs() <= tolerance).all()


class Float32KernelRMSNorm(LlamaRMSNorm):
    r"""A Llama RMSNorm (which computes in float32 whatever its input dtype) whose
    output differs from this CPU's by a relative 3e-7, a few float32 ulps, as the
    kernels of other CPUs give (reduction order, vectorised rsqrt)."""

    def forward(self, hidden_states):
        output = super().forward(hidden_states)
        pattern = torch.tensor([1.0, -1.0], dtype=output.dtype).repeat(output.shape[-1] // 2)
        return output * (1.0 + 3e-7 * pattern)


def _replace_norms(model, make_norm):
    generator = torch.Generator().manual_seed(3)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LlamaRMSNorm):
                norm = make_norm(child).to(child.weight.dtype)
                with torch.no_grad():
                    norm.weight.copy_(1.0 + 0.2 * torch.randn(norm.weight.shape, generator=generator))
                setattr(module, child_name, norm)
    return model


def test_float64_model_whose_norms_compute_in_float32_is_matched_at_float32_precision():
    r"""HF RMSNorms compute in float32 even in a float64 model: their output carries
    float32 rounding that depends on the CPU, so it must be matched with float32's
    tolerance, not float64's, and relevance is conserved to float32 precision."""
    model = _replace_norms(
        tiny_classifier("llama").double(),
        lambda norm: Float32KernelRMSNorm(norm.weight.shape[0], eps=norm.variance_epsilon),
    )
    relevance = TransformerLRP(model).relevance(IDS, target=1).double().sum(dim=(1, 2))
    logit = _target_logit(model, IDS, 1)
    # float32 rounding in the norms (and in relevance()'s float32 output) leaves ~1e-8
    # here; a perturbation of 3e-6 instead of 3e-7 gives ~1e-7, a leak through the
    # normaliser ~1e-1
    assert (relevance - logit).abs().max() <= 1e-6 * max(1.0, float(logit.abs().max()))


def test_float64_norms_are_matched_at_float64_precision():
    r"""torch's nn.RMSNorm / nn.LayerNorm compute natively in float64: a recomputation
    in float32 (off by ~1e-8) must not be taken for them, so the forward value and
    the conservation are exact to float64 rounding."""
    model = _replace_norms(
        tiny_classifier("llama").double(), lambda norm: nn.RMSNorm(norm.weight.shape[0], eps=1e-6)
    )
    # relevance() and FinalTokenForward round to float32, so neither is used; the
    # logit is the pass's own (eager attention computes its softmax in float32)
    embeddings = model.get_input_embeddings()(IDS).detach().requires_grad_()
    with conservative_propagation(model):
        logit = model.score(model.model(inputs_embeds=embeddings).last_hidden_state[:, -1])[:, 1]
        (gradient,) = torch.autograd.grad(logit.sum(), embeddings)
    relevance, logit = (embeddings * gradient).sum(dim=(1, 2)).detach(), logit.detach()
    assert (relevance - logit).abs().max() <= 1e-12 * max(1.0, float(logit.abs().max()))
    x = 3.0 * torch.randn(4, 256, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for norm in (nn.RMSNorm(256, eps=1e-6), nn.LayerNorm(256)):
        norm = norm.double()
        output = norm(x).detach()
        scale = float(output.abs().mean())
        recomputed = _with_constant_normaliser(norm, x, output, "test").detach()
        assert (recomputed - output).abs().max() <= 1e-13 * scale
        in_float32 = norm.float()(x.float()).double().detach()  # what float32 arithmetic gives
        assert (in_float32 - output).abs().max() > 1e-9 * scale
