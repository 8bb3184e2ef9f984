r"""
captum-pi: Progressive Inference attributions for decoder-only LLM classifiers,
as Captum ``Attribution`` classes.
"""
from captum_pi._core.attention_last import AttentionLast
from captum_pi._core.captum_adapters import (
    TokenFeatureAblation,
    TokenInputXGradient,
    TokenIntegratedGradients,
    TokenKernelShap,
    TokenLime,
    TokenShapleyValueSampling,
)
from captum_pi._core.generic_attention import GenericAttentionExplainability
from captum_pi._core.lrp_transformer import TransformerLRP, conservative_propagation
from captum_pi._core.multi_pass import MultiPassProgressive
from captum_pi._core.progressive import PerPositionForward, feature_attributions
from captum_pi._core.random_baseline import RandomAttribution
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
    progressive_shapley_values,
    shapley_agreement,
    shapley_values,
)
from captum_pi.data import DrugReviews, load_drug_reviews
from captum_pi.llm_attr import ClassifierAttributionResult, LLMClassifierAttribution
from captum_pi.models import ClassifierBundle, load_default_classifier
from captum_pi.registry import METHODS, MethodSpec, get_method
from captum_pi.text import SuffixWarning, TextFeatureInput, mask_token_id

__version__ = "0.1.0"

__all__ = [
    "SinglePassProgressive",
    "MultiPassProgressive",
    "PerPositionForward",
    "feature_attributions",
    "RandomAttribution",
    "AttentionLast",
    "GenericAttentionExplainability",
    "TransformerLRP",
    "conservative_propagation",
    "TokenFeatureAblation",
    "TokenShapleyValueSampling",
    "TokenKernelShap",
    "TokenLime",
    "TokenInputXGradient",
    "TokenIntegratedGradients",
    "LLMClassifierAttribution",
    "ClassifierAttributionResult",
    "TextFeatureInput",
    "mask_token_id",
    "SuffixWarning",
    "load_drug_reviews",
    "DrugReviews",
    "load_default_classifier",
    "ClassifierBundle",
    "METHODS",
    "MethodSpec",
    "get_method",
    "activation_study",
    "inverse_activation_study",
    "aopc",
    "shapley_values",
    "progressive_shapley_values",
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
