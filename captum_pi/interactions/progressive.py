r"""
Interactions from Progressive Inference: the Faith-Shap interaction index (FSII;
Tsai, Yeh and Ravikumar, JMLR 2023) of order ``k`` (2 by default) fitted on the
coalitions MP-PI's passes reveal, so pairwise interactions cost what MP-PI's
Shapley values cost.

FSII of order ``k`` is the weighted least-squares fit of
``g(S) = v(empty) + sum_{T ⊆ S, 1 <= |T| <= k} beta_T`` over all coalitions, with
Kernel SHAP's weights and ``g`` exact on the empty and the full coalition. A pass
of MP-PI on ``A`` reveals ``v(A ∩ {0..j})`` after every active feature ``j``
(exactly so under the deletion game), so about ``n / 2`` coalitions per model row.
:func:`progressive_interactions` draws MP-PI's passes
(:func:`captum_pi._core.multi_pass._kernel_passes`: the border passes first, then
distinct draws from ``P'``), pools every revealed coalition once
(:func:`~captum_pi._core.multi_pass.distinct_coalitions`, the unmasked pass's
prefixes included) and solves the FSII regression restricted to them
(:func:`~captum_pi._core.multi_pass.fit_efficient_regression`, with a light
ridge toward 0 that vanishes as the coalitions fill in). Once the passes reveal
every coalition (``2^(n-1)`` rows under deletion) the result is the exact FSII.
"""
import warnings
from typing import List, Optional, Tuple

import numpy as np

from captum_pi._core.budget import BudgetWarning
from captum_pi._core.mask_distribution import mask_distribution
from captum_pi._core.multi_pass import (
    KERNEL_SHRINKAGES,
    _budget,
    _kernel_passes,
    _kernel_shrinkages,
    distinct_coalitions,
    fit_efficient_regression,
)
from captum_pi.interactions.game import PassGame, shapiq

INDEX = "FSII"
#: Default ridge toward 0, in MP-PI's unit (the mean Kernel SHAP weight of the revealed
#: coalitions times the fraction not yet revealed, so it vanishes once all are). On the
#: SmolLM2 reviews of benchmarks/interactions.py it cuts the error of plain least squares
#: from 3.9 to 1.1 at n rows and 0.76 to 0.60 at 2n (n = 8), and ties from 8n on; on the
#: synthetic games, whose planted interactions are large, it costs up to 0.15 at 2n-4n
#: rows for n = 16. MP-PI's leave-one-out choice among its strengths was worse at 8n.
DEFAULT_RIDGE = 0.1


def interaction_basis(coalitions: np.ndarray, max_order: int) -> Tuple[np.ndarray, List[Tuple[int, ...]]]:
    r"""
    The FSII regressors of coalitions: ``basis[s, T] = 1`` when ``T ⊆ S``, for every
    ``T`` of 1 to ``max_order`` features, in shapiq's order (by size, then
    lexicographic; :func:`shapiq.powerset`).

    Args:
        coalitions (np.ndarray): BoolArray ``[m, n]``.
        max_order (int): Largest interaction size.

    Returns:
        ``(basis [m, p], interactions)``: the float64 design and the ``p`` tuples.
    """
    coalitions = np.asarray(coalitions, dtype=bool)
    n = coalitions.shape[1]
    interactions = list(shapiq.powerset(range(n), min_size=1, max_size=max_order))
    basis = np.column_stack([coalitions[:, list(T)].all(axis=1) for T in interactions]).astype(np.float64)
    return basis, interactions


def progressive_interactions(
    game: PassGame,
    n_samples: Optional[int] = None,
    max_order: int = 2,
    sampling: str = "optimized",
    seed: Optional[int] = None,
    solver: str = "auto",
    ridge: float = DEFAULT_RIDGE,
) -> "shapiq.InteractionValues":
    r"""
    Faith-Shap interactions (FSII) up to ``max_order`` from MP-PI's passes.

    Args:
        game (PassGame): A :class:`~captum_pi.interactions.TextGame` (or
                    :class:`~captum_pi.interactions.TableGame`); its unmasked and
                    fully masked passes are already spent.
        n_samples (int, optional): Model rows, the unmasked and the fully masked
                    input included, as MP-PI's ``n_samples``; passes beyond those
                    that reveal every coalition are not run. None uses ``2 n``
                    (MP-PI's default). Default: None
        max_order (int, optional): Largest interaction size. Default: 2
        sampling (str, optional): ``"optimized"`` (MP-PI's ``P'`` with S+) or
                    ``"shapley"``. Default: "optimized"
        seed (int, optional): Seed of the pass sampler. Default: None
        solver (str, optional): How ``P'`` is solved (see
                    :func:`~captum_pi._core.mask_distribution.mask_distribution`).
                    Default: "auto"
        ridge (float, optional): Strength of the ridge toward 0 (pseudo-observations
                    ``beta_T = 0``), in units of the mean Kernel SHAP weight of the
                    revealed coalitions times the fraction of coalitions not
                    revealed, so it vanishes once every coalition is; 0 gives plain
                    least squares (minimum-norm where the coalitions do not identify
                    every coefficient). Default: 0.1

    Returns:
        :class:`shapiq.InteractionValues` of index ``"FSII"``, ``min_order=0`` (the
        empty set holds ``v(empty)``, also its ``baseline_value``), with
        ``estimation_budget`` the model rows it takes on a fresh game.

    Examples::

        >>> game = TextGame.from_input(bundle.model, inp, target=1)
        >>> fsii = progressive_interactions(game, n_samples=4 * game.n_players, seed=0)
        >>> fsii[(0, 2)]          # the interaction of the first and third sentence
        >>> print(interaction_text(fsii, inp))
    """
    if not isinstance(game, PassGame):
        raise TypeError(f"game must be a TextGame or TableGame, got {type(game).__name__}.")
    n = game.n_players
    if isinstance(max_order, bool) or not isinstance(max_order, int) or not 1 <= max_order <= max(n, 1):
        raise ValueError(f"max_order must be an int in [1, {n}] for a game of {n} features, got {max_order!r}.")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
        raise ValueError(f"ridge must be a number >= 0, got {ridge!r}.")
    budget = _budget(n, n_samples)
    passes = np.zeros((0, n), dtype=bool)
    n_sampled = budget - game.anchor_rows
    distribution = mask_distribution(n, sampling, solver) if n > 1 else None
    if distribution is not None and n_sampled > 0:
        passes = _kernel_passes(distribution, np.random.default_rng(seed), n_sampled)
    ends = game.reveal(passes)
    data = distinct_coalitions(
        np.vstack([passes, np.ones((1, n), dtype=bool)]), np.vstack([ends, game.full_ends[None]])
    )
    basis, interactions = interaction_basis(data.coalitions, max_order)
    unit = 0.0 if distribution is None else _kernel_shrinkages(data, distribution)[KERNEL_SHRINKAGES.index(1.0)]
    beta, rank = fit_efficient_regression(
        basis, data.values, data.weights, game.full_value, game.empty_value, (ridge * unit,)
    )
    if rank < len(interactions) - 1:
        _warn_unidentified(n, max_order, len(interactions), rank, game.anchor_rows + len(passes))
    return shapiq.InteractionValues(
        values=np.concatenate([[game.empty_value], beta]),
        index=INDEX,
        max_order=max_order,
        min_order=0,
        n_players=n,
        interaction_lookup={T: position for position, T in enumerate([(), *interactions])},
        estimated=len(data.values) < 2 ** n - 2,
        estimation_budget=game.anchor_rows + len(passes),
        baseline_value=game.empty_value,
    )


def _warn_unidentified(n: int, max_order: int, n_terms: int, rank: int, rows: int) -> None:
    warnings.warn(
        f"progressive_interactions: the coalitions revealed by {rows} model rows identify "
        f"only {rank} of the {n_terms - 1} unknown FSII coefficients of order <= {max_order} "
        f"of {n} features (efficiency fixes one); in the other directions the values are the "
        "ridge's pull toward 0 (or, with ridge=0, the solver's minimum-norm choice), not "
        "estimates. Pass a larger n_samples.",
        BudgetWarning,
        stacklevel=3,
    )
