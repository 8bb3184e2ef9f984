r"""
What an attribution method declares, read from the signature of its ``attribute``
(or of the method a preset wrapper holds in ``.method``), and which methods
:class:`~captum_pi.llm_attr.LLMClassifierAttribution` accepts: Captum's perturbation
methods and any object with ``attribute`` and ``forward_func`` built on the model.
"""
import inspect
from typing import Any, Iterator, Optional

from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValues, ShapleyValueSampling

#: The Captum methods the wrapper runs itself (on token ids, with a masking game).
CAPTUM_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap)


def accepts_parameter(function: Any, name: str) -> bool:
    r"""True when ``function`` takes a parameter ``name`` (or any ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _attribute_parameters(attr_method: Any) -> Iterator[dict]:
    r"""The parameters of the method's ``attribute``, then those of the method a
    preset wrapper holds, if any."""
    for candidate in (attr_method, getattr(attr_method, "method", None)):
        if candidate is not None:
            yield inspect.signature(candidate.attribute).parameters


def accepts_masking(attr_method: Any) -> bool:
    r"""True when the method's ``attribute`` (or that of the method a preset
    wrapper holds) names a ``masking`` parameter: the methods that mask features."""
    return any("masking" in parameters for parameters in _attribute_parameters(attr_method))


def declared_default(attr_method: Any, name: str) -> Any:
    r"""The default of the parameter ``name`` in the signature of the method's
    ``attribute`` (of the method it wraps, for a preset wrapper), or ``None`` when
    neither declares one."""
    for parameters in _attribute_parameters(attr_method):
        parameter = parameters.get(name)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def declared_target_type(attr_method: Any) -> Optional[str]:
    r"""The default ``target_type`` the method declares (see :func:`declared_default`),
    if it is a string."""
    default = declared_default(attr_method, "target_type")
    return default if isinstance(default, str) else None


def check_attribution_method(attr_method: object) -> None:
    r"""Raises ``TypeError`` unless ``attr_method`` is an attribution method built on
    the model that the wrapper supports."""
    if not callable(getattr(attr_method, "attribute", None)) or not hasattr(attr_method, "forward_func"):
        raise TypeError(
            "attr_method must be an attribution method built on the model (an object with "
            f"`attribute` and `forward_func`), got {type(attr_method).__name__}."
        )
    module = type(attr_method).__module__
    if module.startswith("captum.") and not isinstance(attr_method, CAPTUM_METHODS):
        raise TypeError(
            f"LLMClassifierAttribution does not support Captum's {type(attr_method).__name__}; "
            f"Captum methods accepted: {[cls.__name__ for cls in CAPTUM_METHODS]}. Gradient "
            "and attention methods are available through captum_pi.registry, which adapts "
            "them to token ids and feature masks."
        )
