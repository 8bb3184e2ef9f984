r"""
What an explanation of a classifier's prediction holds:
:class:`ClassifierAttributionResult` (Captum's ``LLMAttributionResult`` for one
explained class), the model's class names and the explained class
(:func:`label_names_of`, :func:`resolve_target`), and the display name of an
attribution method (:func:`method_label`).
"""
from typing import Any, Dict, List, Optional, Sequence, Union

from captum.attr._core.llm_attr import LLMAttributionResult
from captum.attr._utils.attribution import Attribution
from captum.attr._utils.interpretable_input import InterpretableInput
from torch import Tensor

from captum_pi._core.multi_pass import MultiPassProgressive
from captum_pi._core.single_pass import SinglePassProgressive
from captum_pi.text import TextFeatureInput

METHOD_LABELS = {SinglePassProgressive: "SP-PI", MultiPassProgressive: "MP-PI"}


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
        masking (str or None): The masking game the method ran under
                    (``"delete"`` or ``"replace"``), None for methods that mask
                    nothing; Integrated Gradients' baseline is ``"replace"``.
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
        masking: Optional[str] = None,
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
        self.masking = masking
        self.features = features
        self.feature_attr = feature_attr

    @property
    def predicted_label(self) -> str:
        return self.label_names[self.predicted]

    @property
    def target_label(self) -> str:
        return self.label_names[self.target]

    def to_dict(self) -> Dict[str, Any]:
        r"""
        A JSON-serialisable summary: the explained text, the prompt around it,
        prediction, probabilities, method and one entry per feature.

        ``"text"`` is the explained text as the user gave it (the ``text`` of
        :class:`~captum_pi.text.TextFeatureInput`, without the template), and each
        feature's ``"start"`` and ``"end"`` are character offsets into it:
        ``summary["text"][feature["start"]:feature["end"]] == feature["text"]``.
        ``"prompt"`` holds the template's fixed text: the model read
        ``prompt["prefix"] + text + prompt["suffix"]``. For inputs adapted from
        Captum's ``TextTokenInput`` or ``TextTemplateInput`` the whole text is the
        explained text and the prefix and suffix are empty.

        Returns:
            dict with keys ``text``, ``prompt`` (``prefix``, ``suffix``),
            ``level``, ``method``, ``masking``, ``target_type``, ``target`` (``index``,
            ``label``), ``prediction`` (``index``, ``label``, ``probability``),
            ``probabilities`` (label -> probability) and ``features`` (list of
            ``index``, ``text``, ``start``, ``end``, ``attribution``).
        """
        view = self.features
        offset = view.explained_span[0]
        return {
            "text": view.explained_text,
            "prompt": {"prefix": view.prefix, "suffix": view.suffix},
            "level": view.level,
            "method": self.method,
            "masking": self.masking,
            "target_type": self.target_type,
            "target": {"index": self.target, "label": self.target_label},
            "prediction": {
                "index": self.predicted,
                "label": self.predicted_label,
                "probability": float(self.probabilities[self.predicted]),
            },
            "probabilities": {name: float(p) for name, p in zip(self.label_names, self.probabilities)},
            "features": [
                {
                    "index": index,
                    "text": value,
                    "start": span[0] - offset,
                    "end": span[1] - offset,
                    "attribution": float(phi),
                }
                for index, (value, span, phi) in enumerate(zip(view.values, view.spans, self.feature_attr))
            ],
        }
