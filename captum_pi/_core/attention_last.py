from typing import Optional

import torch
from captum.attr._utils.attribution import Attribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_pi._core.model_passes import FinalTokenForward, attention_mask_or_ones, eager_attention
from captum_pi._core.progressive import TargetType, build_feature_layouts
from captum_pi._core.token_aggregation import tokens_to_features


class AttentionLast(Attribution):
    r"""
    Attention of the last layer (A-Last; Hollenstein & Beinborn, 2021), a baseline of
    the paper's Tables 2 and 3: the attention that the final token pays to each token
    in the last layer, averaged over heads,

    .. math::
        a_j = \frac{1}{H} \sum_h A^{(L)}_{h, t, j},

    where ``t`` is the final non-padding token, whose hidden state the classification
    head reads. A feature's score is the **sum** of its tokens' scores (the attention
    mass it receives). Scores are non-negative and do not depend on the class, so
    ``target`` is ignored.

    Cost: the one forward pass that also gives the prediction (0 extra, as in the
    paper's Table 2). The model is switched to eager attention for that pass, which
    returns attention probabilities, and restored afterwards.

    Args:
        forward_func (nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model (GPT-2, Llama, Mistral,
                    Qwen2, Gemma3, OPT, GPT-NeoX, Phi, ...).

    Examples::

        >>> a_last = AttentionLast(model)
        >>> attr = a_last.attribute(ids, feature_mask=words)   # [B, T]
    """

    def __init__(self, forward_func: nn.Module) -> None:
        Attribution.__init__(self, forward_func)
        self.final_token_forward = FinalTokenForward(forward_func, "AttentionLast")

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        **kwargs: object,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
            target (int or Tensor, optional): Unused (attention does not depend on
                        the class). Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; ids 0..n-1
                        in order, each one contiguous span; -1 for fixed tokens. None
                        makes every non-padding token a feature. Default: None
            baselines (int, optional): Unused (no token is masked). Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            **kwargs: Other options of the uniform protocol (e.g. ``target_type``),
                        accepted and ignored.

        Returns:
            Tensor ``[B, T]`` (float32): every token of feature ``k`` carries the
            head-averaged last-layer attention from the final token summed over the
            feature's tokens; fixed tokens and padding carry 0.
        """
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        attention_mask = attention_mask_or_ones(inputs, attention_mask)
        model = self.final_token_forward.model
        with eager_attention(model, "AttentionLast"), torch.no_grad():
            _, attentions = self.final_token_forward(
                attention_mask, input_ids=inputs, output_attentions=True
            )
        last_layer = attentions[-1].float().cpu()
        rows = torch.arange(inputs.shape[0])
        final = torch.tensor([layout.length - 1 for layout in layouts])
        token_scores = last_layer[rows, :, final, :].mean(dim=1)
        return tokens_to_features(token_scores, layouts, "sum").float()

    def attribute_future(self) -> None:
        raise NotImplementedError("AttentionLast does not support attribute_future.")

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    def has_convergence_delta(self) -> bool:
        return False
