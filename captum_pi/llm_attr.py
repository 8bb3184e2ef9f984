r"""
:class:`LLMClassifierAttribution`: Captum's ``LLMAttribution`` for decoder-only
sequence classifiers. Text goes in, Captum's ``LLMAttributionResult`` comes out,
and any attribution method plugs in with a one-word change.

Captum's ``LLMAttribution`` explains generated text: it calls ``generate`` and
reads vocabulary logits, so it fails on ``*ForSequenceClassification`` models
(meta-pytorch/captum#1456), and it evaluates one perturbation per forward pass.
Here the explained value is the target class's probability (or logit or
log-probability) at the final token, perturbations are evaluated in batches, and
every method masks with the same token (:func:`captum_pi.text.mask_token_id`).
"""
import inspect
from copy import copy
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValues, ShapleyValueSampling
from captum.attr._core.llm_attr import LLMAttributionResult
from captum.attr._utils.attribution import Attribution
from captum.attr._utils.interpretable_input import (
    InterpretableInput,
    TextTemplateInput,
    TextTokenInput,
)
from captum.log import log_usage
from torch import Tensor

from captum_pi._core.multi_pass import MultiPassProgressive
from captum_pi._core.progressive import (
    PerPositionForward,
    check_target_type,
    explained_value,
    feature_attributions,
)
from captum_pi._core.single_pass import SinglePassProgressive
from captum_pi.text import TextFeatureInput, adapt_input

CAPTUM_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap)
DEFAULT_PERTURBATIONS_PER_EVAL = 16
METHOD_LABELS = {SinglePassProgressive: "SP-PI", MultiPassProgressive: "MP-PI"}
WRAPPER_SET_ARGUMENTS = ("inputs", "target", "feature_mask", "baselines", "attention_mask",
                         "additional_forward_args", "target_type")


def method_label(attr_method: Attribution) -> str:
    r"""Short display name of an attribution method: ``"SP-PI"``, ``"MP-PI"``, its
    ``name`` attribute, or its class name (``"KernelShap"``)."""
    for cls, label in METHOD_LABELS.items():
        if isinstance(attr_method, cls):
            return label
    return str(getattr(attr_method, "name", None) or type(attr_method).__name__)


def label_names_of(model: object, n_classes: int) -> List[str]:
    r"""Class names from ``model.config.id2label``, or ``LABEL_<i>`` when absent."""
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    return [str(id2label.get(index, id2label.get(str(index), f"LABEL_{index}"))) for index in range(n_classes)]


def resolve_target(target: Union[int, str, None], label_names: Sequence[str], predicted: int) -> int:
    r"""
    The explained class index from ``target``: None gives the predicted class, an
    int a class index, a str a label name (exact, then case-insensitive).
    """
    if target is None:
        return predicted
    if isinstance(target, Tensor) and target.numel() == 1:
        target = int(target.item())
    if isinstance(target, str):
        if target in label_names:
            return list(label_names).index(target)
        lowered = [name.lower() for name in label_names]
        if target.lower() in lowered:
            return lowered.index(target.lower())
        raise ValueError(f"Unknown label {target!r}: the model's labels are {list(label_names)}.")
    if isinstance(target, bool) or not isinstance(target, int):
        raise ValueError(f"target must be a class index, a label name or None, got {target!r}.")
    if not 0 <= target < len(label_names):
        raise ValueError(
            f"target {target} is out of range: the model has {len(label_names)} classes "
            f"{list(label_names)}."
        )
    return target


class ClassifierAttributionResult(LLMAttributionResult):
    r"""
    Captum's ``LLMAttributionResult`` for a classifier's prediction, so
    ``plot_seq_attr`` and ``plot_token_attr`` work unchanged: ``seq_attr`` holds one
    attribution per interpretable feature of the input (``input_tokens`` =
    ``inp.values``), ``output_tokens`` is the explained label, ``token_attr`` its
    one row (``[1, n]``) and ``output_probs`` its probability on the full input.

    Attributes:
        label_names (list of str): Class names, by index.
        probabilities (Tensor): ``[C]`` softmax probabilities on the full input.
        predicted (int): The predicted class.
        target (int): The explained class.
        target_type (str): ``"prob"``, ``"logit"`` or ``"log_prob"``.
        method (str): Display name of the attribution method.
        features (TextFeatureInput): The token-id view the methods ran on: its
                    ``text``, ``spans`` and ``values`` in reading order.
        feature_attr (Tensor): ``[n]`` attribution of each feature of
                    ``features``, in reading order (equal to ``seq_attr`` for a
                    :class:`TextFeatureInput`).
    """

    def __init__(
        self,
        *,
        seq_attr: Tensor,
        inp: InterpretableInput,
        label_names: Sequence[str],
        probabilities: Tensor,
        target: int,
        target_type: str,
        method: str,
        features: TextFeatureInput,
        feature_attr: Tensor,
    ) -> None:
        super().__init__(
            input_tokens=list(inp.values),
            output_tokens=[label_names[target]],
            seq_attr=seq_attr,
            token_attr=seq_attr.reshape(1, -1),
            output_probs=probabilities[target].reshape(1),
            inp=inp,
        )
        self.label_names = list(label_names)
        self.probabilities = probabilities
        self.predicted = int(probabilities.argmax())
        self.target = target
        self.target_type = target_type
        self.method = method
        self.features = features
        self.feature_attr = feature_attr

    @property
    def predicted_label(self) -> str:
        return self.label_names[self.predicted]

    @property
    def target_label(self) -> str:
        return self.label_names[self.target]

    def to_dict(self) -> Dict[str, Any]:
        r"""A JSON-serialisable summary: prediction, probabilities, method and one
        entry per feature (text, character span in ``text``, attribution)."""
        view = self.features
        return {
            "text": view.text,
            "level": view.level,
            "method": self.method,
            "target_type": self.target_type,
            "target": {"index": self.target, "label": self.target_label},
            "prediction": {
                "index": self.predicted,
                "label": self.predicted_label,
                "probability": float(self.probabilities[self.predicted]),
            },
            "probabilities": {name: float(p) for name, p in zip(self.label_names, self.probabilities)},
            "features": [
                {"index": index, "text": value, "start": span[0], "end": span[1], "attribution": float(phi)}
                for index, (value, span, phi) in enumerate(zip(view.values, view.spans, self.feature_attr))
            ],
        }


class LLMClassifierAttribution(Attribution):
    r"""
    Explains a decoder-only sequence classifier's prediction on text, in the role
    of Captum's ``LLMAttribution`` (which serves generative models only). Build it
    with an attribution method and the tokenizer; ``attribute`` takes a text input
    and returns Captum's ``LLMAttributionResult``.

    Accepted methods (swapping one for another is a one-word change):

    - :class:`~captum_pi.SinglePassProgressive`,
      :class:`~captum_pi.MultiPassProgressive` and every method following the
      package's uniform protocol (``attribute(input_ids, target=, feature_mask=,
      baselines=mask_id, attention_mask=, ...) -> [B, T]``, e.g. the baselines of
      :mod:`captum_pi.registry`): called on the token ids with the input's
      feature mask and the mask token as ``baselines``.
    - Captum's ``FeatureAblation``, ``KernelShap``, ``Lime``,
      ``ShapleyValueSampling`` and ``ShapleyValues``, built on the Hugging Face
      model as usual (``KernelShap(model)``): as in ``LLMAttribution`` their forward
      function is replaced, here by the explained value of the target class at the
      final token of the masked input; they perturb the binary interpretable
      representation, and their perturbations are evaluated
      ``perturbations_per_eval`` at a time (default 16 here, not Captum's 1).
      Captum's ``Lime`` fits a Lasso (``alpha=0.01``) by default, which sets
      probability-sized attributions to 0; pass
      ``interpretable_model=SkLearnLinearRegression()`` when building it.

    Every method masks a feature by replacing each of its tokens with the same
    mask token (the id of ``"..."``; see :mod:`captum_pi.text`).

    Args:
        attr_method (Attribution): The attribution method, built on the model.
        tokenizer (PreTrainedTokenizerFast): The model's fast tokenizer.
        target_type (str, optional): Explained value: ``"prob"`` (softmax
                    probability of the target class), ``"logit"`` or
                    ``"log_prob"``. None uses ``"prob"`` for Captum's methods and
                    leaves the package's methods at their own default (``"prob"``
                    for SP-PI, MP-PI and the perturbation methods, ``"logit"`` for
                    GAE and LRP; see :mod:`captum_pi.registry`). Default: None
        mask_token (int or str, optional): Mask token (id, or text of one token).
                    None uses the input's own for a :class:`TextFeatureInput` and
                    the id of ``"..."`` for Captum's text inputs. Default: None

    Examples::

        >>> from captum.attr import KernelShap
        >>> from captum_pi import LLMClassifierAttribution, MultiPassProgressive, TextFeatureInput
        >>> inp = TextFeatureInput("Worked fast. Made me dizzy.", tokenizer, level="sentence")
        >>> explainer = LLMClassifierAttribution(MultiPassProgressive(model), tokenizer)
        >>> result = explainer.attribute(inp, target="positive")
        >>> result.seq_attr            # one attribution per sentence
        >>> fig, ax = result.plot_seq_attr()
        >>> explainer = LLMClassifierAttribution(KernelShap(model), tokenizer)  # one word changed
    """

    SUPPORTED_INPUTS = (TextFeatureInput, TextTokenInput, TextTemplateInput)
    SUPPORTED_CAPTUM_METHODS = CAPTUM_METHODS

    def __init__(
        self,
        attr_method: Attribution,
        tokenizer: object,
        target_type: Optional[str] = None,
        mask_token: Union[int, str, None] = None,
    ) -> None:
        _check_method(attr_method)
        super().__init__(attr_method.forward_func)
        self.model = attr_method.forward_func
        self.tokenizer = tokenizer
        self.target_type = None if target_type is None else check_target_type(target_type)
        self.mask_token = mask_token
        self.is_captum_method = isinstance(attr_method, CAPTUM_METHODS)
        existing = getattr(attr_method, "per_position", None)
        self.per_position = existing if isinstance(existing, PerPositionForward) else PerPositionForward(self.model)
        if self.is_captum_method:
            # shallow copy, as LLMAttribution does, so the user's instance is unchanged
            self.attr_method = copy(attr_method)
            self.attr_method.forward_func = self._forward_func
        else:
            self.attr_method = attr_method
        self.method = method_label(attr_method)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inp: InterpretableInput,
        target: Union[int, str, None] = None,
        **kwargs: Any,
    ) -> ClassifierAttributionResult:
        r"""
        Args:
            inp (InterpretableInput): A :class:`~captum_pi.text.TextFeatureInput`
                        (tokens, words or sentences), or Captum's ``TextTokenInput``
                        or ``TextTemplateInput`` (str template).
            target (int or str, optional): Class explained: an index or a label
                        name from ``model.config.id2label``. None explains the
                        predicted class. Default: None
            **kwargs (Any): Passed to the method's ``attribute``, e.g.
                        ``n_samples``, ``perturbations_per_eval``, ``seed``,
                        ``show_progress``. The wrapper sets the inputs, target,
                        feature mask, baselines and attention mask itself.

        Returns:
            :class:`ClassifierAttributionResult` (a Captum ``LLMAttributionResult``):
            ``seq_attr`` has one value per interpretable feature of ``inp``.
        """
        given = sorted(set(kwargs) & set(WRAPPER_SET_ARGUMENTS))
        if given:
            raise ValueError(
                f"{given} are set by LLMClassifierAttribution (target is an argument of "
                "attribute, target_type of the constructor); do not pass them as keyword arguments."
            )
        if not isinstance(inp, self.SUPPORTED_INPUTS):
            raise TypeError(
                f"inp must be one of {[cls.__name__ for cls in self.SUPPORTED_INPUTS]}, "
                f"got {type(inp).__name__}."
            )
        adapted = adapt_input(inp, self.tokenizer, self.mask_token)
        view = adapted.features
        self._check_length(view)
        probabilities = torch.softmax(self.per_position(view.input_ids)[0, -1].double(), dim=-1)
        labels = label_names_of(self.model, int(probabilities.numel()))
        target_index = resolve_target(target, labels, int(probabilities.argmax()))
        if self.is_captum_method:
            target_type = self.target_type or "prob"
            feature_attr = self._attribute_captum(view, target_index, target_type, kwargs)
        else:
            target_type = self.target_type or _declared_target_type(self.attr_method) or "prob"
            feature_attr = self._attribute_protocol(view, target_index, kwargs)
        feature_attr = feature_attr.detach().double().cpu().reshape(-1)
        seq_attr = inp.format_attr(adapted.to_original(feature_attr.reshape(1, -1)))[0]
        return ClassifierAttributionResult(
            seq_attr=seq_attr,
            inp=inp,
            label_names=labels,
            probabilities=probabilities,
            target=target_index,
            target_type=target_type,
            method=self.method,
            features=view,
            feature_attr=feature_attr,
        )

    def _attribute_captum(
        self, view: TextFeatureInput, target: int, target_type: str, kwargs: Dict[str, Any]
    ) -> Tensor:
        kwargs = {"perturbations_per_eval": DEFAULT_PERTURBATIONS_PER_EVAL, **kwargs}
        attr = self.attr_method.attribute(
            view.to_tensor().to(self.per_position.device),
            additional_forward_args=(view, target, target_type),
            **kwargs,
        )
        return attr.reshape(-1)

    def _attribute_protocol(self, view: TextFeatureInput, target: int, kwargs: Dict[str, Any]) -> Tensor:
        if self.target_type is not None:
            if not _accepts(self.attr_method.attribute, "target_type"):
                raise ValueError(
                    f"{self.method} has no target_type argument, so it cannot explain "
                    f"target_type={self.target_type!r}; leave target_type=None."
                )
            kwargs = {**kwargs, "target_type": self.target_type}
        attr = self.attr_method.attribute(
            view.input_ids,
            target=target,
            feature_mask=view.feature_mask,
            baselines=view.baselines,
            attention_mask=view.attention_mask,
            **kwargs,
        )
        return feature_attributions(attr.detach().cpu(), view.feature_mask)[0]

    def _forward_func(
        self, perturbed: Tensor, view: TextFeatureInput, target: int, target_type: str
    ) -> Tensor:
        r"""The explained value of the target class at the final token of each
        masked input: ``[P]`` for ``perturbed`` ``[P, n]``."""
        logits = self.per_position(view.to_model_input(perturbed))[:, -1]
        return explained_value(logits, target, target_type).to(perturbed.device)

    def _check_length(self, view: TextFeatureInput) -> None:
        config = getattr(self.model, "config", None)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        length = int(view.input_ids.shape[1])
        if limit is not None and length > int(limit):
            raise ValueError(
                f"The input is {length} tokens long but the model reads at most {limit} "
                "tokens; shorten the text."
            )

    def attribute_future(self) -> None:
        r"""Not implemented for LLMClassifierAttribution."""
        raise NotImplementedError("attribute_future is not implemented for LLMClassifierAttribution")


def _accepts(function: Any, name: str) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _declared_target_type(attr_method: Any) -> Optional[str]:
    r"""The default ``target_type`` in the signature of the method's ``attribute``
    (of the method it wraps, for a preset wrapper), if it declares one."""
    for candidate in (attr_method, getattr(attr_method, "method", None)):
        if candidate is None:
            continue
        parameter = inspect.signature(candidate.attribute).parameters.get("target_type")
        if parameter is not None and isinstance(parameter.default, str):
            return parameter.default
    return None


def _check_method(attr_method: object) -> None:
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
