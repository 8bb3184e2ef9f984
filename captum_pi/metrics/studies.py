r"""
Activation study (AS) and inverse activation study (IAS) of the paper's section 4.1:
the curve of the explained value as features are added in order of attribution, its
area (AUC), and the mean curve over examples.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.integrate import trapezoid
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
from captum_pi.metrics.confidence import ConfidenceInterval, mean_confidence_interval

__all__ = ["ActivationStudyResult", "activation_study", "inverse_activation_study"]


@dataclass
class ActivationStudyResult:
    r"""
    Curves and areas of an activation study (AS) or inverse activation study (IAS).

    Attributes:
        study (str): ``"activation"`` or ``"inverse_activation"``.
        curves (list of np.ndarray): Per example, ``[n + 1]``: the explained value
                    (by default the probability of the target class) at the final
                    token after adding 0, 1, ..., n features.
        orders (list of np.ndarray): Per example, ``[n]``: the features in the order
                    they were added.
        areas (np.ndarray): ``[B]`` area under each curve over the fraction of
                    features added, ``j / n`` for ``j = 0..n``, by the trapezoid rule.
        targets (Tensor): LongTensor ``[B]``, the explained class of each example.
        n_calls (int): Model calls made.
        n_rows (int): Input rows evaluated (forward-pass equivalents).
    """

    study: str
    curves: List[np.ndarray]
    orders: List[np.ndarray]
    areas: np.ndarray
    targets: Tensor
    n_calls: int
    n_rows: int

    @property
    def fractions(self) -> List[np.ndarray]:
        r"""Per example, ``[n + 1]``: the fraction of features added at each point."""
        return [np.linspace(0.0, 1.0, curve.size) for curve in self.curves]

    def summary(self, confidence: float = 0.95) -> ConfidenceInterval:
        r"""Mean area with its confidence interval (the paper's Tables 2-3, 5-6)."""
        return mean_confidence_interval(self.areas, confidence)

    def mean_curve(self, n_points: int = 101) -> Tuple[np.ndarray, np.ndarray]:
        r"""
        The mean curve over examples on a common grid of ``n_points`` fractions in
        [0, 1]. Each example's curve is linearly interpolated between its points
        (the same interpolation the trapezoid rule integrates), so when the grid
        contains every ``j / n`` the area under the mean curve is the mean area.

        Returns:
            ``(grid, mean)``, two arrays ``[n_points]``.
        """
        if n_points < 2:
            raise ValueError(f"n_points must be >= 2, got {n_points!r}.")
        grid = np.linspace(0.0, 1.0, n_points)
        interpolated = [
            np.interp(grid, fractions, curve) for fractions, curve in zip(self.fractions, self.curves)
        ]
        return grid, np.mean(interpolated, axis=0)

    @classmethod
    def concatenate(cls, results: Sequence["ActivationStudyResult"]) -> "ActivationStudyResult":
        r"""Joins results computed on several batches of examples of one study."""
        if not results:
            raise ValueError("concatenate needs at least one result.")
        studies = {result.study for result in results}
        if len(studies) != 1:
            raise ValueError(f"cannot concatenate results of different studies: {sorted(studies)}.")
        return cls(
            study=results[0].study,
            curves=[curve for result in results for curve in result.curves],
            orders=[order for result in results for order in result.orders],
            areas=np.concatenate([result.areas for result in results]),
            targets=torch.cat([result.targets for result in results]),
            n_calls=sum(result.n_calls for result in results),
            n_rows=sum(result.n_rows for result in results),
        )


def activation_study(
    forward_func: ForwardFunc,
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    inverse: bool = False,
    perturbations_per_eval: int = 32,
    show_progress: bool = False,
    masking: str = DEFAULT_MASKING,
) -> ActivationStudyResult:
    r"""
    Activation study (AS; Kariyappa et al., 2024, section 4.1, after Schnake et al.,
    2021): starting from the fully masked input, features are added one at a time
    in descending order of attribution (most positive first), and the model's
    probability of the explained class at the final token is recorded after each
    addition. The score is the area under this curve over the fraction of features
    added; a higher area means the attribution found the features that raise the
    prediction. With ``inverse=True`` features are added in ascending order (the
    inverse activation study, where a lower area is better).

    Conventions: an example with ``n`` features gives ``n + 1`` points, for 0, 1,
    ..., n features added, at fractions ``j / n``; the area is the trapezoid rule
    over [0, 1], so it lies in [0, 1] for probabilities. Ties are broken by a stable
    sort: equally attributed features are added in sequence order. The last point
    is the unmasked input, where ``target=None`` reads the predicted class.

    Cost: ``sum_i (n_i + 1)`` input rows, ``perturbations_per_eval`` per model call.

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): A Hugging Face
                    decoder-only ``*ForSequenceClassification`` model, a callable
                    returning per-position logits ``[B, T, C]``, or a
                    :class:`captum_pi.PerPositionForward` (reused, so its counters
                    keep accumulating and no causality probe is run).
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        attributions (Tensor): ``[B, n_max]`` per-feature attributions (NaN-padded)
                    or ``[B, T]`` token-level ones in the FeatureAblation convention.
        target (int or Tensor, optional): Class explained, an int or LongTensor
                    ``[B]``; None uses the class predicted on the unmasked input (the
                    paper uses the true class). Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; ids 0..n-1, -1
                    for fixed tokens. None makes every non-padding token a feature.
                    Default: None
        baselines (int, optional): Under ``masking="replace"`` the mask token id
                    of inactive features (the one the attribution methods used),
                    required; under ``"delete"`` only needed for rows without a
                    fixed token, as the token of their empty input. Default: None
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"`` (the paper), ``"logit"`` or
                    ``"log_prob"``. Default: "prob"
        inverse (bool, optional): Run the inverse activation study. Default: False
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over input rows. Default: False
        masking (str, optional): The masking game, ``"delete"`` or ``"replace"``
                    (see :mod:`captum_pi._core.masking`); use the one the compared
                    attributions were computed under. Default: "delete"

    Returns:
        :class:`ActivationStudyResult`

    Examples::

        >>> attr = SinglePassProgressive(model).attribute(ids, target=labels, feature_mask=words)
        >>> result = activation_study(model, ids, attr, target=labels, feature_mask=words, baselines=3)
        >>> result.summary()          # mean area with a 95% confidence interval
        >>> grid, curve = result.mean_curve()
    """
    setup = masked_value_setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "activation_study", masking,
    )
    scores = _feature_scores(attributions, inputs, setup.layouts, feature_mask, attention_mask)
    orders = [_ranking(row_scores, descending=not inverse) for row_scores in scores]
    bar = progress(
        desc="inverse activation study" if inverse else "activation study",
        total=sum(layout.n_features + 1 for layout in setup.layouts),
        disable=not show_progress,
    )
    blocks = (
        setup.masking.apply(row, layout, _cumulative_coalitions(order))
        for row, layout, order in zip(setup.rows, setup.layouts, orders)
    )
    logits = _final_logits(setup.per_position, blocks, setup.masking.pad_id, perturbations_per_eval, bar)
    bar.close()
    targets = resolve_targets(target, torch.stack([block[-1] for block in logits]))
    curves = [
        explained_value_array(block, int(row_target), target_type)
        for block, row_target in zip(logits, targets)
    ]
    areas = np.array([trapezoid(curve, np.linspace(0.0, 1.0, curve.size)) for curve in curves])
    n_calls, n_rows = setup.counts()
    return ActivationStudyResult(
        study="inverse_activation" if inverse else "activation",
        curves=curves,
        orders=orders,
        areas=areas,
        targets=targets,
        n_calls=n_calls,
        n_rows=n_rows,
    )


def inverse_activation_study(
    forward_func: ForwardFunc,
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    perturbations_per_eval: int = 32,
    show_progress: bool = False,
    masking: str = DEFAULT_MASKING,
) -> ActivationStudyResult:
    r"""
    Inverse activation study (IAS; Kariyappa et al., 2024, section 4.1): as
    :func:`activation_study`, but features are added in ascending order of
    attribution (most negative first), so a lower area means the attribution found
    the features that lower the prediction. Ties keep sequence order.

    Args:
        See :func:`activation_study` (without ``inverse``).

    Returns:
        :class:`ActivationStudyResult` with ``study == "inverse_activation"``.

    Examples::

        >>> result = inverse_activation_study(model, ids, attr, feature_mask=words, baselines=3)
        >>> result.summary()
    """
    return activation_study(
        forward_func, inputs, attributions, target=target, feature_mask=feature_mask,
        baselines=baselines, attention_mask=attention_mask, target_type=target_type,
        inverse=True, perturbations_per_eval=perturbations_per_eval, show_progress=show_progress,
        masking=masking,
    )


def _cumulative_coalitions(order: np.ndarray) -> Tensor:
    r"""BoolTensor ``[n + 1, n]``: row ``j`` activates the first ``j`` features of ``order``."""
    n = order.size
    rank = torch.empty(n, dtype=torch.long)
    rank[torch.from_numpy(order)] = torch.arange(n)
    return rank.unsqueeze(0) < torch.arange(n + 1).unsqueeze(1)
