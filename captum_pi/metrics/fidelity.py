r"""
Fidelity of Progressive Inference's premise: the gap between each intermediate
prediction ``p_k`` (read in one pass on the unmasked input) and the model's
prediction on the input with every feature after ``k`` masked.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_pi._core.progressive import FeatureLayout, TargetType, resolve_targets
from captum_pi._core.masking import DEFAULT_MASKING
from captum_pi.metrics._masked_values import (
    ForwardFunc,
    MaskedValueSetup,
    _final_logits,
    explained_value_array,
    masked_value_setup,
    progress,
)
from captum_pi.metrics.confidence import mean_confidence_interval

__all__ = ["FidelityResult", "progressive_fidelity"]


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
    masking: str = DEFAULT_MASKING,
) -> FidelityResult:
    r"""
    How faithful Progressive Inference's premise is for a model: for every feature
    ``k`` the gap ``p_k - f(x'_k)`` between the intermediate prediction ``p_k`` (read
    at the last token of feature ``k`` in one pass on the unmasked input, as SP-PI
    and MP-PI read it) and the model's prediction at the final token of ``x'_k``,
    the input with every feature after ``k`` masked. The paper assumes
    ``p_k ~ f(x'_k)`` (its footnote 1 and Eqn 4) without measuring it; a small gap
    at all relative positions ``k / n`` means PI's attributions explain the model's
    actual masked predictions. Under ``masking="replace"`` gaps come from the mask
    tokens themselves (the model sees ``n - k`` extra tokens in ``x'_k``); under
    ``"delete"`` ``x'_k`` is the input cut after feature ``k``, so the gap is 0 up
    to float rounding, except for fixed tokens after feature ``k`` (a prompt
    suffix), which ``p_k`` has not read under either game.

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
        baselines (int, optional): Under ``masking="replace"`` the mask token id
                    of inactive features (the one the attribution methods used),
                    required; under ``"delete"`` only needed for rows without a
                    fixed token, as the token of their empty input. Default: None
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        perturbations_per_eval (int, optional): Inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over input rows. Default: False
        masking (str, optional): The masking game, ``"delete"`` or ``"replace"``
                    (see :mod:`captum_pi._core.masking`); use the one the compared
                    attributions were computed under. Default: "delete"

    Returns:
        :class:`FidelityResult`

    Examples::

        >>> fidelity = progressive_fidelity(model, ids, feature_mask=words, baselines=3)
        >>> fidelity.max_abs_gap            # [B]
        >>> plot_fidelity_gap(fidelity)
    """
    setup = masked_value_setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "progressive_fidelity", masking,
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
        setup.masking.apply(row, layout, _prefix_coalitions(layout))
        for row, layout in zip(setup.rows, setup.layouts)
    )
    masked_logits = _final_logits(
        setup.per_position, blocks, setup.masking.pad_id, perturbations_per_eval, bar
    )
    bar.close()
    intermediate, masked, gaps = [], [], []
    prefix_gaps = np.full(len(setup.layouts), np.nan)
    for row, layout in enumerate(setup.layouts):
        target_row = int(targets[row])
        values = explained_value_array(per_position[row], target_row, target_type)
        masked_values = (
            explained_value_array(masked_logits[row], target_row, target_type)
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
    setup: MaskedValueSetup,
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
