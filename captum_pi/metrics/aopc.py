r"""
ERASER's comprehensiveness and sufficiency (DeYoung et al., 2020): the area over
the perturbation curve, averaged over the top 1, 5, 10, 20 and 50 percent of the
features.
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_pi._core.progressive import TargetType, resolve_targets
from captum_pi._core.masking import DEFAULT_MASKING
from captum_pi.metrics._masked_values import (
    ForwardFunc,
    _feature_scores,
    _final_logits,
    _ranking,
    explained_value_array,
    masked_value_setup,
    progress,
)
from captum_pi.metrics.confidence import mean_confidence_interval

__all__ = ["AOPCResult", "aopc"]

ERASER_FRACTIONS = (0.01, 0.05, 0.10, 0.20, 0.50)


@dataclass
class AOPCResult:
    r"""
    ERASER comprehensiveness and sufficiency (DeYoung et al., 2020).

    Attributes:
        comprehensiveness (np.ndarray): ``[B]`` mean over the fractions of
                    ``p(y|x) - p(y|x without its top features)``; higher is better.
        sufficiency (np.ndarray): ``[B]`` mean over the fractions of
                    ``p(y|x) - p(y|only its top features)``; lower is better.
        comprehensiveness_per_fraction (np.ndarray): ``[B, n_fractions]``.
        sufficiency_per_fraction (np.ndarray): ``[B, n_fractions]``.
        n_top (np.ndarray): ``[B, n_fractions]`` number of top features removed or
                    kept: ``max(1, ceil(fraction * n))``.
        fractions (tuple of float): The fractions of features.
        full_values (np.ndarray): ``[B]`` ``p(y|x)`` on the unmasked input.
        targets (Tensor): LongTensor ``[B]``.
        n_calls (int): Model calls made.
        n_rows (int): Input rows evaluated.
    """

    comprehensiveness: np.ndarray
    sufficiency: np.ndarray
    comprehensiveness_per_fraction: np.ndarray
    sufficiency_per_fraction: np.ndarray
    n_top: np.ndarray
    fractions: Tuple[float, ...]
    full_values: np.ndarray
    targets: Tensor
    n_calls: int
    n_rows: int

    def summary(self, confidence: float = 0.95) -> dict:
        r"""``{"comprehensiveness": ConfidenceInterval, "sufficiency": ConfidenceInterval}``."""
        return {
            "comprehensiveness": mean_confidence_interval(self.comprehensiveness, confidence),
            "sufficiency": mean_confidence_interval(self.sufficiency, confidence),
        }


def aopc(
    forward_func: ForwardFunc,
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    fractions: Sequence[float] = ERASER_FRACTIONS,
    perturbations_per_eval: int = 32,
    show_progress: bool = False,
    masking: str = DEFAULT_MASKING,
) -> AOPCResult:
    r"""
    ERASER's area over the perturbation curve (DeYoung et al., 2020):
    comprehensiveness ``p(y|x) - p(y|x without its top features)`` (higher is
    better) and sufficiency ``p(y|x) - p(y|only its top features)`` (lower is
    better), each averaged over the fractions 1, 5, 10, 20 and 50 percent.

    Conventions: for a fraction ``r`` of ``n`` features the top
    ``max(1, ceil(r n))`` features are removed (comprehensiveness) or kept
    (sufficiency), ranked by descending attribution with ties in sequence order;
    removed features are masked with the masking game (deleted by default, as in
    ERASER), fixed tokens stay. The scores
    are the plain mean over the fractions (ERASER's ``1 / (|B| + 1)`` normaliser,
    which adds a zero term for the empty bin, is not applied).

    Cost: per example one unmasked row and two rows per distinct number of top
    features, ``perturbations_per_eval`` per model call.

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): See
                    :func:`activation_study`.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        attributions (Tensor): ``[B, n_max]`` per feature or ``[B, T]`` per token.
        target (int or Tensor, optional): Class explained; None uses the predicted
                    class on the unmasked input. Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``. Default: None
        baselines (int, optional): Under ``masking="replace"`` the mask token id
                    of inactive features (the one the attribution methods used),
                    required; under ``"delete"`` only needed for rows without a
                    fixed token, as the token of their empty input. Default: None
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        fractions (sequence of float, optional): Fractions in (0, 1] of the
                    features. Default: (0.01, 0.05, 0.10, 0.20, 0.50)
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over input rows. Default: False
        masking (str, optional): The masking game, ``"delete"`` or ``"replace"``
                    (see :mod:`captum_pi._core.masking`); use the one the compared
                    attributions were computed under. Default: "delete"

    Returns:
        :class:`AOPCResult`

    Examples::

        >>> result = aopc(model, ids, attr, feature_mask=words, baselines=3)
        >>> result.comprehensiveness.mean(), result.sufficiency.mean()
    """
    fractions = _check_fractions(fractions)
    setup = masked_value_setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "aopc", masking,
    )
    scores = _feature_scores(attributions, inputs, setup.layouts, feature_mask, attention_mask)
    n_top = np.array([[_n_top(layout.n_features, r) for r in fractions] for layout in setup.layouts])
    distinct = [np.unique(row_top) for row_top in n_top]
    bar = progress(
        desc="AOPC", total=sum(1 + 2 * ks.size for ks in distinct), disable=not show_progress
    )
    blocks = (
        setup.masking.apply(row, layout, _aopc_coalitions(row_scores, ks))
        for row, layout, row_scores, ks in zip(setup.rows, setup.layouts, scores, distinct)
    )
    logits = _final_logits(setup.per_position, blocks, setup.masking.pad_id, perturbations_per_eval, bar)
    bar.close()
    targets = resolve_targets(target, torch.stack([block[0] for block in logits]))
    comprehensiveness = np.zeros(n_top.shape)
    sufficiency = np.zeros(n_top.shape)
    full_values = np.zeros(len(logits))
    for row, (block, ks) in enumerate(zip(logits, distinct)):
        values = explained_value_array(block, int(targets[row]), target_type)
        full_values[row] = values[0]
        position = np.searchsorted(ks, n_top[row])
        comprehensiveness[row] = values[0] - values[1 + position]
        sufficiency[row] = values[0] - values[1 + ks.size + position]
    n_calls, n_rows = setup.counts()
    return AOPCResult(
        comprehensiveness=comprehensiveness.mean(axis=1),
        sufficiency=sufficiency.mean(axis=1),
        comprehensiveness_per_fraction=comprehensiveness,
        sufficiency_per_fraction=sufficiency,
        n_top=n_top,
        fractions=fractions,
        full_values=full_values,
        targets=targets,
        n_calls=n_calls,
        n_rows=n_rows,
    )


def _check_fractions(fractions: Sequence[float]) -> Tuple[float, ...]:
    values = tuple(float(r) for r in fractions)
    if not values or any(not 0.0 < r <= 1.0 for r in values):
        raise ValueError(
            f"fractions must be a non-empty sequence of values in (0, 1], got {fractions!r}."
        )
    return values


def _n_top(n_features: int, fraction: float) -> int:
    r"""``max(1, ceil(fraction * n))``, with ``fraction * n`` rounded to 9 decimals
    first so that e.g. 7% of 100 features is 7 and not ``ceil(7.000000000000001) = 8``."""
    return max(1, math.ceil(round(fraction * n_features, 9)))


def _aopc_coalitions(scores: np.ndarray, n_tops: np.ndarray) -> Tensor:
    r"""Rows: all features; then without the top k for each k; then only the top k."""
    n = scores.size
    order = torch.from_numpy(_ranking(scores, descending=True))
    top = torch.zeros(n_tops.size, n, dtype=torch.bool)
    for index, k in enumerate(n_tops.tolist()):
        top[index, order[:k]] = True
    return torch.cat([torch.ones(1, n, dtype=torch.bool), ~top, top])
