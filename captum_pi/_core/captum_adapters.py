r"""
Captum's attribution methods behind the package's uniform token-id protocol::

    method.attribute(inputs, target=None, feature_mask=None, baselines=mask_id,
                     attention_mask=None, target_type=..., **options) -> Tensor [B, T]

with Captum's FeatureAblation convention (every token of feature ``k`` carries
``phi_k``; fixed tokens (-1) and padding carry 0).

**Perturbation methods** (:class:`TokenFeatureAblation`,
:class:`TokenShapleyValueSampling`, :class:`TokenShapleyValues`,
:class:`TokenKernelShap`, :class:`TokenLime`)
run Captum on each row's interpretable representation: a ``[1, n]`` vector of ones
(every feature present) with baseline 0 (absent). The forward function Captum sees
turns each presence vector into model inputs with the masking game of
:mod:`captum_pi._core.masking` (``masking="delete"``, the default, removes the tokens
of absent features; ``"replace"`` replaces them with the mask token ``baselines``;
fixed tokens are never touched) and returns the explained value at the final
token, read with :class:`~captum_pi.PerPositionForward`. This is exactly the masking
of SP-PI, MP-PI and the metrics, and it sidesteps Captum's handling of ``feature_mask`` ids
(Captum treats every id, -1 included, as a feature, and Lime/KernelShap shift a
minimum of -1 to 0). Captum does the sampling, batching
(``perturbations_per_eval``), weighting and regression.

The gradient methods (Input x Gradient, Integrated Gradients) are in
:mod:`captum_pi._core.gradient_adapters`.
"""
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValues, ShapleyValueSampling
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_pi._core.budget import check_regression_design
from captum_pi._core.masking import DEFAULT_MASKING, Masking, resolve_masking
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


class _MaskedValue:
    r"""Captum's forward function for one row: presence vectors ``[P, n]`` (1 =
    feature kept, 0 = masked) -> explained value at the final token ``[P]``."""

    def __init__(
        self,
        per_position: PerPositionForward,
        input_ids: Tensor,
        layout: FeatureLayout,
        masking: Masking,
        target: int,
        target_type: str,
    ) -> None:
        self.per_position = per_position
        self.input_ids = input_ids
        self.layout = layout
        self.masking = masking
        self.target = target
        self.target_type = target_type
        self.presences: List[Tensor] = []

    def __call__(self, presence: Tensor) -> Tensor:
        active = presence.detach().cpu() > 0.5
        self.presences.append(active)
        masked = self.masking.apply(self.input_ids, self.layout, active)
        logits = self.per_position(masked.input_ids, masked.attention_mask).cpu()
        return explained_value(logits[torch.arange(len(masked)), masked.final], self.target, self.target_type)

    def coalitions(self) -> np.ndarray:
        r"""Every presence vector evaluated so far, ``[m, n]`` (0/1)."""
        if not self.presences:
            return np.zeros((0, self.layout.n_features))
        return torch.cat(self.presences).double().numpy()


@contextmanager
def _seeded(seed: Optional[int]) -> Iterator[None]:
    r"""Seeds torch's CPU generator (which Captum's samplers use) for the block and
    restores its state afterwards; None leaves it alone."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class _FeaturePerturbation(PerturbationAttribution):
    r"""Shared machinery of the perturbation adapters; subclasses implement
    :meth:`_run`, which calls the Captum method on one row's presence vector."""

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
        seed: Optional[int] = None,
        show_progress: bool = False,
        masking: str = DEFAULT_MASKING,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids. Rows are explained
                        one at a time, each at its own length; pad on the right and
                        pass ``attention_mask``.
            target (int or Tensor, optional): Class explained, an int or a
                        LongTensor ``[B]``. None explains the predicted class, read
                        from one extra pass over the unmasked inputs. Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; ids 0..n-1
                        in order, each one contiguous span; -1 for tokens that are
                        never masked (BOS, template, padding). None makes every
                        non-padding token a feature. Default: None
            baselines (int, optional): Under ``masking="replace"`` the mask token
                        id that replaces every token of an absent feature, required.
                        Under ``"delete"`` only needed for rows without any fixed
                        token: the token read as their empty input (e.g. BOS).
                        Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"`` of
                        the target class at the final token. Default: "prob"
            n_samples (int, optional): Captum's ``n_samples``: model evaluations per
                        row for Kernel SHAP and Lime (None: ``2 n``), permutations
                        for Shapley Value Sampling (None: 2); unused by Feature
                        Ablation and Shapley Values. Kernel SHAP and Lime issue a
                        :class:`~captum_pi._core.budget.BudgetWarning` when the
                        coalitions they fit do not identify every feature (always
                        below ``n + 1``, see
                        :func:`~captum_pi._core.budget.identifying_n_samples`).
                        Default: None
            perturbations_per_eval (int, optional): Masked inputs per model call.
                        Default: 16
            seed (int, optional): Seed of torch's CPU generator, which Captum's
                        samplers use, set anew for each row so that a row's
                        attributions do not depend on the batch it is in; the
                        generator's state is restored afterwards. None leaves the
                        generator alone. Default: None
            show_progress (bool, optional): Captum's progress bar. Default: False
            masking (str, optional): ``"delete"`` or ``"replace"`` (see
                        :mod:`captum_pi._core.masking`). Default: "delete"

        Returns:
            Tensor ``[B, T]`` (float32): every token of feature ``k`` carries
            ``phi_k``; fixed tokens and padding carry 0.
        """
        target_type = check_target_type(target_type)
        if not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
            raise ValueError(
                f"perturbations_per_eval must be a positive int, got {perturbations_per_eval!r}."
            )
        if n_samples is not None and (not isinstance(n_samples, int) or n_samples < 1):
            raise ValueError(f"n_samples must be a positive int or None, got {n_samples!r}.")
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        self._check_layouts(layouts)
        masking = resolve_masking(masking, baselines, vocab_size_of(self.per_position), type(self).__name__)
        masking.check_layouts(layouts, type(self).__name__)
        targets = _prediction_targets(self.per_position, inputs, attention_mask, layouts, target)
        phis: List[Tensor] = []
        for row, layout in enumerate(layouts):
            value_of = _MaskedValue(
                self.per_position, inputs[row, : layout.length].cpu(), layout,
                masking, int(targets[row]), target_type,
            )
            presence = torch.ones(1, layout.n_features)
            with _seeded(seed):
                attribution = self._run(
                    value_of, presence, n_samples, perturbations_per_eval, show_progress
                )
            self._check_identified(value_of, n_samples)
            phis.append(attribution.detach().reshape(-1).double().cpu())
        return expand_to_tokens(phis, layouts, inputs.shape[1]).float()

    def _run(
        self,
        value_of: _MaskedValue,
        presence: Tensor,
        n_samples: Optional[int],
        perturbations_per_eval: int,
        show_progress: bool,
    ) -> Tensor:
        raise NotImplementedError

    def _check_layouts(self, layouts: List[FeatureLayout]) -> None:
        r"""Refuses inputs the method cannot explain, before any model pass."""

    def _check_identified(self, value_of: _MaskedValue, n_samples: Optional[int]) -> None:
        r"""Warns when the row's budget did not identify every feature; methods whose
        estimate identifies every feature at any budget leave it a no-op."""

    def attribute_future(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support attribute_future.")


def _prediction_targets(
    per_position: PerPositionForward,
    inputs: Tensor,
    attention_mask: Optional[Tensor],
    layouts: List[FeatureLayout],
    target: TargetType,
) -> Tensor:
    r"""The class explained in each row. With ``target=None`` it is the predicted
    class, read from one pass over the unmasked inputs (the prediction pass)."""
    if target is not None:
        n_classes = getattr(getattr(per_position.forward_func, "config", None), "num_labels", None)
        if n_classes is None:
            n_classes = int(torch.as_tensor(target).max()) + 1
        return resolve_targets(target, torch.zeros(inputs.shape[0], n_classes))
    logits = per_position(inputs, attention_mask).cpu()
    final = torch.stack([logits[row, layout.length - 1] for row, layout in enumerate(layouts)])
    return resolve_targets(None, final)




# warnings.warn -> warn_unidentified -> check_regression_design -> _check_identified
# -> attribute -> log_usage's wrapper -> the caller
_STACKLEVEL = 6


def _regression_budget(n_features: int, n_samples: Optional[int]) -> int:
    r"""Kernel SHAP's and LIME's ``n_samples``: the paper's ``2 n`` when None."""
    return 2 * n_features if n_samples is None else n_samples


class TokenFeatureAblation(_FeaturePerturbation):
    r"""
    Captum's :class:`~captum.attr.FeatureAblation` on token ids with the package's
    masking game: ``phi_k = f(x) - f(x with feature k masked)``.

    Cost: ``n + 1`` forward passes per row (Captum evaluates the unmasked input, then
    one ablation per feature), plus the prediction pass when ``target`` is None.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model or a callable
                    ``f(input_ids, attention_mask=None)`` returning per-position
                    logits ``[B, T, C]`` (see :class:`captum_pi.PerPositionForward`).

    Examples::

        >>> ablation = TokenFeatureAblation(model)
        >>> attr = ablation.attribute(ids, feature_mask=words, baselines=mask_id)
    """

    def _run(
        self,
        value_of: _MaskedValue,
        presence: Tensor,
        n_samples: Optional[int],
        perturbations_per_eval: int,
        show_progress: bool,
    ) -> Tensor:
        return FeatureAblation(value_of).attribute(
            presence, baselines=0.0, perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress,
        )


class TokenShapleyValueSampling(_FeaturePerturbation):
    r"""
    Captum's :class:`~captum.attr.ShapleyValueSampling` on token ids with the
    package's masking game: Shapley values estimated from ``n_samples`` random
    feature permutations (Captum's meaning of ``n_samples``).

    Cost: at most ``n_samples * (n - 1) + 2`` forward passes per row, plus the
    prediction pass when ``target`` is None. Captum evaluates the fully masked
    input, then one coalition per feature added in each permutation
    (``n_samples * n + 1`` evaluations), but every permutation ends at the
    unmasked input and short prefixes repeat across permutations: the adapter
    evaluates each distinct coalition once and answers repeats from a cache, so
    the attributions are Captum's and the cost is lower. The default of 2
    permutations spends at most the paper's budget of ``2 n``.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model or a callable returning
                    per-position logits ``[B, T, C]``.

    Examples::

        >>> svs = TokenShapleyValueSampling(model)
        >>> attr = svs.attribute(ids, feature_mask=words, baselines=mask_id, seed=0)
    """

    default_permutations = 2

    def _run(
        self,
        value_of: _MaskedValue,
        presence: Tensor,
        n_samples: Optional[int],
        perturbations_per_eval: int,
        show_progress: bool,
    ) -> Tensor:
        return ShapleyValueSampling(_CachedValue(value_of)).attribute(
            presence.double(), baselines=0.0,
            n_samples=self.default_permutations if n_samples is None else n_samples,
            perturbations_per_eval=perturbations_per_eval, show_progress=show_progress,
        )


class _CachedValue:
    r"""A :class:`_MaskedValue` that evaluates each distinct presence vector once:
    Captum's ``ShapleyValues`` asks for every prefix of every one of the ``n!``
    feature orders (``1 + n * n!`` values), but there are only ``2^n`` coalitions;
    its ``ShapleyValueSampling`` ends every permutation at the unmasked input and
    repeats short prefixes across permutations."""

    def __init__(self, value_of: _MaskedValue) -> None:
        self.value_of = value_of
        self.cache: Dict[Tuple[bool, ...], float] = {}

    def __call__(self, presence: Tensor) -> Tensor:
        keys = [tuple(row) for row in (presence.detach().cpu() > 0.5).tolist()]
        new = list(dict.fromkeys(key for key in keys if key not in self.cache))
        if new:
            values = self.value_of(torch.tensor(new, dtype=torch.float64))
            self.cache.update(zip(new, values.tolist()))
        return torch.tensor([self.cache[key] for key in keys], dtype=torch.float64)


class TokenShapleyValues(_FeaturePerturbation):
    r"""
    Captum's :class:`~captum.attr.ShapleyValues` (exact Shapley values, averaging
    every feature's marginal contribution over all ``n!`` feature orders) on token
    ids with the package's masking game.

    Cost: ``2^n`` forward passes per row, plus the prediction pass when ``target``
    is None. Captum itself evaluates ``1 + n * n!`` perturbed inputs (the fully
    masked one, then every prefix of every order); the adapter evaluates each of
    the ``2^n`` distinct coalitions once and answers repeats from a cache. Captum's
    bookkeeping still loops over the ``n!`` orders, so rows with more than
    ``max_features`` (8) features are refused: use
    :class:`TokenShapleyValueSampling` or :class:`TokenKernelShap` there, or
    coarser features. Captum accumulates the marginal contributions in float32,
    so with 8 features (40,320 orders) the values carry relative errors of about
    1e-3; with 4, about 1e-7.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model or a callable returning
                    per-position logits ``[B, T, C]``.

    Examples::

        >>> shapley = TokenShapleyValues(model)
        >>> attr = shapley.attribute(ids, feature_mask=sentences, baselines=mask_id)
    """

    max_features = 8

    def _check_layouts(self, layouts: List[FeatureLayout]) -> None:
        largest = max((layout.n_features for layout in layouts), default=0)
        if largest > self.max_features:
            raise ValueError(
                f"TokenShapleyValues enumerates all n! feature orders, so it accepts at most "
                f"{self.max_features} features per row; got a row with {largest}. Use "
                "TokenShapleyValueSampling ('shapley-value-sampling') or TokenKernelShap "
                "('kernel-shap') for longer inputs, or coarser features (e.g. sentences)."
            )

    def _run(
        self,
        value_of: _MaskedValue,
        presence: Tensor,
        n_samples: Optional[int],
        perturbations_per_eval: int,
        show_progress: bool,
    ) -> Tensor:
        return ShapleyValues(_CachedValue(value_of)).attribute(
            presence.double(), baselines=0.0, perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress,
        )


class TokenKernelShap(_FeaturePerturbation):
    r"""
    Captum's :class:`~captum.attr.KernelShap` on token ids with the package's masking
    game, the paper's perturbation baseline. Captum evaluates the unmasked and the
    fully masked input (weight 1e6, which approximates efficiency) and
    ``n_samples - 2`` coalitions drawn from the Shapley kernel, and fits a weighted
    linear regression.

    Cost: ``n_samples`` forward passes per row, ``2 n`` by default as in the paper,
    plus the prediction pass when ``target`` is None. A row with one feature gets
    ``f(x) - f(masked)`` from those two passes (Captum's sampler needs two features).

    Identification: the regression has ``n + 1`` unknowns (``n`` coefficients and
    an intercept) and ``n_samples`` rows (the two anchors included), so
    ``n_samples < n + 1`` cannot identify every feature; sampled coalitions can
    also repeat. Whenever the rows' design matrix is rank deficient the method
    issues a :class:`~captum_pi._core.budget.BudgetWarning`.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model or a callable returning
                    per-position logits ``[B, T, C]``.

    Examples::

        >>> kernel_shap = TokenKernelShap(model)
        >>> attr = kernel_shap.attribute(ids, feature_mask=words, baselines=mask_id, seed=0)
    """

    def _run(
        self,
        value_of: _MaskedValue,
        presence: Tensor,
        n_samples: Optional[int],
        perturbations_per_eval: int,
        show_progress: bool,
    ) -> Tensor:
        n = presence.shape[1]
        budget = _regression_budget(n, n_samples)
        if n == 1:
            ends = value_of(torch.tensor([[1.0], [0.0]]))
            return (ends[0] - ends[1]).reshape(1, 1)
        return KernelShap(value_of).attribute(
            presence, baselines=0.0, n_samples=budget,
            perturbations_per_eval=perturbations_per_eval, show_progress=show_progress,
        )

    def _check_identified(self, value_of: _MaskedValue, n_samples: Optional[int]) -> None:
        n = value_of.layout.n_features
        if n > 1:  # one feature is exact from its two passes
            check_regression_design(
                "Kernel SHAP", value_of.coalitions(), _regression_budget(n, n_samples),
                stacklevel=_STACKLEVEL,
            )


class TokenLime(_FeaturePerturbation):
    r"""
    Captum's :class:`~captum.attr.Lime` on token ids with the package's masking game.
    Captum samples each feature present with probability 1/2 and weights samples
    with an exponential kernel on the cosine distance to the unmasked input (width
    1). The surrogate is a ridge regression with ``alpha=1`` as in the reference LIME
    implementation (Ribeiro et al.'s ``lime`` package) rather than Captum's default
    Lasso with ``alpha=0.01``, which sets every coefficient to 0 when the explained
    probability moves by less than about 0.01 per feature.

    Cost: ``n_samples`` forward passes per row, ``2 n`` by default (the paper's
    budget for sampling methods), plus the prediction pass when ``target`` is None.

    Identification: as for :class:`TokenKernelShap`, ``n + 1`` unknowns; a rank
    deficient design (always when ``n_samples < n + 1``) issues a
    :class:`~captum_pi._core.budget.BudgetWarning`. The ridge penalty makes the
    solution unique even then, but the unidentified directions are shrunk to 0
    rather than estimated.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model or a callable returning
                    per-position logits ``[B, T, C]``.
        interpretable_model (captum._utils.models.Model, optional): Surrogate model,
                    fitted anew for every row. Default: None (``SkLearnRidge(alpha=1.0)``)
        similarity_func (Callable, optional): Captum similarity function.
                    Default: None (Captum's exponential cosine kernel)

    Examples::

        >>> lime = TokenLime(model)
        >>> attr = lime.attribute(ids, feature_mask=words, baselines=mask_id, seed=0)
    """


    def __init__(
        self,
        forward_func: Callable,
        interpretable_model: Optional[object] = None,
        similarity_func: Optional[Callable] = None,
    ) -> None:
        super().__init__(forward_func)
        self.interpretable_model = interpretable_model
        self.similarity_func = similarity_func

    def _run(
        self,
        value_of: _MaskedValue,
        presence: Tensor,
        n_samples: Optional[int],
        perturbations_per_eval: int,
        show_progress: bool,
    ) -> Tensor:
        surrogate = self.interpretable_model
        lime = Lime(
            value_of,
            interpretable_model=SkLearnRidge(alpha=1.0) if surrogate is None else surrogate,
            similarity_func=self.similarity_func,
        )
        return lime.attribute(
            presence, baselines=0.0, n_samples=_regression_budget(presence.shape[1], n_samples),
            perturbations_per_eval=perturbations_per_eval, show_progress=show_progress,
        )

    def _check_identified(self, value_of: _MaskedValue, n_samples: Optional[int]) -> None:
        check_regression_design(
            "LIME", value_of.coalitions(),
            _regression_budget(value_of.layout.n_features, n_samples), stacklevel=_STACKLEVEL,
        )
