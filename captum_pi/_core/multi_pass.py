import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from captum._utils.progress import progress
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_pi._core.budget import BudgetWarning, identifying_n_samples
from captum_pi._core.budget import mp_pi_minimum_n_samples as minimum_n_samples
from captum_pi._core.mask_distribution import (
    WEIGHTINGS,
    MaskDistribution,
    border_passes,
    mask_distribution,
    shapley_kernel_weights,
)
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
    closely as possible. ``P'`` depends only on the number of features and is
    cached. See :mod:`captum_pi._core.mask_distribution` for the derivation and the
    solvers (``"cells"`` for n <= 32, ``"sizes"`` above).

    How the pairs are fitted (``weighting``). A prediction is deterministic, so a
    coalition seen twice is worth one observation. With ``"kernel"`` (the default)
    the passes are *distinct* masks drawn from ``P'``, the intermediate coalitions of
    every pass and of the unmasked pass (its prefixes, free) are pooled once each, and
    each gets Kernel SHAP's weight: the regression of Kernel SHAP restricted to the
    coalitions the passes revealed. Once the passes reveal every coalition
    (``2^(n-1)`` passes with S+, as every pass then contains the last feature) the
    result is the exact Shapley value, and MP-PI never spends more passes than
    that. ``"coalition"`` and ``"cell"`` are the paper's: independent draws with
    importance weights ``P*/P^D`` per coalition or per (size, last feature) cell.

    The cost is ``n_samples`` forward passes: the unmasked input, the fully masked
    input and ``n_samples - 2`` sampled masks. Under deletion, a row whose fixed
    tokens all come before its first feature needs no fully masked pass (its
    fully deleted input is its prefix, read in the unmasked pass), so it gets
    ``n_samples - 1`` sampled masks.

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
        weighting: str = "kernel",
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
                        :class:`~captum_pi._core.budget.BudgetWarning` is issued; with
                        ``weighting="kernel"`` the unmasked pass's prefixes always
                        identify them, and with the paper's weightings from ``n + 1``
                        on that almost never happens. Passes beyond those that
                        reveal every coalition are not run. None uses ``2 n`` (the
                        paper's budget). Default: None
            perturbations_per_eval (int, optional): Masked inputs per model call.
                        Default: 16
            sampling (str, optional): ``"optimized"`` (``P'`` of Eqn 16 with S+) or
                        ``"shapley"`` (masks drawn from the Shapley distribution, the
                        comparison of the paper's Appendix C). Default: "optimized"
            seed (int, optional): Seed of the mask sampler; each row draws from its
                        own generator seeded with it, so a row's attributions do not
                        depend on the batch it is in. Default: None
            show_progress (bool, optional): Progress bar over passes. Default: False
            weighting (str, optional): ``"kernel"`` (distinct passes, every
                        revealed coalition once with Kernel SHAP's weight, the
                        unmasked pass's prefixes included; exact once every
                        coalition is revealed), ``"coalition"`` (independent draws,
                        exact importance weight of each coalition; consistent for
                        Shapley values) or ``"cell"`` (``P*/P^D`` per (size, last
                        feature) cell, as in the paper). Default: "kernel"
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
        free_empty = [_empty_read_at_prefix(masking, layout) for layout in layouts]
        unmasked, empty_logits = self._anchor_logits(inputs, attention_mask, layouts, masking, free_empty)
        full_logits = torch.stack([unmasked[row, layout.length - 1] for row, layout in enumerate(layouts)])
        targets = resolve_targets(target, full_logits)
        bar = progress(
            desc="MP-PI passes", total=sum(budgets), disable=not show_progress
        )
        phis: List[Tensor] = []
        for row, layout in enumerate(layouts):
            target_row = int(targets[row])
            values = explained_value(unmasked[row], target_row, target_type).double()
            f_full = float(values[layout.length - 1])
            f_empty = (
                float(values[layout.prefix_end]) if free_empty[row]
                else float(explained_value(empty_logits[row], target_row, target_type))
            )
            n_sampled = budgets[row] - 1 - (not free_empty[row])
            if layout.n_features == 1 or n_sampled == 0:
                phis.append(_efficiency_only(layout.n_features, f_full, f_empty))
                bar.update(budgets[row])
                continue
            distribution = mask_distribution(layout.n_features, sampling, solver)
            rng = np.random.default_rng(seed)
            if weighting == "kernel":
                active = torch.from_numpy(_kernel_passes(distribution, rng, n_sampled))
            else:
                active = torch.from_numpy(distribution.sample(rng, n_sampled))
            ends = self._values_at_feature_ends(
                inputs[row], layout, active, masking, target_row, target_type,
                perturbations_per_eval, bar,
            )
            bar.update(budgets[row] - len(active))
            if weighting == "kernel":
                chain = values[layout.ends].numpy()[None]
                data = distinct_coalitions(
                    np.vstack([active.numpy(), np.ones((1, layout.n_features), dtype=bool)]),
                    np.vstack([ends, chain]),
                )
            else:
                data = pool_coalitions(active.numpy(), ends, distribution, weighting)
            shrinkages = _kernel_shrinkages(data, distribution) if weighting == "kernel" else (0.0,)
            phi, rank = _fit_with_rank(data, f_full, f_empty, shrinkages)
            if rank < layout.n_features - 1:
                _warn_unidentified(layout.n_features, budgets[row], rank, len(data.values))
            phis.append(torch.from_numpy(phi))
        bar.close()
        return expand_to_tokens(phis, layouts, inputs.shape[1]).to(full_logits.dtype)

    def _anchor_logits(
        self, inputs: Tensor, attention_mask: Optional[Tensor], layouts: List[FeatureLayout],
        masking: Masking, free_empty: List[bool],
    ) -> "tuple[Tensor, Tensor]":
        r"""Per-position logits of the unmasked inputs ``[B, T, C]`` and final-token
        logits of the fully masked inputs ``[B, C]`` (rows whose empty value is read
        at their prefix get the unmasked row's instead), in one model call."""
        batch = inputs.shape[0]
        needing = [row for row in range(batch) if not free_empty[row]]
        ids, mask, finals = with_fully_masked_rows(inputs, attention_mask, layouts, needing, masking)
        logits = self.per_position(ids, mask).cpu()
        empty = logits[torch.arange(batch), finals[:batch]].clone()
        for offset, row in enumerate(needing):
            empty[row] = logits[batch + offset, finals[batch + offset]]
        return logits[:batch], empty

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


def _kernel_passes(distribution: MaskDistribution, rng: np.random.Generator, n_passes: int) -> np.ndarray:
    r"""The passes of ``weighting="kernel"``: the border passes first
    (:func:`~captum_pi._core.mask_distribution.border_passes`: with the unmasked
    pass they reveal every coalition of size 1 and ``n - 1``, the largest Kernel
    SHAP weights, then whole further layers), as many as the budget allows, then
    distinct draws from the mask distribution."""
    border = border_passes(distribution.n, n_passes)
    rest = distribution.sample_distinct(rng, n_passes - len(border), exclude=border)
    return np.vstack([border, rest])


def _empty_read_at_prefix(masking: Masking, layout: FeatureLayout) -> bool:
    r"""Under deletion, a row whose fixed tokens all come before its first feature
    has ``f(empty)`` = the prediction at its last prefix token of the unmasked pass
    (the fully deleted input *is* the prefix), so it costs no pass of its own."""
    if masking.rule != "delete" or layout.prefix_end is None:
        return False
    return bool((layout.token_feature[int(layout.starts[0]):] >= 0).all())


def _efficiency_only(n_features: int, f_full: float, f_empty: float) -> Tensor:
    return torch.full((n_features,), (f_full - f_empty) / n_features, dtype=torch.float64)


#: Ridge strengths ``weighting="kernel"`` chooses among by leave-one-out error, in units
#: of the mean Kernel SHAP weight of the revealed coalitions times the fraction of
#: coalitions not yet revealed (so every strength is 0 once all are revealed and the
#: estimate is exact). On the exact deletion games of SmolLM2 reviews and of the
#: exactness model (benchmarks/estimators.py) the choice halves the error at a budget
#: of n passes and changes little from 4n on.
KERNEL_SHRINKAGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _kernel_shrinkages(data: CoalitionData, distribution: MaskDistribution) -> "tuple[float, ...]":
    unrevealed = 1.0 - len(data.values) / (2 ** distribution.n - 2)
    unit = float(np.mean(data.weights)) * unrevealed if len(data.values) else 0.0
    return tuple(strength * unit for strength in KERNEL_SHRINKAGES)


def distinct_coalitions(active: np.ndarray, ends: np.ndarray) -> CoalitionData:
    r"""
    Every distinct intermediate coalition of the passes, once, with Kernel SHAP's
    weight (:func:`~captum_pi._core.mask_distribution.shapley_kernel_weights`): the
    value of a coalition is deterministic, so a coalition seen in several passes
    counts once. The empty and the full coalition are dropped (efficiency fixes
    them). When the passes reveal every coalition, the fit is the exact Shapley
    value.

    Args:
        active (np.ndarray): BoolArray ``[P, n]``: active features of each pass.
        ends (np.ndarray): ``[P, n]`` value at the last token of each feature.

    Returns:
        :class:`CoalitionData`
    """
    n = active.shape[1]
    codes = np.cumsum(active * (1 << np.arange(n)), axis=1)
    keep = active & (codes > 0) & (codes < (1 << n) - 1)
    unique, first = np.unique(codes[keep], return_index=True)
    coalitions = (unique[:, None] >> np.arange(n)) & 1 == 1
    return CoalitionData(coalitions, ends[keep][first], shapley_kernel_weights(coalitions.sum(axis=1), n))


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


def fit_shapley_regression(
    data: CoalitionData, f_full: float, f_empty: float, shrinkages: Sequence[float] = (0.0,)
) -> np.ndarray:
    r"""
    Weighted least squares for ``g(S) = f_empty + sum_{i in S} phi_i`` with
    ``sum_i phi_i = f_full - f_empty`` enforced by eliminating the last feature
    (what Kernel SHAP's infinite weights on the empty and full coalitions
    approximate).

    With several ``shrinkages`` the ridge penalty ``lambda * sum_i phi_i^2`` (one
    pseudo-observation ``phi_i = 0`` of weight ``lambda`` per feature; under the
    efficiency constraint it pulls the attributions toward the equal split of
    ``f_full - f_empty``) is added with the ``lambda`` among them whose weighted
    leave-one-out error over the coalitions is smallest (the closed form through
    the leverages; ties go to the smaller ``lambda``). A game the coalitions fit
    exactly, such as an additive one, keeps ``lambda = 0`` and its exact values.

    Returns:
        ``[n]`` attributions.
    """
    return _fit_with_rank(data, f_full, f_empty, shrinkages)[0]


def _fit_with_rank(
    data: CoalitionData, f_full: float, f_empty: float, shrinkages: Sequence[float] = (0.0,)
) -> "tuple[np.ndarray, int]":
    r""":func:`fit_shapley_regression` and the rank of the weighted design of the
    coalitions (``n - 1`` when the data identify every attribution)."""
    return fit_efficient_regression(
        data.coalitions.astype(np.float64), data.values, data.weights, f_full, f_empty, shrinkages
    )


def fit_efficient_regression(
    basis: np.ndarray, values: np.ndarray, weights: np.ndarray, f_full: float, f_empty: float,
    shrinkages: Sequence[float] = (0.0,),
) -> "tuple[np.ndarray, int]":
    r"""
    Weighted least squares for ``g(S) = f_empty + sum_j beta_j basis_j(S)`` with
    ``sum_j beta_j = f_full - f_empty`` enforced by eliminating the last coefficient,
    every basis function being 1 on the full coalition. With the coalitions as the
    basis it is :func:`fit_shapley_regression`; with the products of up to ``k``
    features (``basis_T(S) = 1`` when ``T`` is in ``S``) and Kernel SHAP's weights it
    is the Faith-Shap interaction index of order ``k``
    (:mod:`captum_pi.interactions`). ``shrinkages``: as in
    :func:`fit_shapley_regression`, the pseudo-observations being ``beta_j = 0``.

    Args:
        basis (np.ndarray): ``[m, p]`` basis functions at the ``m`` coalitions.
        values (np.ndarray): ``[m]`` their values.
        weights (np.ndarray): ``[m]`` regression weights.
        f_full (float): Value of the full coalition.
        f_empty (float): Value of the empty coalition.
        shrinkages (sequence of float, optional): Ridge strengths chosen among by
                    leave-one-out error. Default: (0.0,)

    Returns:
        ``(beta [p], rank)``: the coefficients and the rank of the weighted design
        (``p - 1`` when the data identify every coefficient).
    """
    z = np.asarray(basis, dtype=np.float64)
    p = z.shape[1]
    total = f_full - f_empty
    if z.shape[0] == 0:  # no intermediate coalition: efficiency alone, spread evenly
        return np.full(p, total / p), 0
    root = np.sqrt(weights)
    design = (z[:, :-1] - z[:, -1:]) * root[:, None]
    response = (values - f_empty - z[:, -1] * total) * root
    # beta_j = 0 for j < p - 1, and beta_{p-1} = total - sum_j beta_j = 0
    pseudo = np.vstack([np.eye(p - 1), -np.ones((1, p - 1))])
    pseudo_response = np.concatenate([np.zeros(p - 1), [-total]])
    best = None
    for strength in sorted(set(shrinkages)):
        phi, loo = _ridge_solution(design, response, pseudo, pseudo_response, strength)
        if best is None or loo < best[1] * (1 - 1e-9):
            best = (phi, loo)
    phi = best[0]
    return np.append(phi, total - phi.sum()), int(np.linalg.matrix_rank(design))


def _ridge_solution(
    design: np.ndarray, response: np.ndarray, pseudo: np.ndarray, pseudo_response: np.ndarray,
    strength: float,
) -> "tuple[np.ndarray, float]":
    r"""Least squares on the (already weighted) rows plus ``strength``-weighted
    pseudo-rows (minimum-norm when rank deficient), and the leave-one-out error
    of the data rows ``sum (r_i / (1 - h_i))^2`` from their leverages ``h_i``."""
    if strength > 0:
        scale = np.sqrt(strength)
        system = np.vstack([design, scale * pseudo])
        target = np.concatenate([response, scale * pseudo_response])
    else:
        system, target = design, response
    phi = np.linalg.lstsq(system, target, rcond=None)[0]
    gram_inverse = np.linalg.pinv(system.T @ system)
    leverage = np.einsum("ij,jk,ik->i", design, gram_inverse, design)
    residual = response - design @ phi
    loo = float(np.sum((residual / np.maximum(1.0 - leverage, 1e-9)) ** 2))
    return phi, loo
