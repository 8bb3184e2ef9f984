r"""
captum-pi: Progressive Inference attributions for decoder-only LLM classifiers,
as Captum ``Attribution`` classes.
"""
from captum_pi._core.multi_pass import MultiPassProgressive
from captum_pi._core.progressive import PerPositionForward, feature_attributions
from captum_pi._core.single_pass import SinglePassProgressive

__version__ = "0.1.0"

__all__ = [
    "SinglePassProgressive",
    "MultiPassProgressive",
    "PerPositionForward",
    "feature_attributions",
]
