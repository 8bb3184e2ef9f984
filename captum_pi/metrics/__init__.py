r"""
Faithfulness metrics for feature attributions of decoder-only sequence classifiers.

Every metric evaluates the model on masked copies of the input, built with the same
masking game as the attribution methods (:mod:`captum_pi._core.masking`, the
``masking=`` keyword: ``"delete"``, the default, removes the tokens of inactive
features; ``"replace"`` replaces them with the mask token ``baselines``; fixed (-1)
tokens are always kept), and reads the model's prediction at the final token. Masked inputs of all examples are evaluated together,
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
- :func:`coalition_values` and :func:`shapley_from_game`: every coalition's value under a
  masking game (in ``2^(n-1)`` passes under deletion) and the exact Shapley values of a
  game given that way.
- :func:`progressive_fidelity`: how far each intermediate prediction ``p_k`` (read in one
  pass on the unmasked input) is from the model's prediction on the input with every
  feature after ``k`` masked, the approximation Progressive Inference rests on.
- :func:`progressive_shapley_values`: exact Shapley values of the game MP-PI samples
  (each coalition read at the last token of its last feature, not at the final
  token); their agreement with :func:`shapley_values` bounds what MP-PI can reach.

Attributions are accepted per feature, ``[B, n_max]`` (NaN-padded, as returned by
:func:`captum_pi.feature_attributions`), or per token, ``[B, T]``, in Captum's
FeatureAblation convention (every token of a feature carries the feature's value).

The package holds one concept per module, each importing only the ones above it:
:mod:`~captum_pi.metrics._masked_values` (what the metrics share: argument checks,
per-feature scores, batched evaluation of masked inputs),
:mod:`~captum_pi.metrics.confidence`, :mod:`~captum_pi.metrics.studies`,
:mod:`~captum_pi.metrics.aopc`, :mod:`~captum_pi.metrics.games`,
:mod:`~captum_pi.metrics.shapley`,
:mod:`~captum_pi.metrics.fidelity` and :mod:`~captum_pi.metrics.plots`. Every public
name is re-exported here. ``import captum_pi.metrics`` imports neither matplotlib nor
captum (whose import pulls in matplotlib): the plots import matplotlib when they draw,
and captum's progress bar and Kernel SHAP are imported on first use.
"""
from captum_pi.metrics._masked_values import ForwardFunc  # noqa: F401 (as before the split)
from captum_pi.metrics.aopc import ERASER_FRACTIONS, AOPCResult, aopc  # noqa: F401
from captum_pi.metrics.confidence import ConfidenceInterval, mean_confidence_interval
from captum_pi.metrics.fidelity import FidelityResult, progressive_fidelity
from captum_pi.metrics.games import CoalitionValuesResult, coalition_values, shapley_from_game
from captum_pi.metrics.plots import plot_activation_curves, plot_fidelity_gap
from captum_pi.metrics.shapley import (
    ShapleyAgreementResult,
    ShapleyValuesResult,
    progressive_shapley_values,
    shapley_agreement,
    shapley_values,
)
from captum_pi.metrics.studies import (
    ActivationStudyResult,
    activation_study,
    inverse_activation_study,
)

__all__ = [
    "ConfidenceInterval",
    "mean_confidence_interval",
    "ActivationStudyResult",
    "activation_study",
    "inverse_activation_study",
    "AOPCResult",
    "aopc",
    "CoalitionValuesResult",
    "coalition_values",
    "shapley_from_game",
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
