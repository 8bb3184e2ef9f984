from typing import Callable, List, Optional

import torch
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_pi._core.masking import (
    DEFAULT_MASKING,
    Masking,
    check_baseline,
    check_masking,
    with_fully_masked_rows,
)
from captum_pi._core.progressive import (
    PerPositionForward,
    TargetType,
    build_feature_layouts,
    check_target_type,
    expand_to_tokens,
    explained_value,
    resolve_targets,
    vocab_size_of,
)


class SinglePassProgressive(PerturbationAttribution):
    r"""
    Single-Pass Progressive Inference (SP-PI; Kariyappa et al., ICML 2024, section
    3.1). A decoder-only classifier applies its head at every position and, because
    attention is causal, its prediction ``p_k`` at the last token of feature ``k``
    approximates its prediction on the input with every later feature masked. SP-PI
    reads these intermediate predictions from one forward pass and attributes to
    feature ``k`` the change it caused:

    .. math::
        \phi_k = p_k - p_{k-1}

    ``p_0``, the prediction before any feature was seen, is read at the last fixed
    token (feature id -1, e.g. BOS or an instruction prefix) before the first
    feature; when the first feature starts the sequence it is the prediction on the
    fully masked input (see :mod:`captum_pi._core.masking`), evaluated in the same
    model call. Local accuracy holds exactly: ``sum_k phi_k = p_n - p_0``.

    Under the deletion game (``masking="delete"``, the default) SP-PI is exact by
    causality: ``p_k`` is the model's prediction on the input with every feature
    after ``k`` deleted, so ``phi_k = f(x_{1..k}) - f(x_{1..k-1})``, the marginal
    contribution of feature ``k`` in reading order, as long as no fixed text
    follows a feature (:class:`~captum_pi._core.masking.SuffixWarning`). Under
    ``masking="replace"`` ``p_k`` only approximates the prediction on the input
    with later features replaced by the mask token.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model (GPT-2, Llama, Mistral,
                    Qwen2, Gemma3, OPT, GPT-NeoX, Phi, ...), whose ``score`` head is
                    read at every position, or a callable
                    ``f(input_ids, attention_mask=None)`` returning per-position
                    class logits ``[B, T, C]``.

    Examples::

        >>> from transformers import GPT2Config, GPT2ForSequenceClassification
        >>> model = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=32, n_head=2))
        >>> sp = SinglePassProgressive(model)
        >>> ids = torch.tensor([[50256, 40, 588, 428, 3807]])  # BOS + 4 tokens
        >>> words = torch.tensor([[-1, 0, 1, 1, 2]])
        >>> attr = sp.attribute(ids, feature_mask=words)      # [1, 5]
    """

    def __init__(self, forward_func: Callable) -> None:
        PerturbationAttribution.__init__(self, forward_func)
        self.per_position = PerPositionForward(forward_func)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        target_type: str = "prob",
        masking: str = DEFAULT_MASKING,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids. Rows are explained
                        independently; pad on the right and pass ``attention_mask``.
            target (int or Tensor, optional): Class explained, an int or a
                        LongTensor ``[B]``. None explains the class the model predicts
                        on the full input. Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``: tokens
                        sharing an id >= 0 form one feature (a word, a sentence), ids
                        0, 1, ..., n-1 in order, each one contiguous span; -1 marks
                        tokens never attributed (BOS, template text, padding). None
                        makes every non-padding token a feature. Default: None
            baselines (int, optional): Needed only for rows whose first feature
                        starts the sequence (no -1 token before it), whose ``p_0``
                        comes from the fully masked input: under ``"replace"`` the
                        mask token id; under ``"delete"`` the token read as the
                        empty input of rows without any fixed token (e.g. BOS).
                        Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            target_type (str, optional): Quantity explained: ``"prob"`` (softmax
                        probability of the target), ``"logit"`` or ``"log_prob"``.
                        Default: "prob"
            masking (str, optional): The masking game of the fully masked input:
                        ``"delete"`` or ``"replace"`` (see
                        :mod:`captum_pi._core.masking`). Default: "delete"

        Returns:
            Tensor ``[B, T]``: every token of feature ``k`` carries ``phi_k``; fixed
            tokens and padding carry 0. :func:`captum_pi.feature_attributions` turns
            it into ``[B, n_features]``.
        """
        target_type = check_target_type(target_type)
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        masking = Masking(check_masking(masking), check_baseline(baselines, vocab_size_of(self.per_position)))
        rows_needing_empty = [row for row, layout in enumerate(layouts) if layout.prefix_end is None]
        if rows_needing_empty and masking.rule == "replace" and masking.token is None:
            raise ValueError(
                f"rows {rows_needing_empty} have no fixed (-1) token before their first "
                "feature, so the prediction before any feature must come from the input "
                "with every feature masked: pass the mask token id as `baselines`, mark "
                "a BOS/prefix token -1 in feature_mask, or use masking='delete'."
            )
        masking.check_layouts(layouts, "SinglePassProgressive")
        batch_ids, batch_mask, finals = with_fully_masked_rows(
            inputs, attention_mask, layouts, rows_needing_empty, masking
        )
        logits = self.per_position(batch_ids, batch_mask).cpu()
        batch = inputs.shape[0]
        final = torch.stack([logits[row, layout.length - 1] for row, layout in enumerate(layouts)])
        targets = resolve_targets(target, final)
        empty_row_of = {row: batch + offset for offset, row in enumerate(rows_needing_empty)}
        phis: List[Tensor] = []
        for row, layout in enumerate(layouts):
            values = explained_value(logits[row], int(targets[row]), target_type)
            if layout.prefix_end is not None:
                before = values[layout.prefix_end]
            else:
                empty_row = empty_row_of[row]
                before = explained_value(logits[empty_row, finals[empty_row]], int(targets[row]), target_type)
            progressive = torch.cat([before.reshape(1), values[layout.ends]])
            phis.append(progressive.diff())
        return expand_to_tokens(phis, layouts, inputs.shape[1]).to(logits.dtype)
