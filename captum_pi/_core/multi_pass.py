import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
import torch
from captum._utils.progress import progress
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from sklearn.linear_model import LinearRegression
from torch import Tensor

from captum_pi._core.budget import BudgetWarning, identifying_n_samples
from captum_pi._core.budget import mp_pi_minimum_n_samples as minimum_n_samples
from captum_pi._core.mask_distribution import WEIGHTINGS, MaskDistribution, mask_distribution
from captum_pi._core.masking import (
    DEFAULT_MASKING,
    Masking,
    resolve_masking,
    with_fully_masked_rows,
)
from captum_pi._core.progressive import (
    FeatureLayout,
    PerPositionForward,
    TargetType,
    build_feature_layouts,
    check_target_type,
    expand_to_tokens,
    explained_value,
    resolve_targets,
    vocab_size_of,
)


@dataclass
class CoalitionData:
    r"""
    The pooled (coalition, prediction) pairs of one row.

    Attributes:
        coalitions (np.ndarray): BoolArray ``[m, n]``, one intermediate coalition
                    per row.
        values (np.ndarray): ``[m]`` explained value read at the end of the
                    coalition's last feature.
        weights (np.ndarray): ``[m]`` importance weights ``P*/P^D``.
    """

    coalitions: np.ndarray
    values: np.ndarray
    weights: np.ndarray


class MultiPassProgressive(PerturbationAttribution):
    r"""
    Multi-Pass Progressive Inference (MP-PI; Kariyappa et al., ICML 2024, section
    3.2, Algorithm 1). Each pass runs the model on the input with a random set of
    features masked; its intermediate prediction at the last token of every active
    feature is the model's prediction on a coalition (the active features up to and
    including that one), so one pass yields many (coalition, prediction) pairs. The
    pairs of all passes are pooled and fitted with Kernel SHAP's weighted linear
    regression ``g(S) = phi_0 + sum_{i in S} phi_i``, with efficiency enforced
    exactly: ``sum_i phi_i = f(x) - f(empty)``, both read at the final token.

    Input masks are drawn from ``P'``, optimised (Eqn 16 with the S+ modification of
    section 3.2.4) so that the pooled coalitions follow the Shapley distribution as
    closely as possible; the rest of the mismatch is removed by importance weights.
    ``P'`` depends only on the number of features and is cached. See
    :mod:`captum_pi._core.mask_distribution` for the derivation, the solvers
    (``"cells"`` for n <= 32, ``"sizes"`` above) and the weighting choices.

    The cost is ``n_samples`` forward passes: the unmasked input, the fully masked
    input, and ``n_samples - 2`` sampled masks.

    Under the deletion game (``masking="delete"``, the default) every intermediate
    prediction of a pass is exactly the model's prediction on the pass's input
    truncated after that feature (causal attention; see
    :mod:`captum_pi._core.masking`), so MP-PI estimates the Shapley values of the
    deletion game ``v(S) = f(x_S)`` with no approximation beyond sampling. Under
    ``masking="replace"`` (the paper's ``"..."`` masking) the intermediate values
    only approximate the predictions on masked inputs.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model, whose ``score`` head is
                    read at every position, or a callable
                    ``f(input_ids, attention_mask=None)`` returning per-position
                    class logits ``[B, T, C]``.

    Examples::

        >>> mp = MultiPassProgressive(model)
        >>> attr = mp.attribute(ids, feature_mask=words, seed=0)   # deletion game
        >>> phi = feature_attributions(attr, words)  # [B, n_words]
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
        n_samples: Optional[int] = None,
        perturbations_per_eval: int = 16,
        sampling: str = "optimized",
        seed: Optional[int] = None,
        show_progress: bool = False,
        weighting: str = "coalition",
        solver: str = "auto",
        masking: str = DEFAULT_MASKING,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids. Rows are explained
                        independently; pad on the right and pass ``attention_mask``.
            target (int or Tensor, optional): Class explained, an int or a
                        LongTensor ``[B]``. None explains the class the model predicts
                        on the full input. Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]`` in Captum's
                        convention; ids 0..n-1 in order, each one contiguous span; -1
                        for tokens that are never masked. None makes every
                        non-padding token a feature. Default: None
            baselines (int, optional): Under ``masking="replace"`` the mask token
                        id that replaces every token of an inactive feature (the
                        paper uses the id of "..."), required. Under ``"delete"``
                        only needed for rows without any fixed token: the token
                        read as their empty input (e.g. BOS). Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                        Default: "prob"
            n_samples (int, optional): Forward passes per row, including the
                        unmasked and the fully masked input; at least
                        :func:`minimum_n_samples` (3 when a row has 2 or more
                        features). When the pooled coalitions do not identify every
                        feature (the weighted design has rank below ``n - 1``) a
                        :class:`~captum_pi._core.budget.BudgetWarning` is issued; from
                        ``n + 1`` on that almost never happens. None uses ``2 n``
                        (the paper's budget). Default: None
            perturbations_per_eval (int, optional): Masked inputs per model call.
                        Default: 16
            sampling (str, optional): ``"optimized"`` (``P'`` of Eqn 16 with S+) or
                        ``"shapley"`` (masks drawn from the Shapley distribution, the
                        comparison of the paper's Appendix C). Default: "optimized"
            seed (int, optional): Seed of the mask sampler; each row draws from its
                        own generator seeded with it, so a row's attributions do not
                        depend on the batch it is in. Default: None
            show_progress (bool, optional): Progress bar over passes. Default: False
            weighting (str, optional): ``"coalition"`` (exact importance weight of
                        each coalition; consistent for Shapley values) or ``"cell"``
                        (``P*/P^D`` per (size, last feature) cell, as in the paper).
                        Default: "coalition"
            solver (str, optional): How ``P'`` is solved: ``"auto"``, ``"cells"``
                        or ``"sizes"``. Default: "auto"
            masking (str, optional): ``"delete"`` or ``"replace"`` (see
                        :mod:`captum_pi._core.masking`). Default: "delete"

        Returns:
            Tensor ``[B, T]``: every token of feature ``k`` carries ``phi_k``; fixed
            tokens and padding carry 0.
        """
        target_type = check_target_type(target_type)
        _check_options(perturbations_per_eval, weighting)
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        masking = resolve_masking(masking, baselines, vocab_size_of(self.per_position), "MultiPassProgressive")
        masking.check_layouts(layouts, "MultiPassProgressive")
        budgets = [_budget(layout.n_features, n_samples) for layout in layouts]
        full_logits, empty_logits = self._anchor_logits(inputs, attention_mask, layouts, masking)
        targets = resolve_targets(target, full_logits)
        bar = progress(
            desc="MP-PI passes", total=sum(budgets), disable=not show_progress
        )
        phis: List[Tensor] = []
        for row, layout in enumerate(layouts):
            target_row = int(targets[row])
            f_full = float(explained_value(full_logits[row], target_row, target_type))
            f_empty = float(explained_value(empty_logits[row], target_row, target_type))
            if layout.n_features == 1:
                phis.append(torch.tensor([f_full - f_empty]))
                bar.update(budgets[row])
                continue
            distribution = mask_distribution(layout.n_features, sampling, solver)
            rng = np.random.default_rng(seed)
            active = torch.from_numpy(distribution.sample(rng, budgets[row] - 2))
            ends = self._values_at_feature_ends(
                inputs[row], layout, active, masking, target_row, target_type,
                perturbations_per_eval, bar,
            )
            bar.update(2)
            data = pool_coalitions(active.numpy(), ends, distribution, weighting)
            phi, rank = _fit_with_rank(data, f_full, f_empty)
            if rank < layout.n_features - 1:
                _warn_unidentified(layout.n_features, budgets[row], rank, len(data.values))
            phis.append(torch.from_numpy(phi))
        bar.close()
        return expand_to_tokens(phis, layouts, inputs.shape[1]).to(full_logits.dtype)

    def _anchor_logits(
        self, inputs: Tensor, attention_mask: Optional[Tensor], layouts: List[FeatureLayout],
        masking: Masking,
    ) -> "tuple[Tensor, Tensor]":
        r"""Logits at the final token of the unmasked and the fully masked inputs,
        in one model call."""
        batch = inputs.shape[0]
        ids, mask, finals = with_fully_masked_rows(inputs, attention_mask, layouts, list(range(batch)), masking)
        logits = self.per_position(ids, mask).cpu()
        final = logits[torch.arange(2 * batch), finals]
        return final[:batch], final[batch:]

    def _values_at_feature_ends(
        self,
        input_ids: Tensor,
        layout: FeatureLayout,
        active: Tensor,
        masking: Masking,
        target: int,
        target_type: str,
        perturbations_per_eval: int,
        bar: object,
    ) -> np.ndarray:
        r"""Explained value at the last token of every feature, for every pass, ``[P, n]``."""
        masked = masking.apply(input_ids, layout, active)
        chunks = []
        for start in range(0, len(masked), perturbations_per_eval):
            batch = masked[start : start + perturbations_per_eval]
            logits = self.per_position(batch.input_ids, batch.attention_mask).cpu()
            at_ends = logits[torch.arange(len(batch)).unsqueeze(1), batch.feature_ends]
            chunks.append(explained_value(at_ends, target, target_type))
            bar.update(len(batch))
        return torch.cat(chunks).double().numpy()


def _warn_unidentified(n_features: int, n_samples: int, rank: int, n_coalitions: int) -> None:
    warnings.warn(
        f"MP-PI: n_samples={n_samples} does not identify the attributions of all "
        f"{n_features} features: the {n_coalitions} coalitions pooled from its "
        f"{n_samples - 2} sampled passes span only {rank} of the {n_features - 1} unknowns "
        f"left by efficiency, so some values returned are an artefact of the solver (a "
        f"minimum-norm solution), not estimates. Identifying every feature needs "
        f"{n_features - 1} independent coalitions: n_samples >= "
        f"{minimum_n_samples(n_features)} is accepted, but the minimum budget that identifies "
        f"every feature in almost every draw is n_samples="
        f"{identifying_n_samples(n_features)} (one sampled pass per unknown); pass at least that.",
        BudgetWarning,
        stacklevel=4,
    )


def _check_options(perturbations_per_eval: int, weighting: str) -> None:
    if not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
        raise ValueError(
            f"perturbations_per_eval must be a positive int, got {perturbations_per_eval!r}."
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")


def _budget(n_features: int, n_samples: Optional[int]) -> int:
    if n_samples is None:
        return max(2 * n_features, 3) if n_features > 1 else 2
    minimum = minimum_n_samples(n_features)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < minimum:
        raise ValueError(
            f"n_samples counts the unmasked and the fully masked input too, so it must "
            f"be an int >= {minimum} for a row with {n_features} features; got {n_samples!r}."
        )
    return n_samples


def pool_coalitions(
    active: np.ndarray, ends: np.ndarray, distribution: MaskDistribution, weighting: str
) -> CoalitionData:
    r"""
    Collects the intermediate (coalition, value) pairs of every pass: for each active
    feature ``f`` of a pass, the coalition is the pass's active features up to and
    including ``f``. Within a pass these coalitions have distinct sizes, so they are
    unique; across passes they are pooled as independent samples. The full
    coalition is dropped: its value is ``f(x)``, which efficiency fixes.

    Args:
        active (np.ndarray): BoolArray ``[P, n]``: active features of each pass.
        ends (np.ndarray): ``[P, n]`` value at the last token of each feature.
        distribution (MaskDistribution): The distribution the passes came from.
        weighting (str): ``"coalition"`` or ``"cell"``.

    Returns:
        :class:`CoalitionData`
    """
    n = active.shape[1]
    sizes = np.cumsum(active, axis=1)
    runs = np.zeros_like(sizes)
    runs[:, 0] = active[:, 0]
    for feature in range(1, n):
        runs[:, feature] = (runs[:, feature - 1] + 1) * active[:, feature]
    keep = active & (sizes < n)
    pass_index, last = np.nonzero(keep)
    coalitions = active[pass_index] & (np.arange(n)[None, :] <= last[:, None])
    weights = distribution.weights(
        sizes[pass_index, last], last + 1, runs[pass_index, last], weighting
    )
    return CoalitionData(coalitions, ends[pass_index, last], weights)


def fit_shapley_regression(data: CoalitionData, f_full: float, f_empty: float) -> np.ndarray:
    r"""
    Weighted least squares for ``g(S) = f_empty + sum_{i in S} phi_i`` with
    ``sum_i phi_i = f_full - f_empty`` enforced by eliminating the last feature
    (what Kernel SHAP's infinite weights on the empty and full coalitions
    approximate), solved with scikit-learn's ``LinearRegression``.

    Returns:
        ``[n]`` attributions.
    """
    return _fit_with_rank(data, f_full, f_empty)[0]


def _fit_with_rank(data: CoalitionData, f_full: float, f_empty: float) -> "tuple[np.ndarray, int]":
    r""":func:`fit_shapley_regression` and the rank of the weighted design it solved
    (``n - 1`` when every attribution is identified)."""
    z = data.coalitions.astype(np.float64)
    n = z.shape[1]
    total = f_full - f_empty
    if z.shape[0] == 0:  # no intermediate coalition: efficiency alone, spread evenly
        return np.full(n, total / n), 0
    design = z[:, :-1] - z[:, -1:]
    response = data.values - f_empty - z[:, -1] * total
    regression = LinearRegression(fit_intercept=False)
    regression.fit(design, response, sample_weight=data.weights)
    phi = regression.coef_
    return np.append(phi, total - phi.sum()), int(regression.rank_)
