r"""
Differentiable passes through a Hugging Face decoder-only classifier, shared by the
gradient-, attention- and propagation-based baselines.

:class:`captum_pi.PerPositionForward` (the core) reads logits without gradients; the
baselines here need gradients with respect to the input embeddings or the attention
maps, and sometimes the attention maps themselves. :class:`FinalTokenForward` runs the
model's decoder (``model.base_model``) and applies its ``score`` head to the hidden
state of the final non-padding token, which is exactly what the model's own forward
computes there (its last-token pooling finds that token through ``pad_token_id``,
which cannot tell a padding token from a mask token equal to it; we use the
attention mask instead).

:func:`eager_attention` switches the model to eager attention for the passes that need
attention probabilities and restores its setting afterwards.
"""
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_pi._core.progressive import (
    _eval_mode,
    _find_classification_head,
    _is_hf_model,
    explained_value,
)


def architecture_name(model: object) -> str:
    r"""``"LlamaForSequenceClassification (model_type 'llama')"`` for error messages."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    suffix = f" (model_type {model_type!r})" if model_type else ""
    return f"{type(model).__name__}{suffix}"


class FinalTokenForward:
    r"""
    Differentiable class logits at the final non-padding token of a Hugging Face
    decoder-only ``*ForSequenceClassification`` model.

    Args:
        model (nn.Module): The classifier. It must have a ``score`` head applied to
                    the decoder's last hidden state (GPT-2, Llama, Mistral, Qwen2,
                    Gemma3, OPT, GPT-NeoX, Phi, ...).
        method_name (str): Name of the attribution method, for error messages.
    """

    def __init__(self, model: nn.Module, method_name: str) -> None:
        if not _is_hf_model(model):
            raise ValueError(
                f"{method_name} needs a Hugging Face decoder-only *ForSequenceClassification "
                "model (it differentiates through the input embeddings or reads attention "
                f"maps); got {type(model).__name__}, which has no `config`. Use a "
                "perturbation method (feature-ablation, kernel-shap, mp-pi, ...) for plain "
                "callables."
            )
        self.model = model
        self.head = _find_classification_head(model)
        self.decoder = model.base_model
        if self.decoder is model:
            raise ValueError(
                f"{method_name} cannot find the decoder of {architecture_name(model)}: "
                "`model.base_model` is the model itself."
            )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed(self, input_ids: Tensor) -> Tensor:
        r"""Input embeddings ``[B, T, D]`` of token ids, as the model computes them
        (including any scaling inside the embedding module, e.g. Gemma)."""
        with torch.no_grad():
            return self.model.get_input_embeddings()(input_ids.to(self.device))

    def __call__(
        self,
        attention_mask: Tensor,
        input_ids: Optional[Tensor] = None,
        inputs_embeds: Optional[Tensor] = None,
        output_attentions: bool = False,
    ) -> Tuple[Tensor, Optional[Tuple[Tensor, ...]]]:
        r"""
        Returns:
            ``(final_logits [B, C], attentions)``; ``attentions`` is the tuple of
            per-layer attention probabilities ``[B, H, T, T]`` when
            ``output_attentions`` (the model must be in eager attention), else None.
        """
        attention_mask = attention_mask.to(self.device)
        with _eval_mode(self.model):
            outputs = self.decoder(
                input_ids=None if input_ids is None else input_ids.to(self.device),
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                output_attentions=output_attentions,
                use_cache=False,
            )
            hidden = outputs.last_hidden_state
            final = attention_mask.long().sum(dim=1) - 1
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            logits = self.head(hidden[rows, final])
        attentions = outputs.attentions if output_attentions else None
        if output_attentions and (not attentions or any(a is None for a in attentions)):
            raise ValueError(
                f"{architecture_name(self.model)} returned no attention probabilities; "
                "attention-based methods need eager attention."
            )
        return logits.float(), attentions


def explained_values(final_logits: Tensor, targets: Tensor, target_type: str) -> Tensor:
    r"""One explained value per row, ``[B]``, from ``final_logits [B, C]`` and one
    class index per row (see :func:`captum_pi._core.progressive.explained_value`)."""
    return torch.stack(
        [
            explained_value(final_logits[row], int(targets[row]), target_type)
            for row in range(final_logits.shape[0])
        ]
    )


def attention_mask_or_ones(inputs: Tensor, attention_mask: Optional[Tensor]) -> Tensor:
    return torch.ones_like(inputs) if attention_mask is None else attention_mask


@contextmanager
def eager_attention(model: nn.Module, method_name: str) -> Iterator[None]:
    r"""
    Runs the block with the model in eager attention, which returns attention
    probabilities, and restores the model's own implementation (e.g. ``"sdpa"``)
    afterwards, also when the block raises.
    """
    config = model.config
    original = getattr(config, "_attn_implementation", None)
    if original == "eager":
        yield
        return
    _set_attention(model, "eager", method_name)
    try:
        yield
    finally:
        _set_attention(model, original, method_name)


def _set_attention(model: nn.Module, implementation: Optional[str], method_name: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:  # transformers < 4.48
        model.config._attn_implementation = implementation
    if model.config._attn_implementation != implementation:
        raise ValueError(
            f"{method_name} needs attention probabilities, but the attention "
            f"implementation of {architecture_name(model)} cannot be switched to "
            f"{implementation!r} at run time."
        )
