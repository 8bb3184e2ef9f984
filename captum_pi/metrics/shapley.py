r"""
Reference Shapley values and the agreement of attributions with them: exact Shapley
values of the masking game from every coalition's value (:mod:`captum_pi.metrics.games`;
Captum's ``KernelShap`` with a large budget beyond ``max_exact_features``), exact
Shapley values of the progressive game MP-PI samples, and the cosine similarity,
Spearman rank correlation and relative L2 error of an attribution against a reference.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from captum_pi._core.progressive import (
    TargetType,
    build_feature_layouts,
    explained_value,
    resolve_targets,
)
from captum_pi._core.masking import DEFAULT_MASKING
from captum_pi.metrics._masked_values import (
    ForwardFunc,
    MaskedValueSetup,
    _feature_scores,
    explained_value_array,
    masked_value_setup,
)
from captum_pi.metrics.games import (
    _exact_coalition_logits,
    _progressive_game_logits,
    shapley_from_game,
)
from captum_pi.metrics.confidence import mean_confidence_interval

__all__ = [
    "ShapleyValuesResult",
    "shapley_values",
    "progressive_shapley_values",
    "ShapleyAgreementResult",
    "shapley_agreement",
]


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
        n_samples (list of int): Per example, the model input rows evaluated:
                    ``2^n`` when exact, ``2^(n-1)`` (``+ 1`` without a prefix token)
                    under deletion without fixed text after a feature, the Kernel
                    SHAP budget when estimated.
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
    masking: str = DEFAULT_MASKING,
) -> ShapleyValuesResult:
    r"""
    Shapley values of the masking game ``v(S)``: the explained value at the final
    token of the input whose features outside ``S`` are masked (deleted under
    ``masking="delete"``, replaced by the mask token under ``"replace"``): the game
    Kernel SHAP and MP-PI approximate.

    Examples with at most ``max_exact_features`` features are solved exactly by
    evaluating every coalition (batched) and applying
    ``phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! (v(S + i) - v(S))``.
    Under deletion, when no fixed token follows a feature, this costs
    ``2^(n-1)`` passes instead of ``2^n``: the intermediate predictions of the
    passes on the coalitions that contain the last feature are, by causality,
    the predictions on every other coalition (``+ 1`` pass for the empty input of
    a row without a prefix token).
    Larger examples use Captum's :class:`~captum.attr.KernelShap` over the binary
    coalition space with ``n_samples`` coalitions (default ``16 n``, the budget of
    the paper's Appendix D.4), seeded with ``seed`` for every example.

    Cost: ``2^n`` rows per exact example (``2^(n-1)`` under deletion, see above);
    ``n_samples`` rows per Kernel SHAP example plus one unmasked row to find its
    target.

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
        masking (str, optional): The masking game, ``"delete"`` or ``"replace"``
                    (see :mod:`captum_pi._core.masking`); use the one the compared
                    attributions were computed under. Default: "delete"

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
    setup = masked_value_setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "shapley_values", masking,
    )
    exact = [layout.n_features <= max_exact_features for layout in setup.layouts]
    full_logits, coalition_logits, passes = _exact_coalition_logits(
        setup, exact, perturbations_per_eval, show_progress
    )
    targets = resolve_targets(target, full_logits)
    n_max = max(layout.n_features for layout in setup.layouts)
    values = torch.full((len(setup.layouts), n_max), float("nan"), dtype=torch.float64)
    samples: List[int] = []
    for row, layout in enumerate(setup.layouts):
        n = layout.n_features
        if exact[row]:
            game = explained_value_array(coalition_logits[row], int(targets[row]), target_type)
            values[row, :n] = torch.from_numpy(shapley_from_game(game))
            samples.append(passes[row])
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
    masking: str = DEFAULT_MASKING,
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
        baselines (int, optional): Under ``masking="replace"`` the mask token id
                    of inactive features (the one the attribution methods used),
                    required; under ``"delete"`` only needed for rows without a
                    fixed token, as the token of their empty input. Default: None
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        max_exact_features (int, optional): Largest ``n`` accepted; a row with
                    more features raises ValueError. Default: 12
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        masking (str, optional): The masking game, ``"delete"`` or ``"replace"``
                    (see :mod:`captum_pi._core.masking`). Under ``"delete"``,
                    without fixed text after a feature, the result equals
                    :func:`shapley_values`. Default: "delete"

    Returns:
        :class:`ShapleyValuesResult` (every row exact).

    Examples::

        >>> pi_game = progressive_shapley_values(model, ids, feature_mask=words, baselines=3)
        >>> masking_game = shapley_values(model, ids, feature_mask=words, baselines=3)
        >>> shapley_agreement(pi_game.values, masking_game.values).cosine  # PI's ceiling
    """
    setup = masked_value_setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "progressive_shapley_values", masking,
    )
    too_many = [layout.n_features for layout in setup.layouts if layout.n_features > max_exact_features]
    if too_many:
        raise ValueError(
            f"progressive_shapley_values enumerates 2^n coalitions; got a row with "
            f"{max(too_many)} features > max_exact_features={max_exact_features}."
        )
    games, full_logits = [], []
    for ids, layout in zip(setup.rows, setup.layouts):
        logits = _progressive_game_logits(setup.per_position, ids, layout, setup.masking,
                                          perturbations_per_eval)
        games.append(logits)
        full_logits.append(logits[-1])
    targets = resolve_targets(target, torch.stack(full_logits))
    n_max = max(layout.n_features for layout in setup.layouts)
    values = torch.full((len(setup.layouts), n_max), float("nan"), dtype=torch.float64)
    for row, layout in enumerate(setup.layouts):
        game = explained_value_array(games[row], int(targets[row]), target_type)
        values[row, : layout.n_features] = torch.from_numpy(shapley_from_game(game))
    n_calls, n_rows = setup.counts()
    samples = [2 ** layout.n_features for layout in setup.layouts]
    return ShapleyValuesResult(values, [True] * len(samples), samples, targets, n_calls, n_rows)


def _kernel_shap(
    setup: MaskedValueSetup,
    row: int,
    target: int,
    target_type: str,
    n_samples: int,
    perturbations_per_eval: int,
    seed: int,
    show_progress: bool,
) -> Tensor:
    from captum.attr import KernelShap  # imports matplotlib: only when it is needed

    layout, ids = setup.layouts[row], setup.rows[row]

    def coalition_value(coalitions: Tensor) -> Tensor:
        masked = setup.masking.apply(ids, layout, coalitions.bool().cpu())
        logits = setup.per_position(masked.input_ids, masked.attention_mask).cpu()
        return explained_value(logits[torch.arange(len(masked)), masked.final], target, target_type)

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
    masking: str = DEFAULT_MASKING,
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
        baselines (int, optional): Under ``masking="replace"`` the mask token id
                    of inactive features (the one the attribution methods used),
                    required; under ``"delete"`` only needed for rows without a
                    fixed token, as the token of their empty input. Default: None
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
        masking (str, optional): The masking game, ``"delete"`` or ``"replace"``
                    (see :mod:`captum_pi._core.masking`); use the one the compared
                    attributions were computed under. Default: "delete"

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
            masking=masking,
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
