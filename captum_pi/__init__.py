r"""
captum-pi: Progressive Inference attributions for decoder-only LLM classifiers,
as Captum ``Attribution`` classes.
"""
from captum_pi._core.multi_pass import MultiPassProgressive
from captum_pi._core.progressive import PerPositionForward, feature_attributions
from captum_pi._core.single_pass import SinglePassProgressive
from captum_pi.metrics import (
    ActivationStudyResult,
    AOPCResult,
    ConfidenceInterval,
    FidelityResult,
    ShapleyAgreementResult,
    ShapleyValuesResult,
    activation_study,
    aopc,
    inverse_activation_study,
    mean_confidence_interval,
    plot_activation_curves,
    plot_fidelity_gap,
    progressive_fidelity,
    shapley_agreement,
    shapley_values,
)

__version__ = "0.1.0"

__all__ = [
    "SinglePassProgressive",
    "MultiPassProgressive",
    "PerPositionForward",
    "feature_attributions",
    "activation_study",
    "inverse_activation_study",
    "aopc",
    "shapley_values",
    "shapley_agreement",
    "progressive_fidelity",
    "mean_confidence_interval",
    "plot_activation_curves",
    "plot_fidelity_gap",
    "ActivationStudyResult",
    "AOPCResult",
    "ConfidenceInterval",
    "FidelityResult",
    "ShapleyAgreementResult",
    "ShapleyValuesResult",
]
