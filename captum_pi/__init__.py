r"""
captum-pi: Progressive Inference attributions for decoder-only LLM classifiers,
as Captum ``Attribution`` classes.

The public names are imported on first use (PEP 562), so ``import captum_pi``
and ``captum-pi --help`` do not pay for torch, transformers, captum and
scikit-learn until a name that needs them is used.
"""
import importlib
from typing import Any, Dict, List

__version__ = "0.1.0"

_EXPORTS: Dict[str, List[str]] = {
    "captum_pi._core.single_pass": ["SinglePassProgressive"],
    "captum_pi._core.multi_pass": ["MultiPassProgressive"],
    "captum_pi._core.progressive": ["PerPositionForward", "feature_attributions"],
    "captum_pi._core.prefix_sharing": ["prefix_sharing", "PrefixSharingWarning"],
    "captum_pi._core.random_baseline": ["RandomAttribution"],
    "captum_pi._core.reagent": ["ReAGent"],
    "captum_pi._core.attention_last": ["AttentionLast"],
    "captum_pi._core.generic_attention": ["GenericAttentionExplainability"],
    "captum_pi._core.lrp_transformer": ["TransformerLRP", "conservative_propagation"],
    "captum_pi._core.captum_adapters": [
        "TokenFeatureAblation",
        "TokenShapleyValueSampling",
        "TokenShapleyValues",
        "TokenKernelShap",
        "TokenLime",
    ],
    "captum_pi._core.gradient_adapters": ["TokenInputXGradient", "TokenIntegratedGradients"],
    "captum_pi._core.budget": ["BudgetWarning", "CompletenessWarning"],
    "captum_pi.llm_attr": ["LLMClassifierAttribution"],
    "captum_pi.attribution_result": ["ClassifierAttributionResult"],
    "captum_pi.batching": ["pad_views"],
    "captum_pi.text": ["TextFeatureInput", "mask_token_id", "SuffixWarning"],
    "captum_pi.data": ["load_drug_reviews", "DrugReviews"],
    "captum_pi.models": ["load_default_classifier", "ClassifierBundle"],
    "captum_pi.registry": ["METHODS", "MethodSpec", "get_method"],
    # needs shapiq (pip install "captum-pi[shapiq]"), imported only when a name is used
    "captum_pi.interactions": ["TextGame", "TableGame", "progressive_interactions"],
    "captum_pi.metrics": [
        "activation_study",
        "inverse_activation_study",
        "aopc",
        "shapley_values",
        "progressive_shapley_values",
        "shapley_agreement",
        "progressive_fidelity",
        "coalition_values",
        "shapley_from_game",
        "mean_confidence_interval",
        "plot_activation_curves",
        "plot_fidelity_gap",
        "ActivationStudyResult",
        "AOPCResult",
        "CoalitionValuesResult",
        "ConfidenceInterval",
        "FidelityResult",
        "ShapleyAgreementResult",
        "ShapleyValuesResult",
    ],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'captum_pi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
