r"""
Whether a budget can identify every attribution, and the warnings issued when it
cannot.

**Regression methods.** Kernel SHAP, LIME and MP-PI fit a linear surrogate
``g(z) = phi_0 + sum_i phi_i z_i`` to the model's values on sampled coalitions
``z``. The fit identifies every ``phi_i`` only if the design matrix of the
coalitions it fits has full column rank; below that, least squares returns the
minimum-norm solution (ridge and lasso: the regularised one), whose entries for
the unidentified directions are artefacts of the solver, not estimates (several
features typically get the same value). The number of unknowns:

- Kernel SHAP (Captum's): ``n`` coefficients and an intercept, ``n + 1``.
  Captum's ``KernelShap`` always evaluates the unmasked and the fully masked input
  first (weight 1e6, which approximates efficiency but does not remove an
  unknown: both rows are in the regression) and counts them in ``n_samples``, so
  ``n_samples`` is the number of rows and at least ``n + 1`` are needed.
- LIME (Captum's, with its default or our ridge surrogate): ``n`` coefficients and
  an intercept, ``n + 1``; every row is a Bernoulli(1/2) draw, so again
  ``n_samples >= n + 1``.
- MP-PI: the intercept is ``f(empty)`` and efficiency is enforced exactly, so
  ``n - 1`` unknowns, fitted from the coalitions pooled from the ``n_samples - 2``
  sampled passes (the unmasked and fully masked passes only anchor the fit). Each
  pass yields one coalition per active feature, so fewer than ``n - 1`` passes can
  suffice and whether they do depends on the draw; ``n_samples >= n + 1`` (one new
  coalition per pass) identifies every feature in almost every draw.

:func:`identifying_n_samples` gives ``n + 1``. Meeting it is necessary, not
sufficient: sampled coalitions can repeat, so the adapters of
:mod:`captum_pi._core.captum_adapters` and MP-PI check the rank of the design they
actually fit and warn with :class:`BudgetWarning` when it is deficient. Shapley
Value Sampling needs no such check: one permutation gives every feature one
marginal contribution.

**Integrated Gradients.** :class:`CompletenessWarning` reports an integration
rule too coarse for the path: ``|sum(attributions) - (f(x) - f(baseline))|``
above a fraction of ``|f(x) - f(baseline)|``.
"""
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    import numpy as np


class BudgetWarning(UserWarning):
    r"""The budget (``n_samples``) of a sampling method cannot identify every
    feature's attribution: the regression it fits is rank deficient."""


class CompletenessWarning(UserWarning):
    r"""Integrated Gradients' attributions miss completeness by more than the
    tolerance: the integration rule has too few steps for the path."""


def identifying_n_samples(n_features: int) -> int:
    r"""
    The smallest ``n_samples`` with which Kernel SHAP's and LIME's regression
    (``n`` coefficients and an intercept) can identify every one of ``n_features``
    attributions: ``n + 1``. For MP-PI it is the budget that identifies every
    feature in almost every draw (each sampled pass adding at least one new
    coalition for the ``n - 1`` unknowns left by efficiency).

    Args:
        n_features (int): Number of features of the input row (at least 1).

    Returns:
        int: ``n_features + 1``.

    Examples::

        >>> identifying_n_samples(13)   # --budget 3 cannot identify 13 features
        14
    """
    _check_n_features(n_features)
    return n_features + 1


def mp_pi_minimum_n_samples(n_features: int) -> int:
    r"""
    The least ``n_samples`` MP-PI accepts for a row with ``n_features`` features
    (also :func:`captum_pi._core.multi_pass.minimum_n_samples`): the unmasked and
    the fully masked input, plus one sampled pass when there are two or more
    features (one feature is exact from the first two). Smaller budgets raise a
    ``ValueError``.

    Whether an accepted budget identifies every attribution depends on the passes
    drawn: MP-PI checks the rank of the regression it fits and issues a
    :class:`BudgetWarning` when it is deficient; :func:`identifying_n_samples`
    (``n + 1``) almost always avoids it.

    Args:
        n_features (int): Number of features of the row (at least 1).

    Returns:
        int: 3 for ``n_features >= 2``, 2 for one feature.
    """
    _check_n_features(n_features)
    return 3 if n_features > 1 else 2


def _check_n_features(n_features: int) -> None:
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {n_features!r}.")


def design_rank(coalitions: "np.ndarray", intercept: bool = True) -> int:
    r"""
    Rank of the design matrix of a linear surrogate fitted on ``coalitions``
    (``[m, n]``, 0/1), with a column of ones for the intercept when ``intercept``.
    The regression identifies every coefficient iff the rank is ``n + intercept``.
    Rows with positive weight only, as a weighted fit ignores the others; all
    weights of Captum's Kernel SHAP and LIME kernels are positive.
    """
    import numpy as np  # here, so that the command line can import the minima cheaply

    design = np.asarray(coalitions, dtype=np.float64)
    if design.ndim != 2:
        raise ValueError(f"coalitions must be a 2-D [m, n] array, got shape {design.shape}.")
    if intercept:
        design = np.hstack([np.ones((design.shape[0], 1)), design])
    if design.shape[0] == 0:
        return 0
    return int(np.linalg.matrix_rank(design))


def warn_unidentified(
    method: str,
    n_features: int,
    n_samples: int,
    rank: Optional[int],
    unknowns: int,
    stacklevel: int = 3,
) -> None:
    r"""
    Issues a :class:`BudgetWarning` saying that ``method``'s fit on ``n_features``
    features with ``n_samples`` cannot identify every attribution: with ``rank``
    None because the budget is below the number of rows needed, otherwise because
    the coalitions sampled span only ``rank`` of the ``unknowns`` directions.
    """
    minimum = identifying_n_samples(n_features)
    if rank is None:
        why = (
            f"its regression has {unknowns} unknowns but n_samples={n_samples} gives fewer "
            f"rows than that; pass n_samples={minimum} or more"
        )
    else:
        why = (
            f"the coalitions it sampled repeat or are dependent and span only {rank} of the "
            f"{unknowns} unknowns of its regression; a larger n_samples (or another seed) "
            "makes that unlikely"
        )
    warnings.warn(
        f"{method}: n_samples={n_samples} does not identify the attributions of all "
        f"{n_features} features: {why}. Until then some of the values returned are an "
        "artefact of the solver (a minimum-norm or regularised solution), not estimates.",
        BudgetWarning,
        stacklevel=stacklevel,
    )


def check_regression_design(
    method: str, coalitions: "np.ndarray", n_samples: int, stacklevel: int = 4
) -> None:
    r"""
    Warns (:class:`BudgetWarning`) when a Kernel SHAP or LIME fit with an intercept
    on ``coalitions`` (``[m, n]``, the rows the regression used) is rank deficient.

    Args:
        method (str): Name for the message.
        coalitions (np.ndarray): ``[m, n]`` 0/1 rows of the regression.
        n_samples (int): The budget that produced them.
        stacklevel (int, optional): ``warnings.warn``'s stacklevel. Default: 4
    """
    n_features = int(coalitions.shape[1])
    unknowns = n_features + 1
    rank = design_rank(coalitions)
    if rank < unknowns:
        short = n_samples < identifying_n_samples(n_features)
        warn_unidentified(
            method, n_features, n_samples, None if short else rank, unknowns, stacklevel
        )


_CAPTUM_REGRESSIONS = ("KernelShap", "Lime")


def check_captum_budget(attr_method: Any, n_features: int, kwargs: Mapping[str, Any]) -> None:
    r"""
    Warns (:class:`BudgetWarning`) when Captum's ``KernelShap`` or ``Lime`` is run
    with fewer ``n_samples`` than :func:`identifying_n_samples` ``(n_features)``;
    ``n_samples`` is read from ``kwargs`` or, when absent, from the default of the
    method's ``attribute``. Other methods are left alone.

    Args:
        attr_method (Attribution): The Captum method about to run.
        n_features (int): Number of interpretable features.
        kwargs (Mapping): The keyword arguments of its ``attribute`` call.
    """
    name = next(
        (cls.__name__ for cls in type(attr_method).__mro__ if cls.__name__ in _CAPTUM_REGRESSIONS),
        None,
    )
    if name is None:
        return
    n_samples = kwargs.get("n_samples")
    if n_samples is None:
        # imported here: this module must import without torch, and captum needs it
        from captum_pi._core.method_protocol import declared_default

        n_samples = declared_default(attr_method, "n_samples")
    if int(n_samples) < identifying_n_samples(n_features):
        warn_unidentified(name, n_features, int(n_samples), None, n_features + 1, stacklevel=4)
