r"""
LRP for Transformers (Ali et al., ICML 2022, "XAI for Transformers: Better
Explanations through Conservative Propagation"), implemented as gradient x input on
a forward pass in which the layers that break conservation are linearised.

Captum's ``LayerLRP`` has no rules for embeddings, LayerNorm/RMSNorm, GPT-2's
``Conv1D`` or GELU/SiLU, and does not conserve relevance on Hugging Face decoders.
Gradient x input is LRP-0 on linear layers, so once every remaining nonlinearity is
replaced, in the backward pass only, by a rule that conserves relevance, gradient x
input at the input embeddings is a conservative relevance propagation. The forward
values are unchanged; only gradients change:

- **Attention (AH rule)**: the attention probabilities are constants. Relevance flows
  through the values ``A V`` only, never through queries, keys or the softmax.
- **LayerNorm / RMSNorm (LN rule)**: the normaliser (standard deviation or root
  mean square) is a constant; the centring of LayerNorm and the elementwise scale
  and bias stay linear.
- **Elementwise activations (GELU, SiLU, ReLU, ...)**: identity rule, as in AttnLRP
  (Achtibat et al., 2024): the relevance leaving ``y = act(x)`` equals the relevance
  entering it; in gradient form the local derivative is ``act(x) / x`` (a constant).
  Plain autograd through GELU/SiLU would not conserve (``x act'(x) != act(x)``).
- **Gated MLPs** (``down(act(gate(x)) * up(x))``, Llama, Mistral, Qwen2, Gemma):
  uniform rule for the product: each factor receives half the relevance (the
  gradient through each factor is halved), since gradient x input on a product of
  two linear functions counts it twice.

With these rules the network is linear in its input embeddings and its additive
parameters (biases, position embeddings) with frozen coefficients, so

.. math::
    f(x) = \sum_{t, d} x_{t,d} \frac{\partial f}{\partial x_{t,d}}
          + \sum_{b \in \text{biases}} b \frac{\partial f}{\partial b}

exactly: on bias-free models without learned position embeddings (Llama, Mistral,
Qwen2 without its value bias, Gemma3) the token relevances alone sum to the
explained logit.
"""
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Set

import torch
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn
from transformers import activations as hf_activations

from captum_pi._core.model_passes import (
    FinalTokenForward,
    architecture_name,
    attention_mask_or_ones,
    eager_attention,
    explained_values,
)
from captum_pi._core.progressive import (
    TargetType,
    build_feature_layouts,
    check_target_type,
    resolve_targets,
)
from captum_pi._core.token_aggregation import (
    check_aggregation,
    reduce_embedding_dim,
    tokens_to_features,
)


class TransformerLRP(GradientAttribution):
    r"""
    LRP for Transformers (Ali et al., 2022), a baseline of the paper's Tables 2 and 3:
    gradient x input at the input embeddings of a forward pass in which attention
    probabilities and LayerNorm/RMSNorm normalisers are constants, activations follow
    the identity rule and gated products the uniform rule (see
    :func:`conservative_propagation` for the rules and the conservation property).

    Token relevance ``[T, D]`` is aggregated as the paper does for LRP (Appendix
    B.2): a token's score is the **L2 norm** of its embedding relevances and a
    feature's score the L2 norm of its tokens' scores (``aggregation="l2"``,
    non-negative). ``aggregation="sum"`` gives the signed relevance summed over
    embedding dimensions and tokens, which is conservative: on a bias-free model the
    feature scores plus the relevance of the fixed (-1) tokens sum to the explained
    logit (:meth:`relevance` returns the relevance of every token).

    Cost: one backward pass beyond the forward pass that gives the prediction (1 in
    the paper's Table 2). The pass runs in eager attention; the model's setting is
    restored afterwards and no hook is left on it.

    Args:
        forward_func (nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model (GPT-2, Llama, Mistral,
                    Qwen2, Gemma3, OPT, GPT-NeoX, Phi, ...). Architectures with a
                    normalisation or gating layer these rules do not cover raise a
                    ``ValueError`` naming the architecture and the layer.

    Examples::

        >>> lrp = TransformerLRP(model)
        >>> attr = lrp.attribute(ids, feature_mask=words)   # [B, T], L2-aggregated
    """

    def __init__(self, forward_func: nn.Module) -> None:
        GradientAttribution.__init__(self, forward_func)
        self.final_token_forward = FinalTokenForward(forward_func, "TransformerLRP")
        _check_supported(forward_func)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        target_type: str = "logit",
        aggregation: str = "l2",
        **kwargs: object,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
            target (int or Tensor, optional): Class explained, an int or a
                        LongTensor ``[B]``. None explains the predicted class.
                        Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; ids 0..n-1
                        in order, each one contiguous span; -1 for fixed tokens. None
                        makes every non-padding token a feature. Default: None
            baselines (int, optional): Unused (no token is masked). Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            target_type (str, optional): Relevance at the output: ``"logit"`` of
                        the target class (conservative, as LRP). ``"prob"`` and
                        ``"log_prob"`` differentiate through the final softmax with
                        plain autograd, which is not conservative. Default: "logit"
            aggregation (str, optional): ``"l2"`` (the paper's choice) or ``"sum"``
                        (signed, conservative). Default: "l2"
            **kwargs: Other options of the uniform protocol, accepted and ignored.

        Returns:
            Tensor ``[B, T]`` (float32): every token of feature ``k`` carries the
            feature's aggregated relevance; fixed tokens and padding carry 0.
        """
        aggregation = check_aggregation(aggregation)
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        relevance = self.relevance(inputs, target, attention_mask, target_type)
        token_scores = reduce_embedding_dim(relevance, aggregation)
        return tokens_to_features(token_scores, layouts, aggregation).float()

    def relevance(
        self,
        inputs: Tensor,
        target: TargetType = None,
        attention_mask: Optional[Tensor] = None,
        target_type: str = "logit",
    ) -> Tensor:
        r"""
        Relevance of every input-embedding entry, ``x * d f / d x`` under the
        conservative rules, before any aggregation.

        Returns:
            Tensor ``[B, T, D]`` (float32, on the CPU).
        """
        target_type = check_target_type(target_type)
        attention_mask = attention_mask_or_ones(inputs, attention_mask)
        forward = self.final_token_forward
        embeddings = forward.embed(inputs).requires_grad_()
        with conservative_propagation(forward.model) as propagation:
            logits, _ = forward(attention_mask, inputs_embeds=embeddings)
            targets = resolve_targets(target, logits.detach().cpu())
            values = explained_values(logits, targets, target_type)
            (gradient,) = torch.autograd.grad(values.sum(), embeddings)
        propagation.check_attention_blocked()
        return (embeddings * gradient).detach().float().cpu()

    def attribute_future(self) -> None:
        raise NotImplementedError("TransformerLRP does not support attribute_future.")

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return False


@dataclass
class PropagationState:
    r"""
    Counters of :func:`conservative_propagation`, to verify that every attention map
    computed inside the context had its gradient blocked during the backward pass.

    Attributes:
        attention_maps (int): Attention maps produced by forward passes.
        attention_maps_blocked (int): Attention maps whose incoming gradient was set
                    to zero during backward passes.
    """

    architecture: str
    attention_maps: int = 0
    attention_maps_blocked: int = 0

    def check_attention_blocked(self) -> None:
        if self.attention_maps_blocked != self.attention_maps:
            raise RuntimeError(
                f"LRP on {self.architecture}: {self.attention_maps} attention maps were "
                f"computed but the gradient of {self.attention_maps_blocked} was blocked; "
                "the attention probabilities returned by the model are not the ones its "
                "output depends on, so relevance would leak through the softmax."
            )


@contextmanager
def conservative_propagation(model: nn.Module) -> Iterator[PropagationState]:
    r"""
    Within the block, every forward pass of ``model`` (a Hugging Face decoder-only
    classifier) has the values it normally has, and gradients that make gradient x
    input a conservative relevance propagation (Ali et al., 2022; see the module
    docstring): attention probabilities and normalisers act as constants,
    activations follow the identity rule, gated products the uniform rule.

    The model is switched to eager attention (which returns attention probabilities)
    and forward hooks are registered on its decoder, normalisation layers,
    activations and gated MLPs; all are removed and the attention implementation is
    restored on exit. Nothing global is patched.

    Yields:
        :class:`PropagationState` whose counters let the caller check, after the
        backward pass, that the gradient of every attention map was blocked.

    Examples::

        >>> with conservative_propagation(model) as state:
        ...     embeddings = model.get_input_embeddings()(ids).requires_grad_()
        ...     logit = model(inputs_embeds=embeddings).logits[0, target]
        ...     (gradient,) = torch.autograd.grad(logit, embeddings)
        >>> state.check_attention_blocked()
        >>> relevance = embeddings * gradient   # sums to the logit on bias-free models
    """
    state = PropagationState(architecture_name(model))
    hook_plan = _plan_hooks(model)
    with ExitStack() as stack:
        stack.enter_context(eager_attention(model, "TransformerLRP"))
        handles = [
            model.base_model.register_forward_pre_hook(_request_attentions, with_kwargs=True),
            model.base_model.register_forward_hook(_blocking_attention_gradients(state)),
        ]
        handles += [module.register_forward_hook(hook) for module, hook in hook_plan]
        stack.callback(lambda: [handle.remove() for handle in handles])
        yield state


def _request_attentions(_module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    return args, {**kwargs, "output_attentions": True}


def _blocking_attention_gradients(state: PropagationState) -> Callable:
    def block(_grad: Tensor) -> Tensor:
        state.attention_maps_blocked += 1
        return torch.zeros_like(_grad)

    def hook(_module: nn.Module, _args: tuple, output: object) -> None:
        attentions = getattr(output, "attentions", None)
        if not attentions or any(a is None for a in attentions):
            raise ValueError(
                f"LRP on {state.architecture}: the decoder returned no attention "
                "probabilities in eager attention, so they cannot be treated as constants."
            )
        for attention in attentions:
            state.attention_maps += 1
            if attention.requires_grad:
                attention.register_hook(block)
            else:
                state.attention_maps_blocked += 1  # no gradient can flow through it

    return hook


def _plan_hooks(model: nn.Module) -> List["tuple[nn.Module, Callable]"]:
    gated = [module for module in model.modules() if _is_gated_mlp(module)]
    halved_activations: Set[int] = {id(mlp.act_fn) for mlp in gated}
    plan = [(mlp.up_proj, _halve_gradient) for mlp in gated]
    for module in model.modules():
        if _is_normalisation(module):
            plan.append((module, _normaliser_as_constant(model)))
        elif isinstance(module, _ACTIVATION_TYPES):
            factor = 0.5 if id(module) in halved_activations else 1.0
            plan.append((module, _identity_rule(factor)))
    return plan


def _check_supported(model: nn.Module) -> None:
    for name, module in model.named_modules():
        class_name = type(module).__name__
        if "Norm" in class_name and not _is_normalisation(module):
            raise ValueError(
                f"TransformerLRP does not support {architecture_name(model)}: its "
                f"normalisation layer {name!r} ({class_name}) is neither a LayerNorm nor an "
                "RMSNorm, so its normaliser cannot be treated as a constant."
            )
        if _is_gated_mlp(module):
            continue
        gates = [child for child, _ in module.named_children() if "gate" in child.lower()]
        if gates:
            raise ValueError(
                f"TransformerLRP does not support {architecture_name(model)}: module "
                f"{name!r} ({class_name}) has a gating sub-layer {gates[0]!r} that is not "
                "the gate_proj/up_proj/act_fn pattern of Llama-style MLPs, so the uniform "
                "rule for its product cannot be placed."
            )


def _is_gated_mlp(module: nn.Module) -> bool:
    return all(
        isinstance(getattr(module, name, None), nn.Module)
        for name in ("gate_proj", "up_proj", "down_proj", "act_fn")
    )


def _activation_types() -> tuple:
    classes = {
        entry[0] if isinstance(entry, tuple) else entry
        for entry in hf_activations.ACT2CLS.values()
    }
    classes |= {nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Mish,
                nn.Hardswish, nn.ReLU6, nn.ELU, nn.Softplus}
    return tuple(cls for cls in classes if isinstance(cls, type) and issubclass(cls, nn.Module))


_ACTIVATION_TYPES = _activation_types()


def _halve_gradient(_module: nn.Module, _args: tuple, output: Tensor) -> Tensor:
    return output.detach() + 0.5 * (output - output.detach())


def _identity_rule(factor: float) -> Callable:
    def hook(_module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        x = args[0]
        ratio = torch.where(x != 0, output / x, torch.zeros_like(output)).detach()
        return output.detach() + factor * ratio * (x - x.detach())

    return hook


def _is_normalisation(module: nn.Module) -> bool:
    if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
        return True
    name = type(module).__name__
    return name.endswith("RMSNorm") or name.endswith("LayerNorm")


def _normaliser_as_constant(model: nn.Module) -> Callable:
    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not args or not isinstance(args[0], Tensor) or not isinstance(output, Tensor):
            raise ValueError(
                f"TransformerLRP does not support {architecture_name(model)}: "
                f"{type(module).__name__} is not called as norm(hidden_states) -> Tensor."
            )
        return _with_constant_normaliser(module, args[0], output, architecture_name(model))

    return hook


def _with_constant_normaliser(module: nn.Module, x: Tensor, output: Tensor, architecture: str) -> Tensor:
    r"""Recomputes a LayerNorm / RMSNorm output with its normaliser detached and
    checks that the value is the module's own output."""
    layer_norm_first = isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("LayerNorm")
    # some "LayerNorm" classes (e.g. T5's) are RMS norms, and vice versa
    families = [_layer_norm, _rms_norm_candidates]
    if not layer_norm_first:
        families.reverse()
    output = output.detach()
    scale = float(output.abs().mean())
    for compute_dtype in _compute_dtypes(x):
        rtol = max(_tolerance(compute_dtype), _tolerance(output.dtype))
        for family in families:
            for candidate in family(module, x, compute_dtype):
                if candidate.shape == output.shape and torch.allclose(
                    candidate.detach(), output, rtol=rtol, atol=rtol * scale
                ):
                    return candidate
    raise ValueError(
        f"TransformerLRP does not support {architecture}: it cannot reproduce the output "
        f"of its normalisation layer {type(module).__name__} as (x - mean) / std * w + b "
        "or x / rms * w (or * (1 + w)), so it cannot treat its normaliser as a constant."
    )


def _compute_dtypes(x: Tensor) -> List[torch.dtype]:
    r"""The precisions a normalisation layer may compute in, most precise first.

    A module's output dtype does not say how precisely it was computed: torch's
    ``nn.LayerNorm`` / ``nn.RMSNorm`` compute natively in float64 for float64 inputs
    (in float32 for float16/bfloat16 ones), but Hugging Face RMSNorms (Llama,
    Mistral, Qwen2, Gemma3) upcast to float32 whatever the input, so a float64 model
    carries float32 rounding there, which differs between CPUs' kernels. Each
    candidate is therefore compared with the tolerance of the precision it is
    computed in; the native candidates come first so that a genuine float64 module
    is matched at float64 precision.
    """
    native = torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float32
    return [native] if native == torch.float32 else [native, torch.float32]


def _tolerance(dtype: torch.dtype) -> float:
    r"""How closely, relative to the values, a normalisation recomputed in (or
    rounded to) ``dtype`` must match the module's own output, elementwise. float64:
    far above its rounding (~1e-16) and far below float32's (~6e-8), so the two are
    told apart; float32: room for real models' large hidden sizes and outlier
    activations (reduction order, rsqrt vs sqrt); anything coarser: 2e-2."""
    return {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 2e-2)


def _epsilon(module: nn.Module, x: Tensor) -> float:
    for name in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(module, name, None)
        if value is not None:
            return float(value)
    return float(torch.finfo(x.dtype).eps)


def _layer_norm(module: nn.Module, x: Tensor, compute_dtype: torch.dtype) -> List[Tensor]:
    xc = x.to(compute_dtype)
    centred = xc - xc.mean(dim=-1, keepdim=True)
    std = torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + _epsilon(module, x)).detach()
    normed = centred / std
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if weight is not None:
        normed = normed * weight.to(compute_dtype)
    if bias is not None:
        normed = normed + bias.to(compute_dtype)
    return [normed.to(x.dtype)]


def _rms_norm_candidates(module: nn.Module, x: Tensor, compute_dtype: torch.dtype) -> List[Tensor]:
    xc = x.to(compute_dtype)
    rms = torch.sqrt(xc.pow(2).mean(dim=-1, keepdim=True) + _epsilon(module, x)).detach()
    normed = xc / rms
    weight = getattr(module, "weight", None)
    if weight is None:
        return [normed.to(x.dtype)]
    return [
        weight * normed.to(x.dtype),  # Llama, Mistral, Qwen2, torch.nn.RMSNorm
        (normed * (1.0 + weight.to(compute_dtype))).to(x.dtype),  # Gemma
    ]
