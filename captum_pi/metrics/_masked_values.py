r"""
Shared machinery of the faithfulness metrics: validating the arguments and wrapping
the model (:func:`masked_value_setup`), reading attributions per feature
(:func:`_feature_scores`), ranking features, and evaluating masked inputs (coalitions
of features, built by the masking game of :mod:`captum_pi._core.masking`) in batches
across examples, at chosen positions (:func:`logits_at_positions`) or at the final
token (:func:`_final_logits`), as explained values (:func:`explained_value_array`).
The public names are shared with :mod:`captum_pi.interactions`.
"""
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from captum_pi._core.masking import Masking, MaskedInputs, concat_masked, resolve_masking
from captum_pi._core.progressive import (
    FeatureLayout,
    PerPositionForward,
    build_feature_layouts,
    check_target_type,
    explained_value,
    feature_attributions,
    vocab_size_of,
)

ForwardFunc = Union[Callable, PerPositionForward]


def progress(*args, **kwargs):
    r"""Captum's progress bar (:func:`captum._utils.progress.progress`), imported on
    first use: importing any part of captum imports ``captum.attr`` and with it
    matplotlib, which ``import captum_pi.metrics`` should not pay for."""
    from captum._utils.progress import progress as captum_progress

    return captum_progress(*args, **kwargs)


@dataclass
class MaskedValueSetup:
    r"""
    What evaluating the masked inputs of a metric (or a game) needs, from
    :func:`masked_value_setup`.

    Attributes:
        per_position (PerPositionForward): The model, read at every position.
        layouts (list of FeatureLayout): The feature layout of each row.
        masking (Masking): The masking game, checked against the layouts.
        rows (list of Tensor): Each row's token ids without its right padding.
        calls_before (int): Model calls ``per_position`` had made before.
        rows_before (int): Input rows ``per_position`` had evaluated before.
    """

    per_position: PerPositionForward
    layouts: List[FeatureLayout]
    masking: Masking
    rows: List[Tensor]
    calls_before: int = field(init=False)
    rows_before: int = field(init=False)

    def __post_init__(self) -> None:
        self.calls_before = self.per_position.n_calls
        self.rows_before = self.per_position.n_rows

    def counts(self) -> Tuple[int, int]:
        r"""``(model calls, input rows)`` spent since the setup was made."""
        return (
            self.per_position.n_calls - self.calls_before,
            self.per_position.n_rows - self.rows_before,
        )


def masked_value_setup(
    forward_func: ForwardFunc,
    inputs: Tensor,
    feature_mask: Optional[Tensor],
    attention_mask: Optional[Tensor],
    baselines: Optional[int],
    target_type: str,
    perturbations_per_eval: int,
    metric: str,
    masking: str,
) -> MaskedValueSetup:
    r"""
    Validates the arguments every metric shares and prepares the evaluation of its
    masked inputs: the model wrapped as a :class:`PerPositionForward` (unless it is
    one), the feature layout of each row, the masking game (checked against the
    layouts before any model pass) and each row's unpadded token ids.

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): The classifier.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        feature_mask (Tensor or None): ``[B, T]`` feature ids, -1 for fixed tokens.
        attention_mask (Tensor or None): ``[B, T]``, 1 real, 0 padding.
        baselines (int or None): The mask token under ``"replace"``, the token of the
                    empty input under ``"delete"``.
        target_type (str): ``"prob"``, ``"logit"`` or ``"log_prob"``.
        perturbations_per_eval (int): Rows per model call; a positive int.
        metric (str): Name of the caller, for error messages.
        masking (str): ``"delete"`` or ``"replace"``.

    Returns:
        :class:`MaskedValueSetup`
    """
    check_target_type(target_type)
    if not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
        raise ValueError(
            f"perturbations_per_eval must be a positive int, got {perturbations_per_eval!r}."
        )
    per_position = forward_func
    if not isinstance(per_position, PerPositionForward):
        per_position = PerPositionForward(forward_func)
    layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
    game = resolve_masking(masking, baselines, vocab_size_of(per_position), metric)
    game.check_layouts(layouts, metric)
    rows = [inputs[row, : layout.length].cpu() for row, layout in enumerate(layouts)]
    return MaskedValueSetup(per_position, layouts, game, rows)


def _feature_scores(
    attributions: Tensor,
    inputs: Tensor,
    layouts: List[FeatureLayout],
    feature_mask: Optional[Tensor],
    attention_mask: Optional[Tensor],
) -> List[np.ndarray]:
    r"""Per example ``[n]`` attributions from a per-feature ``[B, n_max]`` or a
    token-level ``[B, T]`` tensor."""
    if not isinstance(attributions, Tensor) or attributions.dim() != 2:
        shape = (
            tuple(attributions.shape) if isinstance(attributions, Tensor) else type(attributions).__name__
        )
        raise ValueError(
            f"attributions must be a Tensor [B, n_features] or [B, T] in the FeatureAblation "
            f"convention, got {shape}."
        )
    batch, seq_len = inputs.shape
    n_max = max(layout.n_features for layout in layouts)
    if attributions.shape[0] != batch:
        raise ValueError(
            f"attributions must have one row per input row ({batch}), got {attributions.shape[0]}."
        )
    attributions = attributions.detach().cpu().double()
    width = attributions.shape[1]
    if width == n_max:
        per_feature = attributions
    elif width == seq_len:
        _check_token_convention(attributions, layouts)
        per_feature = feature_attributions(attributions, feature_mask, attention_mask)
    else:
        raise ValueError(
            f"attributions must be per feature [B, {n_max}] or per token [B, {seq_len}], "
            f"got {tuple(attributions.shape)}."
        )
    scores = []
    for row, layout in enumerate(layouts):
        row_scores = per_feature[row, : layout.n_features].numpy()
        if not np.isfinite(row_scores).all():
            raise ValueError(
                f"row {row}: attributions of its {layout.n_features} features must be finite, "
                f"got {row_scores.tolist()}."
            )
        scores.append(row_scores.copy())
    return scores


def _check_token_convention(attributions: Tensor, layouts: List[FeatureLayout]) -> None:
    for row, layout in enumerate(layouts):
        is_feature = layout.token_feature >= 0
        values = attributions[row, : layout.length][is_feature]
        owner = layout.token_feature[is_feature]
        if not torch.equal(values, attributions[row, layout.starts][owner]):
            raise ValueError(
                f"row {row}: token-level attributions must follow Captum's FeatureAblation "
                "convention (every token of a feature carries the feature's value); the "
                "tokens of some feature differ. Aggregate token scores per feature first, "
                "or pass per-feature attributions [B, n_features]."
            )


def _ranking(scores: np.ndarray, descending: bool) -> np.ndarray:
    r"""Feature indices by attribution; a stable sort, so ties keep sequence order
    (the earlier feature first) in both directions."""
    return np.argsort(-scores if descending else scores, kind="stable")


def _final_logits(
    per_position: PerPositionForward,
    blocks: Iterable[MaskedInputs],
    pad_id: int,
    perturbations_per_eval: int,
    bar: object,
) -> List[Tensor]:
    r"""
    Logits at the final token of every row of every block of masked inputs (see
    :func:`logits_at_positions`).

    Returns:
        One ``[P_i, C]`` tensor per block.
    """
    reads = ((block, block.final.unsqueeze(1)) for block in blocks)
    return [
        logits[:, 0]
        for logits in logits_at_positions(per_position, reads, pad_id, perturbations_per_eval, bar)
    ]


def logits_at_positions(
    per_position: PerPositionForward,
    reads: Iterable[Tuple[MaskedInputs, Tensor]],
    pad_id: int,
    perturbations_per_eval: int,
    bar: object,
) -> List[Tensor]:
    r"""
    Logits at chosen positions of every row of every block of masked inputs,
    evaluated ``perturbations_per_eval`` rows per model call across blocks. Rows of
    different lengths share a call with right padding; causal attention keeps
    padding out of every real position.

    Args:
        reads: Pairs ``(block, positions)``: ``P_i`` masked inputs and a LongTensor
                    ``[P_i, k_i]`` of the positions read in each.

    Returns:
        One ``[P_i, k_i, C]`` tensor per block.
    """
    pieces_of_block: List[List[Tensor]] = []
    pending: List[Tuple[MaskedInputs, Tensor, List[Tensor]]] = []

    def flush() -> None:
        if not pending:
            return
        batch = concat_masked([piece for piece, _, _ in pending], pad_id)
        width = max(positions.shape[1] for _, positions, _ in pending)
        positions = torch.cat([
            torch.nn.functional.pad(positions, (0, width - positions.shape[1]))
            for _, positions, _ in pending
        ])
        logits = per_position(batch.input_ids, batch.attention_mask).cpu()
        read = logits[torch.arange(len(batch)).unsqueeze(1), positions]
        offset = 0
        for piece, piece_positions, destination in pending:
            destination.append(read[offset : offset + len(piece), : piece_positions.shape[1]])
            offset += len(piece)
        bar.update(len(batch))
        pending.clear()

    n_pending = 0
    for block, positions in reads:
        pieces_of_block.append([])
        start = 0
        while start < len(block):
            take = min(perturbations_per_eval - n_pending, len(block) - start)
            pending.append((block[start : start + take], positions[start : start + take], pieces_of_block[-1]))
            n_pending += take
            start += take
            if n_pending == perturbations_per_eval:
                flush()
                n_pending = 0
    flush()
    return [torch.cat(pieces) if pieces else torch.empty(0) for pieces in pieces_of_block]


def explained_value_array(logits: Tensor, target: int, target_type: str) -> np.ndarray:
    r"""The explained value (probability, logit or log-probability of class
    ``target``, see :func:`~captum_pi._core.progressive.explained_value`) of logits
    ``[..., C]``, as a float64 array ``[...]``."""
    return explained_value(logits, target, target_type).double().numpy()
