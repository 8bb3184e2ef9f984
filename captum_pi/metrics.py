r"""
Faithfulness metrics for feature attributions of decoder-only sequence classifiers.

Every metric evaluates the model on masked copies of the input, built with the same
rule as the attribution methods (:func:`captum_pi._core.progressive.mask_features`:
every token of an inactive feature becomes the mask token ``baselines``, fixed (-1)
tokens are kept, the length is unchanged), and reads the model's prediction at the
final token. Masked inputs of all examples are evaluated together,
``perturbations_per_eval`` per model call, and every result reports the model calls
(``n_calls``) and input rows (``n_rows``, forward-pass equivalents) it cost.

- :func:`activation_study` and :func:`inverse_activation_study`: the paper's section
  4.1 (AS, higher is better; IAS, lower is better), with the mean and a 95% confidence
  interval over examples (the paper's Tables 5 and 6).
- :func:`aopc`: ERASER's comprehensiveness and sufficiency, averaged over the top 1, 5,
  10, 20 and 50 percent of the features.
- :func:`shapley_values` and :func:`shapley_agreement`: exact Shapley values by
  enumerating every coalition (or Captum's ``KernelShap`` with a large budget beyond
  ``max_exact_features``) and the cosine similarity, Spearman rank correlation and
  relative L2 error of an attribution against them.
- :func:`progressive_fidelity`: how far each intermediate prediction ``p_k`` (read in one
  pass on the unmasked input) is from the model's prediction on the input with every
  feature after ``k`` masked, the approximation Progressive Inference rests on.
- :func:`progressive_shapley_values`: exact Shapley values of the game MP-PI samples
  (each coalition read at the last token of its last feature, not at the final
  token); their agreement with :func:`shapley_values` bounds what MP-PI can reach.

Attributions are accepted per feature, ``[B, n_max]`` (NaN-padded, as returned by
:func:`captum_pi.feature_attributions`), or per token, ``[B, T]``, in Captum's
FeatureAblation convention (every token of a feature carries the feature's value).
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum._utils.progress import progress
from captum.attr import KernelShap
from scipy import stats
from scipy.integrate import trapezoid
from torch import Tensor

from captum_pi._core.progressive import (
    FeatureLayout,
    PerPositionForward,
    TargetType,
    build_feature_layouts,
    check_baseline,
    check_target_type,
    explained_value,
    feature_attributions,
    mask_features,
    resolve_targets,
    vocab_size_of,
)
from captum_pi._metrics_plots import plot_activation_curves, plot_fidelity_gap

__all__ = [
    "ConfidenceInterval",
    "mean_confidence_interval",
    "ActivationStudyResult",
    "activation_study",
    "inverse_activation_study",
    "AOPCResult",
    "aopc",
    "ShapleyValuesResult",
    "shapley_values",
    "progressive_shapley_values",
    "ShapleyAgreementResult",
    "shapley_agreement",
    "FidelityResult",
    "progressive_fidelity",
    "plot_activation_curves",
    "plot_fidelity_gap",
]

ERASER_FRACTIONS = (0.01, 0.05, 0.10, 0.20, 0.50)

ForwardFunc = Union[Callable, PerPositionForward]


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class ConfidenceInterval:
    r"""
    A mean over examples with a Student-t confidence interval.

    Attributes:
        mean (float): Mean of the finite values.
        half_width (float): Half-width of the interval, ``t_{(1+c)/2, m-1} s / sqrt(m)``;
                    NaN when fewer than 2 finite values.
        confidence (float): Confidence level ``c``.
        n_examples (int): Number ``m`` of finite values used (NaN values are dropped).
    """

    mean: float
    half_width: float
    confidence: float
    n_examples: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.half_width:.4f}"


def mean_confidence_interval(
    values: Union[Sequence[float], np.ndarray, Tensor], confidence: float = 0.95
) -> ConfidenceInterval:
    r"""
    Mean of per-example scores with a two-sided Student-t confidence interval, as in
    the paper's Tables 5 and 6. NaN values (e.g. a Spearman correlation of a
    constant attribution) are dropped and the count of the rest is reported.

    Args:
        values (array-like): One score per example.
        confidence (float, optional): Confidence level in (0, 1). Default: 0.95

    Returns:
        :class:`ConfidenceInterval`

    Examples::

        >>> result = activation_study(model, ids, attr, feature_mask=words, baselines=3)
        >>> mean_confidence_interval(result.areas)   # same as result.summary()
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    array = np.asarray(
        values.detach().cpu().numpy() if isinstance(values, Tensor) else values, dtype=np.float64
    ).ravel()
    finite = array[~np.isnan(array)]
    if finite.size == 0:
        return ConfidenceInterval(float("nan"), float("nan"), confidence, 0)
    mean = float(finite.mean())
    if finite.size < 2:
        return ConfidenceInterval(mean, float("nan"), confidence, 1)
    t_quantile = stats.t.ppf((1.0 + confidence) / 2.0, finite.size - 1)
    half_width = float(t_quantile * stats.sem(finite))
    return ConfidenceInterval(mean, half_width, confidence, int(finite.size))


# ----------------------------------------------------------------------------- results


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


@dataclass
class ShapleyValuesResult:
    r"""
    Reference Shapley values: of the masking game ``v(S) = f(x_S)`` at the final token
    (:func:`shapley_values`) or of the progressive game (:func:`progressive_shapley_values`).

    Attributes:
        values (Tensor): float64 ``[B, n_max]``, NaN-padded for rows with fewer
                    features.
        exact (list of bool): Per example, True when computed by enumerating all
                    ``2^n`` coalitions, False when estimated with Kernel SHAP.
        n_samples (list of int): Per example, the coalitions evaluated (``2^n`` when
                    exact).
        targets (Tensor): LongTensor ``[B]``.
        n_calls (int): Model calls made.
        n_rows (int): Input rows evaluated.
    """

    values: Tensor
    exact: List[bool]
    n_samples: List[int]
    targets: Tensor
    n_calls: int
    n_rows: int


@dataclass
class ShapleyAgreementResult:
    r"""
    Agreement of an attribution with Shapley values, per example.

    Attributes:
        cosine (np.ndarray): ``[B]`` cosine similarity (NaN if either vector is 0).
        spearman (np.ndarray): ``[B]`` Spearman rank correlation (NaN if either
                    vector is constant or n < 2).
        relative_l2 (np.ndarray): ``[B]`` ``||phi - phi_shapley|| / ||phi_shapley||``
                    (NaN if the Shapley values are all 0).
        shapley (ShapleyValuesResult): The reference, reusable for other methods
                    through ``shapley_agreement(..., shapley=result.shapley)``.
        n_calls (int): Model calls made by this call (0 when the reference was given).
        n_rows (int): Input rows evaluated by this call.
    """

    cosine: np.ndarray
    spearman: np.ndarray
    relative_l2: np.ndarray
    shapley: ShapleyValuesResult
    n_calls: int
    n_rows: int

    def summary(self, confidence: float = 0.95) -> dict:
        r"""Mean and confidence interval of each agreement score (NaN entries dropped)."""
        return {
            name: mean_confidence_interval(getattr(self, name), confidence)
            for name in ("cosine", "spearman", "relative_l2")
        }


@dataclass
class FidelityResult:
    r"""
    Fidelity of Progressive Inference's intermediate predictions.

    For feature ``k`` (1-based) of an example with ``n`` features,
    ``intermediate[k-1]`` is ``p_k``, the explained value read at the last token of
    feature ``k`` in one pass on the unmasked input; ``masked[k-1]`` is ``f(x'_k)``,
    the model's explained value at the final token of the input with features
    ``k+1..n`` masked; ``gaps[k-1] = p_k - f(x'_k)``. Fixed (-1) tokens after
    feature ``k`` (a prompt suffix) are seen by ``f(x'_k)`` but not by ``p_k``, so
    they show up as a gap: Progressive Inference ignores them.

    Attributes:
        intermediate (list of np.ndarray): Per example, ``[n]`` values ``p_k``.
        masked (list of np.ndarray): Per example, ``[n]`` values ``f(x'_k)``.
        gaps (list of np.ndarray): Per example, ``[n]`` signed gaps.
        prefix_gaps (np.ndarray): ``[B]`` gap of the prediction before any feature:
                    ``p_0`` at the last fixed token before the first feature minus
                    ``f`` on the fully masked input; NaN for examples without such a
                    token (there SP-PI uses the fully masked input itself).
        targets (Tensor): LongTensor ``[B]``.
        n_calls (int): Model calls made.
        n_rows (int): Input rows evaluated.
    """

    intermediate: List[np.ndarray]
    masked: List[np.ndarray]
    gaps: List[np.ndarray]
    prefix_gaps: np.ndarray
    targets: Tensor
    n_calls: int
    n_rows: int

    @property
    def relative_positions(self) -> List[np.ndarray]:
        r"""Per example, ``[n]``: ``k / n`` for ``k = 1..n``."""
        return [np.arange(1, gap.size + 1) / gap.size for gap in self.gaps]

    @property
    def mean_abs_gap(self) -> np.ndarray:
        r"""``[B]`` mean over features of ``|p_k - f(x'_k)|``."""
        return np.array([np.abs(gap).mean() for gap in self.gaps])

    @property
    def max_abs_gap(self) -> np.ndarray:
        r"""``[B]`` largest ``|p_k - f(x'_k)|`` over features."""
        return np.array([np.abs(gap).max() for gap in self.gaps])

    def gap_by_relative_position(self, n_bins: int = 10) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""
        Mean absolute gap in ``n_bins`` equal bins of the relative position
        ``k / n`` over (0, 1]; bin ``b`` holds positions in ``(b / n_bins, (b+1) / n_bins]``.

        Returns:
            ``(bin_centers, mean_abs_gap, count)``, arrays ``[n_bins]``; empty bins
            have NaN means.
        """
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive int, got {n_bins!r}.")
        positions = np.concatenate(self.relative_positions)
        gaps = np.abs(np.concatenate(self.gaps))
        bins = np.clip(np.ceil(positions * n_bins - 1e-9).astype(int) - 1, 0, n_bins - 1)
        count = np.bincount(bins, minlength=n_bins)
        total = np.bincount(bins, weights=gaps, minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        centers = (np.arange(n_bins) + 0.5) / n_bins
        return centers, mean, count

    def summary(self, confidence: float = 0.95) -> dict:
        r"""Mean and confidence interval of the per-example mean and max absolute gaps."""
        return {
            "mean_abs_gap": mean_confidence_interval(self.mean_abs_gap, confidence),
            "max_abs_gap": mean_confidence_interval(self.max_abs_gap, confidence),
        }


# ------------------------------------------------------------------ shared machinery


@dataclass
class _Setup:
    per_position: PerPositionForward
    layouts: List[FeatureLayout]
    baseline: int
    rows: List[Tensor]
    calls_before: int = field(init=False)
    rows_before: int = field(init=False)

    def __post_init__(self) -> None:
        self.calls_before = self.per_position.n_calls
        self.rows_before = self.per_position.n_rows

    def counts(self) -> Tuple[int, int]:
        return (
            self.per_position.n_calls - self.calls_before,
            self.per_position.n_rows - self.rows_before,
        )


def _setup(
    forward_func: ForwardFunc,
    inputs: Tensor,
    feature_mask: Optional[Tensor],
    attention_mask: Optional[Tensor],
    baselines: Optional[int],
    target_type: str,
    perturbations_per_eval: int,
    metric: str,
) -> _Setup:
    check_target_type(target_type)
    if not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
        raise ValueError(
            f"perturbations_per_eval must be a positive int, got {perturbations_per_eval!r}."
        )
    per_position = forward_func
    if not isinstance(per_position, PerPositionForward):
        per_position = PerPositionForward(forward_func)
    layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
    baseline = check_baseline(baselines, vocab_size_of(per_position))
    if baseline is None:
        raise ValueError(
            f"{metric} needs `baselines`: the mask token id that replaces the tokens of "
            "inactive features (the same one the attribution methods used)."
        )
    rows = [inputs[row, : layout.length].cpu() for row, layout in enumerate(layouts)]
    return _Setup(per_position, layouts, baseline, rows)


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
    blocks: Iterable[Tensor],
    pad_id: int,
    perturbations_per_eval: int,
    bar: object,
) -> List[Tensor]:
    r"""
    Logits at the final token of every row of every block (``[P_i, L_i]`` token
    ids), evaluated ``perturbations_per_eval`` rows per model call across blocks.
    Rows of different lengths share a call with right padding; causal attention
    keeps padding out of each row's final token.

    Returns:
        One ``[P_i, C]`` tensor per block.
    """
    sizes: List[int] = []
    outputs: List[Tensor] = []
    pending: List[Tensor] = []

    def flush() -> None:
        if not pending:
            return
        longest = max(piece.shape[1] for piece in pending)
        ids = torch.cat([
            torch.nn.functional.pad(piece, (0, longest - piece.shape[1]), value=pad_id)
            for piece in pending
        ])
        mask = torch.cat([
            torch.nn.functional.pad(torch.ones_like(piece), (0, longest - piece.shape[1]), value=0)
            for piece in pending
        ])
        lasts = torch.cat([
            torch.full((piece.shape[0],), piece.shape[1] - 1, dtype=torch.long) for piece in pending
        ])
        logits = per_position(ids, mask).cpu()
        outputs.append(logits[torch.arange(ids.shape[0]), lasts])
        bar.update(ids.shape[0])
        pending.clear()

    n_pending = 0
    for block in blocks:
        sizes.append(block.shape[0])
        start = 0
        while start < block.shape[0]:
            take = min(perturbations_per_eval - n_pending, block.shape[0] - start)
            pending.append(block[start : start + take])
            n_pending += take
            start += take
            if n_pending == perturbations_per_eval:
                flush()
                n_pending = 0
    flush()
    return list(torch.cat(outputs).split(sizes)) if outputs else [torch.empty(0)] * len(sizes)


def _values(logits: Tensor, target: int, target_type: str) -> np.ndarray:
    return explained_value(logits, target, target_type).double().numpy()


# ------------------------------------------------------------ activation studies


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
        baselines (int): Mask token id of inactive features. Required.
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"`` (the paper), ``"logit"`` or
                    ``"log_prob"``. Default: "prob"
        inverse (bool, optional): Run the inverse activation study. Default: False
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over input rows. Default: False

    Returns:
        :class:`ActivationStudyResult`

    Examples::

        >>> attr = SinglePassProgressive(model).attribute(ids, target=labels, feature_mask=words)
        >>> result = activation_study(model, ids, attr, target=labels, feature_mask=words, baselines=3)
        >>> result.summary()          # mean area with a 95% confidence interval
        >>> grid, curve = result.mean_curve()
    """
    setup = _setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "activation_study",
    )
    scores = _feature_scores(attributions, inputs, setup.layouts, feature_mask, attention_mask)
    orders = [_ranking(row_scores, descending=not inverse) for row_scores in scores]
    bar = progress(
        desc="inverse activation study" if inverse else "activation study",
        total=sum(layout.n_features + 1 for layout in setup.layouts),
        disable=not show_progress,
    )
    blocks = (
        mask_features(row, layout, _cumulative_coalitions(order), setup.baseline)
        for row, layout, order in zip(setup.rows, setup.layouts, orders)
    )
    logits = _final_logits(setup.per_position, blocks, setup.baseline, perturbations_per_eval, bar)
    bar.close()
    targets = resolve_targets(target, torch.stack([block[-1] for block in logits]))
    curves = [_values(block, int(row_target), target_type) for block, row_target in zip(logits, targets)]
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
    )


def _cumulative_coalitions(order: np.ndarray) -> Tensor:
    r"""BoolTensor ``[n + 1, n]``: row ``j`` activates the first ``j`` features of ``order``."""
    n = order.size
    rank = torch.empty(n, dtype=torch.long)
    rank[torch.from_numpy(order)] = torch.arange(n)
    return rank.unsqueeze(0) < torch.arange(n + 1).unsqueeze(1)


# ------------------------------------------------------------------------ AOPC


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
) -> AOPCResult:
    r"""
    ERASER's area over the perturbation curve (DeYoung et al., 2020):
    comprehensiveness ``p(y|x) - p(y|x without its top features)`` (higher is
    better) and sufficiency ``p(y|x) - p(y|only its top features)`` (lower is
    better), each averaged over the fractions 1, 5, 10, 20 and 50 percent.

    Conventions: for a fraction ``r`` of ``n`` features the top
    ``max(1, ceil(r n))`` features are removed (comprehensiveness) or kept
    (sufficiency), ranked by descending attribution with ties in sequence order;
    removed features are replaced by the mask token, fixed tokens stay. The scores
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
        baselines (int): Mask token id of removed features. Required.
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        fractions (sequence of float, optional): Fractions in (0, 1] of the
                    features. Default: (0.01, 0.05, 0.10, 0.20, 0.50)
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over input rows. Default: False

    Returns:
        :class:`AOPCResult`

    Examples::

        >>> result = aopc(model, ids, attr, feature_mask=words, baselines=3)
        >>> result.comprehensiveness.mean(), result.sufficiency.mean()
    """
    fractions = _check_fractions(fractions)
    setup = _setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "aopc",
    )
    scores = _feature_scores(attributions, inputs, setup.layouts, feature_mask, attention_mask)
    n_top = np.array([[_n_top(layout.n_features, r) for r in fractions] for layout in setup.layouts])
    distinct = [np.unique(row_top) for row_top in n_top]
    bar = progress(
        desc="AOPC", total=sum(1 + 2 * ks.size for ks in distinct), disable=not show_progress
    )
    blocks = (
        mask_features(row, layout, _aopc_coalitions(row_scores, ks), setup.baseline)
        for row, layout, row_scores, ks in zip(setup.rows, setup.layouts, scores, distinct)
    )
    logits = _final_logits(setup.per_position, blocks, setup.baseline, perturbations_per_eval, bar)
    bar.close()
    targets = resolve_targets(target, torch.stack([block[0] for block in logits]))
    comprehensiveness = np.zeros(n_top.shape)
    sufficiency = np.zeros(n_top.shape)
    full_values = np.zeros(len(logits))
    for row, (block, ks) in enumerate(zip(logits, distinct)):
        values = _values(block, int(targets[row]), target_type)
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


# ---------------------------------------------------------------------- Shapley


def shapley_values(
    forward_func: ForwardFunc,
    inputs: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    max_exact_features: int = 12,
    n_samples: Optional[int] = None,
    perturbations_per_eval: int = 32,
    seed: int = 0,
    show_progress: bool = False,
) -> ShapleyValuesResult:
    r"""
    Shapley values of the masking game ``v(S)``: the explained value at the final
    token of the input whose features outside ``S`` are replaced by the mask token
    (the game Kernel SHAP and MP-PI approximate).

    Examples with at most ``max_exact_features`` features are solved exactly by
    evaluating all ``2^n`` coalitions (batched) and applying
    ``phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! (v(S + i) - v(S))``.
    Larger examples use Captum's :class:`~captum.attr.KernelShap` over the binary
    coalition space with ``n_samples`` coalitions (default ``16 n``, the budget of
    the paper's Appendix D.4), seeded with ``seed`` for every example.

    Cost: ``2^n`` rows per exact example; ``n_samples`` rows per Kernel SHAP example
    plus one unmasked row to find its target.

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): See
                    :func:`activation_study`.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        target (int or Tensor, optional): Class explained; None uses the predicted
                    class on the unmasked input. Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``. Default: None
        baselines (int): Mask token id of inactive features. Required.
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``; use
                    the one the compared attributions explain. Default: "prob"
        max_exact_features (int, optional): Largest ``n`` solved exactly.
                    Default: 12
        n_samples (int, optional): Kernel SHAP coalitions per larger example; None
                    uses ``16 n``. Default: None
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        seed (int, optional): Seed of Kernel SHAP's sampler. Default: 0
        show_progress (bool, optional): Progress bar over exact rows. Default: False

    Returns:
        :class:`ShapleyValuesResult`

    Examples::

        >>> reference = shapley_values(model, ids, feature_mask=words, baselines=3)
        >>> reference.values           # [B, n_max], float64, NaN-padded
    """
    if not isinstance(max_exact_features, int) or max_exact_features < 0:
        raise ValueError(f"max_exact_features must be an int >= 0, got {max_exact_features!r}.")
    if n_samples is not None and (not isinstance(n_samples, int) or n_samples < 3):
        raise ValueError(f"n_samples must be an int >= 3 or None, got {n_samples!r}.")
    setup = _setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "shapley_values",
    )
    exact = [layout.n_features <= max_exact_features for layout in setup.layouts]
    full_logits, coalition_logits = _exact_coalition_logits(
        setup, exact, perturbations_per_eval, show_progress
    )
    targets = resolve_targets(target, full_logits)
    n_max = max(layout.n_features for layout in setup.layouts)
    values = torch.full((len(setup.layouts), n_max), float("nan"), dtype=torch.float64)
    samples: List[int] = []
    for row, layout in enumerate(setup.layouts):
        n = layout.n_features
        if exact[row]:
            game = _values(coalition_logits[row], int(targets[row]), target_type)
            values[row, :n] = torch.from_numpy(_exact_shapley(game, n))
            samples.append(2 ** n)
        else:
            budget = 16 * n if n_samples is None else n_samples
            values[row, :n] = _kernel_shap(
                setup, row, int(targets[row]), target_type, budget, perturbations_per_eval,
                seed, show_progress,
            )
            samples.append(budget)
    n_calls, n_rows = setup.counts()
    return ShapleyValuesResult(values, exact, samples, targets, n_calls, n_rows)


def progressive_shapley_values(
    forward_func: ForwardFunc,
    inputs: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    max_exact_features: int = 12,
    perturbations_per_eval: int = 32,
) -> ShapleyValuesResult:
    r"""
    Exact Shapley values of the progressive-inference game, the game MP-PI samples:
    ``v_PI(S)`` is the prediction at the last token of ``S``'s last feature on the
    input whose features outside ``S`` are masked (causal attention makes it
    independent of everything after that token); ``v_PI`` of the empty and of the
    full coalition are the final-token predictions of the fully masked and the
    unmasked input, as in :class:`~captum_pi.MultiPassProgressive`.

    MP-PI (with its default exact weighting) converges to these values as its
    budget grows. Where PI's premise ``p_k = f(x'_k)`` holds they equal
    :func:`shapley_values`; the gap between the two is the error that no MP-PI
    budget removes on a given model.

    Cost: ``2^n`` rows per example, all coalitions evaluated in batches.

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): See
                    :func:`activation_study`.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        target (int or Tensor, optional): Class explained; None uses the predicted
                    class on the unmasked input. Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``. Default: None
        baselines (int): Mask token id of inactive features. Required.
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        max_exact_features (int, optional): Largest ``n`` accepted; a row with
                    more features raises ValueError. Default: 12
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32

    Returns:
        :class:`ShapleyValuesResult` (every row exact).

    Examples::

        >>> pi_game = progressive_shapley_values(model, ids, feature_mask=words, baselines=3)
        >>> masking_game = shapley_values(model, ids, feature_mask=words, baselines=3)
        >>> shapley_agreement(pi_game.values, masking_game.values).cosine  # PI's ceiling
    """
    setup = _setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "progressive_shapley_values",
    )
    too_many = [layout.n_features for layout in setup.layouts if layout.n_features > max_exact_features]
    if too_many:
        raise ValueError(
            f"progressive_shapley_values enumerates 2^n coalitions; got a row with "
            f"{max(too_many)} features > max_exact_features={max_exact_features}."
        )
    games, full_logits = [], []
    for ids, layout in zip(setup.rows, setup.layouts):
        logits = _progressive_game_logits(setup.per_position, ids, layout, setup.baseline,
                                          perturbations_per_eval)
        games.append(logits)
        full_logits.append(logits[-1])
    targets = resolve_targets(target, torch.stack(full_logits))
    n_max = max(layout.n_features for layout in setup.layouts)
    values = torch.full((len(setup.layouts), n_max), float("nan"), dtype=torch.float64)
    for row, layout in enumerate(setup.layouts):
        game = _values(games[row], int(targets[row]), target_type)
        values[row, : layout.n_features] = torch.from_numpy(_exact_shapley(game, layout.n_features))
    n_calls, n_rows = setup.counts()
    samples = [2 ** layout.n_features for layout in setup.layouts]
    return ShapleyValuesResult(values, [True] * len(samples), samples, targets, n_calls, n_rows)


def _progressive_game_logits(
    per_position: PerPositionForward,
    ids: Tensor,
    layout: FeatureLayout,
    baseline: int,
    perturbations_per_eval: int,
) -> Tensor:
    r"""``[2^n, C]`` logits of ``v_PI`` for every coalition (bits as in
    :func:`_all_coalitions`), read at the last token of each coalition's last
    feature, or at the final token for the empty and the full coalition."""
    n = layout.n_features
    coalitions = _all_coalitions(n)
    ranks = torch.arange(1, n + 1)
    blocks = []
    for start in range(0, coalitions.shape[0], perturbations_per_eval):
        active = coalitions[start : start + perturbations_per_eval]
        logits = per_position(mask_features(ids, layout, active, baseline)).cpu()
        last_feature = (active * ranks).argmax(dim=1)
        position = layout.ends[last_feature].clone()
        position[~active.any(dim=1) | active.all(dim=1)] = layout.length - 1
        blocks.append(logits[torch.arange(active.shape[0]), position])
    return torch.cat(blocks)


def _exact_coalition_logits(
    setup: _Setup, exact: List[bool], perturbations_per_eval: int, show_progress: bool
) -> Tuple[Tensor, List[Tensor]]:
    r"""
    Final-token logits of all ``2^n`` coalitions of the exact rows and of the
    unmasked input of the others, in one batched sweep (the full coalition of an
    exact row is its unmasked input).

    Returns:
        ``(full_logits [B, C], blocks)`` where ``blocks[row]`` is ``[2^n, C]`` for
        exact rows and ``[1, C]`` (the unmasked input) for the others.
    """
    total = sum(
        2 ** layout.n_features if is_exact else 1 for layout, is_exact in zip(setup.layouts, exact)
    )
    bar = progress(desc="exact Shapley coalitions", total=total, disable=not show_progress)
    blocks = (
        mask_features(row, layout, _all_coalitions(layout.n_features), setup.baseline)
        if is_exact else row.unsqueeze(0)
        for row, layout, is_exact in zip(setup.rows, setup.layouts, exact)
    )
    logits = _final_logits(setup.per_position, blocks, setup.baseline, perturbations_per_eval, bar)
    bar.close()
    return torch.stack([block[-1] for block in logits]), logits


def _all_coalitions(n: int) -> Tensor:
    r"""BoolTensor ``[2^n, n]``; row ``s`` holds the bits of ``s`` (feature ``i`` is
    bit ``i``), so the last row is the full coalition."""
    codes = torch.arange(2 ** n).unsqueeze(1)
    return (codes >> torch.arange(n).unsqueeze(0)) & 1 == 1


def _exact_shapley(game: np.ndarray, n: int) -> np.ndarray:
    r"""Shapley values from ``game[s] = v(S)`` with ``S`` the bits of ``s``."""
    codes = np.arange(2 ** n)
    sizes = np.array([bin(code).count("1") for code in codes])
    weights = np.array([
        math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)
    ])
    phi = np.zeros(n)
    for feature in range(n):
        bit = 1 << feature
        without = codes[(codes & bit) == 0]
        phi[feature] = np.sum(weights[sizes[without]] * (game[without | bit] - game[without]))
    return phi


def _kernel_shap(
    setup: _Setup,
    row: int,
    target: int,
    target_type: str,
    n_samples: int,
    perturbations_per_eval: int,
    seed: int,
    show_progress: bool,
) -> Tensor:
    layout, ids = setup.layouts[row], setup.rows[row]

    def coalition_value(coalitions: Tensor) -> Tensor:
        masked = mask_features(ids, layout, coalitions.bool().cpu(), setup.baseline)
        logits = setup.per_position(masked).cpu()[:, -1]
        return explained_value(logits, target, target_type)

    everything = torch.ones(1, layout.n_features)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        phi = KernelShap(coalition_value).attribute(
            everything,
            baselines=torch.zeros_like(everything),
            n_samples=n_samples,
            perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress,
        )
    return phi[0].double()


def shapley_agreement(
    forward_func: ForwardFunc,
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    shapley: Optional[Union[ShapleyValuesResult, Tensor]] = None,
    max_exact_features: int = 12,
    n_samples: Optional[int] = None,
    perturbations_per_eval: int = 32,
    seed: int = 0,
    show_progress: bool = False,
) -> ShapleyAgreementResult:
    r"""
    Agreement of an attribution with the Shapley values of the masking game
    (the paper's Appendix D.4 compares MP-PI with Kernel SHAP at 16n samples by
    cosine similarity): per example, the cosine similarity, Spearman's rank
    correlation (:func:`scipy.stats.spearmanr`) and the relative L2 error
    ``||phi - phi_shapley|| / ||phi_shapley||``.

    The reference comes from :func:`shapley_values` (exact up to
    ``max_exact_features`` features, Kernel SHAP beyond) unless ``shapley`` is
    given; pass ``result.shapley`` of one call to the next to compare several
    methods against the same reference without recomputing it.

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): See
                    :func:`activation_study`.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        attributions (Tensor): ``[B, n_max]`` per feature or ``[B, T]`` per token.
        target (int or Tensor, optional): Class explained; None uses the predicted
                    class. Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``. Default: None
        baselines (int): Mask token id of inactive features. Required.
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): Quantity the attributions explain.
                    Default: "prob"
        shapley (ShapleyValuesResult or Tensor, optional): Precomputed reference,
                    ``[B, n_max]``. Default: None
        max_exact_features (int, optional): See :func:`shapley_values`. Default: 12
        n_samples (int, optional): See :func:`shapley_values`. Default: None
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        seed (int, optional): Seed of Kernel SHAP's sampler. Default: 0
        show_progress (bool, optional): Progress bar. Default: False

    Returns:
        :class:`ShapleyAgreementResult`

    Examples::

        >>> first = shapley_agreement(model, ids, sp_attr, feature_mask=words, baselines=3)
        >>> second = shapley_agreement(model, ids, mp_attr, feature_mask=words, baselines=3,
        ...                            shapley=first.shapley)
        >>> second.cosine.mean()
    """
    layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
    scores = _feature_scores(attributions, inputs, layouts, feature_mask, attention_mask)
    if shapley is None:
        shapley = shapley_values(
            forward_func, inputs, target=target, feature_mask=feature_mask, baselines=baselines,
            attention_mask=attention_mask, target_type=target_type,
            max_exact_features=max_exact_features, n_samples=n_samples,
            perturbations_per_eval=perturbations_per_eval, seed=seed, show_progress=show_progress,
        )
        n_calls, n_rows = shapley.n_calls, shapley.n_rows
    else:
        if isinstance(shapley, Tensor):
            shapley = ShapleyValuesResult(
                shapley.detach().cpu().double(), [], [], torch.empty(0, dtype=torch.long), 0, 0
            )
        n_calls, n_rows = 0, 0
    reference = _feature_scores(shapley.values, inputs, layouts, feature_mask, attention_mask)
    agreement = np.array([_agreement(a, b) for a, b in zip(scores, reference)])
    return ShapleyAgreementResult(
        cosine=agreement[:, 0],
        spearman=agreement[:, 1],
        relative_l2=agreement[:, 2],
        shapley=shapley,
        n_calls=n_calls,
        n_rows=n_rows,
    )


def _agreement(phi: np.ndarray, reference: np.ndarray) -> Tuple[float, float, float]:
    norm, reference_norm = np.linalg.norm(phi), np.linalg.norm(reference)
    cosine = relative = spearman = math.nan
    if norm > 0 and reference_norm > 0:
        cosine = float(phi @ reference / (norm * reference_norm))
    if reference_norm > 0:
        relative = float(np.linalg.norm(phi - reference) / reference_norm)
    if phi.size >= 2 and np.ptp(phi) > 0 and np.ptp(reference) > 0:
        spearman = float(stats.spearmanr(phi, reference).statistic)
    return cosine, spearman, relative


# --------------------------------------------------------- progressive fidelity


def progressive_fidelity(
    forward_func: ForwardFunc,
    inputs: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    perturbations_per_eval: int = 32,
    show_progress: bool = False,
) -> FidelityResult:
    r"""
    How faithful Progressive Inference's premise is for a model: for every feature
    ``k`` the gap ``p_k - f(x'_k)`` between the intermediate prediction ``p_k`` (read
    at the last token of feature ``k`` in one pass on the unmasked input, as SP-PI
    and MP-PI read it) and the model's prediction at the final token of ``x'_k``,
    the input with every feature after ``k`` replaced by the mask token. The paper
    assumes ``p_k ~ f(x'_k)`` (its footnote 1 and Eqn 4) without measuring it; a
    small gap at all relative positions ``k / n`` means PI's attributions explain
    the model's actual masked predictions. Gaps come from the mask tokens
    themselves (the model sees ``n - k`` extra tokens in ``x'_k``) and from fixed
    tokens after feature ``k`` (a prompt suffix), which ``p_k`` has not read.

    Cost: one row per unmasked example, ``n - 1`` masked rows per example
    (``x'_n`` is the unmasked input), plus one fully masked row for examples with a
    fixed token before their first feature (for ``prefix_gaps``).

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): See
                    :func:`activation_study`.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        target (int or Tensor, optional): Class explained; None uses the predicted
                    class on the unmasked input. Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``. Default: None
        baselines (int): Mask token id of masked features. Required.
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        perturbations_per_eval (int, optional): Inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over input rows. Default: False

    Returns:
        :class:`FidelityResult`

    Examples::

        >>> fidelity = progressive_fidelity(model, ids, feature_mask=words, baselines=3)
        >>> fidelity.max_abs_gap            # [B]
        >>> plot_fidelity_gap(fidelity)
    """
    setup = _setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "progressive_fidelity",
    )
    bar = progress(
        desc="progressive fidelity",
        total=sum(layout.n_features + (layout.prefix_end is not None) for layout in setup.layouts),
        disable=not show_progress,
    )
    per_position = _per_position_logits(setup, inputs, attention_mask, perturbations_per_eval, bar)
    final = torch.stack([
        logits[layout.length - 1] for logits, layout in zip(per_position, setup.layouts)
    ])
    targets = resolve_targets(target, final)
    blocks = (
        mask_features(row, layout, _prefix_coalitions(layout), setup.baseline)
        for row, layout in zip(setup.rows, setup.layouts)
    )
    masked_logits = _final_logits(
        setup.per_position, blocks, setup.baseline, perturbations_per_eval, bar
    )
    bar.close()
    intermediate, masked, gaps = [], [], []
    prefix_gaps = np.full(len(setup.layouts), np.nan)
    for row, layout in enumerate(setup.layouts):
        target_row = int(targets[row])
        values = _values(per_position[row], target_row, target_type)
        masked_values = (
            _values(masked_logits[row], target_row, target_type)
            if masked_logits[row].numel() else np.empty(0)
        )
        n = layout.n_features
        row_masked = np.append(masked_values[: n - 1], values[layout.length - 1])
        row_intermediate = values[layout.ends.numpy()]
        intermediate.append(row_intermediate)
        masked.append(row_masked)
        gaps.append(row_intermediate - row_masked)
        if layout.prefix_end is not None:
            prefix_gaps[row] = values[layout.prefix_end] - masked_values[n - 1]
    n_calls, n_rows = setup.counts()
    return FidelityResult(intermediate, masked, gaps, prefix_gaps, targets, n_calls, n_rows)


def _per_position_logits(
    setup: _Setup,
    inputs: Tensor,
    attention_mask: Optional[Tensor],
    perturbations_per_eval: int,
    bar: object,
) -> List[Tensor]:
    r"""Logits ``[length, C]`` at every position of every unmasked row."""
    if attention_mask is None:
        attention_mask = torch.ones_like(inputs)
    rows: List[Tensor] = []
    for start in range(0, inputs.shape[0], perturbations_per_eval):
        chunk = slice(start, start + perturbations_per_eval)
        logits = setup.per_position(inputs[chunk], attention_mask[chunk]).cpu()
        rows.extend(logits.unbind(0))
        bar.update(logits.shape[0])
    return [row[: layout.length] for row, layout in zip(rows, setup.layouts)]


def _prefix_coalitions(layout: FeatureLayout) -> Tensor:
    r"""Rows ``k = 1..n-1`` activate features ``1..k``; a last, empty coalition is
    added when the example has a fixed token before its first feature."""
    n = layout.n_features
    prefixes = torch.arange(n).unsqueeze(0) < torch.arange(1, n).unsqueeze(1)
    if layout.prefix_end is None:
        return prefixes
    return torch.cat([prefixes, torch.zeros(1, n, dtype=torch.bool)])
