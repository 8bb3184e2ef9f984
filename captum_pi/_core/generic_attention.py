from typing import Optional, Sequence

import torch
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_pi._core.model_passes import (
    FinalTokenForward,
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
from captum_pi._core.token_aggregation import tokens_to_features


class GenericAttentionExplainability(GradientAttribution):
    r"""
    Generic Attention-model Explainability (GAE; Chefer, Gur & Wolf, ICCV 2021), a
    baseline of the paper's Tables 2 and 3: a rollout of gradient-weighted attention
    maps. With ``A^(l)`` the attention probabilities of layer ``l`` (``[H, T, T]``) and
    ``grad A^(l)`` the gradient of the explained value with respect to them,

    .. math::
        \bar A^{(l)} = \mathbb{E}_h\big[(\nabla A^{(l)} \odot A^{(l)})^+\big], \qquad
        R \leftarrow R + \bar A^{(l)} R \quad (l = 1..L), \qquad R_{init} = I,

    (Eqn 5 and 6 of Chefer et al. for self-attention) and the relevance of token ``j``
    is ``R[t, j]`` for the final non-padding token ``t``, whose hidden state the
    classification head reads. A feature's score is the **sum** of its tokens'
    relevances. Scores are non-negative; the final token's own relevance includes the
    identity's 1.

    Cost: one backward pass beyond the forward pass that gives the prediction (1 in
    the paper's Table 2). Attention probabilities need eager attention: the model is
    switched to it for the pass and restored afterwards.

    Args:
        forward_func (nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model.

    Examples::

        >>> gae = GenericAttentionExplainability(model)
        >>> attr = gae.attribute(ids, feature_mask=words)   # [B, T]
    """

    def __init__(self, forward_func: nn.Module) -> None:
        GradientAttribution.__init__(self, forward_func)
        self.final_token_forward = FinalTokenForward(forward_func, "GenericAttentionExplainability")

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        target_type: str = "logit",
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
            target_type (str, optional): Quantity whose gradient weights the
                        attention maps: ``"logit"`` (as Chefer et al.), ``"prob"`` or
                        ``"log_prob"``. Default: "logit"
            **kwargs: Other options of the uniform protocol, accepted and ignored.

        Returns:
            Tensor ``[B, T]`` (float32): every token of feature ``k`` carries the sum
            of the GAE relevances of its tokens; fixed tokens and padding carry 0.
        """
        target_type = check_target_type(target_type)
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        attention_mask = attention_mask_or_ones(inputs, attention_mask)
        forward = self.final_token_forward
        embeddings = forward.embed(inputs).requires_grad_()
        with eager_attention(forward.model, "GenericAttentionExplainability"):
            logits, attentions = forward(
                attention_mask, inputs_embeds=embeddings, output_attentions=True
            )
        targets = resolve_targets(target, logits.detach().cpu())
        values = explained_values(logits, targets, target_type)
        gradients = torch.autograd.grad(values.sum(), attentions)
        final = torch.tensor([layout.length - 1 for layout in layouts])
        token_scores = attention_rollout_relevance(
            [a.detach().double().cpu() for a in attentions],
            [g.double().cpu() for g in gradients],
            final,
        )
        return tokens_to_features(token_scores, layouts, "sum").float()

    def attribute_future(self) -> None:
        raise NotImplementedError(
            "GenericAttentionExplainability does not support attribute_future."
        )

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    def has_convergence_delta(self) -> bool:
        return False


def attention_rollout_relevance(
    attentions: Sequence[Tensor], gradients: Sequence[Tensor], final: Tensor
) -> Tensor:
    r"""
    Chefer et al.'s rule ``R <- R + mean_h((grad A * A)^+) R`` over layers, from
    ``R = I``.

    Args:
        attentions (sequence of Tensor): Per layer ``[B, H, T, T]``.
        gradients (sequence of Tensor): Per layer ``[B, H, T, T]``.
        final (Tensor): ``[B]`` index of the token whose relevance row is read.

    Returns:
        Tensor ``[B, T]``: row ``final`` of ``R``.
    """
    batch, _, seq_len, _ = attentions[0].shape
    relevance = torch.eye(seq_len, dtype=attentions[0].dtype).expand(batch, -1, -1)
    for attention, gradient in zip(attentions, gradients):
        weighted = (gradient * attention).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance[torch.arange(batch), final]
