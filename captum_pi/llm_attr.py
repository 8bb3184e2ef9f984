r"""
:class:`LLMClassifierAttribution`: Captum's ``LLMAttribution`` for decoder-only
sequence classifiers. Text goes in, Captum's ``LLMAttributionResult`` comes out,
and any attribution method plugs in with a one-word change.

Captum's ``LLMAttribution`` explains generated text: it calls ``generate`` and
reads vocabulary logits, so it fails on ``*ForSequenceClassification`` models
(meta-pytorch/captum#1456), and it evaluates one perturbation per forward pass.
Here the explained value is the target class's probability (or logit or
log-probability) at the final token, perturbations are evaluated in batches, and
every method masks features with the same game (:mod:`captum_pi._core.masking`:
deletion by default, or replacement with :func:`captum_pi.text.mask_token_id`).

The result is a :class:`~captum_pi.attribution_result.ClassifierAttributionResult`;
the inputs of a batched call are checked and padded by :mod:`captum_pi.batching`.
"""
import importlib
from copy import copy
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr._utils.attribution import Attribution
from captum.attr._utils.interpretable_input import (
    InterpretableInput,
    TextTemplateInput,
    TextTokenInput,
)
from captum.log import log_usage
from torch import Tensor
from captum_pi.progress import tqdm

from captum_pi._core.captum_adapters import _seeded
from captum_pi._core.gradient_adapters import TokenIntegratedGradients
from captum_pi._core.budget import check_captum_budget
from captum_pi._core.masking import check_masking
from captum_pi._core.method_protocol import (
    CAPTUM_METHODS,
    accepts_masking,
    accepts_parameter,
    check_attribution_method,
    declared_target_type,
)
from captum_pi._core.progressive import (
    PerPositionForward,
    check_target_type,
    explained_value,
    feature_attributions,
)
from captum_pi.attribution_result import ClassifierAttributionResult, label_names_of, method_label, resolve_target
from captum_pi.batching import (
    Target,
    Targets,
    _batches,
    _check_batch_size,
    _input_list,
    _resolve_given_targets,
    _targets_per_input,
    _with_index,
    pad_views,
)
from captum_pi.captum_inputs import AdaptedInput, adapt_input
from captum_pi.text import TextFeatureInput

DEFAULT_PERTURBATIONS_PER_EVAL = 16
DEFAULT_BATCH_SIZE = 8
WRAPPER_SET_ARGUMENTS = ("inputs", "target", "feature_mask", "baselines", "attention_mask",
                         "additional_forward_args", "target_type", "masking")

# Names that lived here before the split and are not used here, importable from here
# still (on first use); the others above are imported from their new homes.
_MOVED = {
    "METHOD_LABELS": "captum_pi.attribution_result",
    "_check_target_entry": "captum_pi.batching",
}


def __getattr__(name: str) -> object:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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

    Every method masks a feature with the same game: ``masking="delete"`` (the
    default of every input) removes its tokens, ``"replace"`` replaces each of
    them with the mask token (the id of ``"..."``); see
    :mod:`captum_pi._core.masking`. Methods that mask nothing (gradients,
    attention) ignore it; Integrated Gradients always integrates from the
    replacement baseline, which has the input's length.

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
        masking (str, optional): ``"delete"`` or ``"replace"`` for every input
                    explained; None uses each input's own
                    (:attr:`TextFeatureInput.masking`, ``"delete"`` unless built
                    otherwise). Default: None

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
        masking: Optional[str] = None,
    ) -> None:
        check_attribution_method(attr_method)
        super().__init__(attr_method.forward_func)
        self.model = attr_method.forward_func
        self.tokenizer = tokenizer
        self.target_type = None if target_type is None else check_target_type(target_type)
        self.mask_token = mask_token
        self.masking = None if masking is None else check_masking(masking)
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
        Explains one input. For many, see :meth:`attribute_batch`.

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
                        feature mask, baselines and attention mask itself. For
                        Captum's methods, ``seed`` seeds torch's CPU generator
                        (which their samplers draw from) for this call and restores
                        it afterwards.

        Returns:
            :class:`ClassifierAttributionResult` (a Captum ``LLMAttributionResult``):
            ``seq_attr`` has one value per interpretable feature of ``inp``.
        """
        self._check_kwargs(kwargs)
        if isinstance(inp, (list, tuple)):
            raise TypeError(
                f"attribute explains one input, got a {type(inp).__name__} of {len(inp)}; "
                "explain many with attribute_batch(inputs, target=None, batch_size=8) or "
                "iter_attribute_batch (TextFeatureInput.from_texts builds the inputs)."
            )
        self._check_input(inp)
        self._check_target_type_accepted()
        labels = self._configured_label_names()
        if labels is not None and target is not None:
            resolve_target(target, labels, 0)  # a bad target fails before the model runs
        adapted = adapt_input(inp, self.tokenizer, self.mask_token)
        view = adapted.features
        self._check_length(view)
        probabilities = torch.softmax(self.per_position(view.input_ids)[0, -1].double(), dim=-1)
        labels = label_names_of(self.model, int(probabilities.numel()))
        target_index = resolve_target(target, labels, int(probabilities.argmax()))
        if self.is_captum_method:
            feature_attr = self._attribute_captum_seeded(view, target_index, kwargs)
        else:
            feature_attr = self._attribute_protocol(view, target_index, kwargs)
        return self._result(adapted, labels, probabilities, target_index, feature_attr)

    @log_usage()
    def attribute_batch(
        self,
        inputs: Sequence[InterpretableInput],
        target: Targets = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> List[ClassifierAttributionResult]:
        r"""
        Explains many inputs, ``batch_size`` at a time; the list of
        :meth:`iter_attribute_batch`'s results.

        Args:
            inputs (list of InterpretableInput): The inputs, each one accepted by
                        :meth:`attribute` (:meth:`TextFeatureInput.from_texts
                        <captum_pi.text.TextFeatureInput.from_texts>` builds them
                        from texts).
            target (int, str, list or Tensor, optional): One target for every
                        input, or one per input (a list or a 1-D tensor of class
                        indices, label names or None). None explains each input's
                        predicted class. Default: None
            batch_size (int, optional): Inputs per model call. Default: 8
            show_progress (bool, optional): A progress bar over the inputs.
                        Default: False
            **kwargs (Any): As for :meth:`attribute`, the same for every input.

        Returns:
            list of :class:`ClassifierAttributionResult`, in the order of ``inputs``.

        Examples::

            >>> inputs = TextFeatureInput.from_texts(reviews, tokenizer, template="Review: {}")
            >>> explainer = LLMClassifierAttribution(MultiPassProgressive(model), tokenizer)
            >>> results = explainer.attribute_batch(inputs, batch_size=16, seed=0)
        """
        return list(self.iter_attribute_batch(inputs, target, batch_size, show_progress, **kwargs))

    def iter_attribute_batch(
        self,
        inputs: Sequence[InterpretableInput],
        target: Targets = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> Iterator[ClassifierAttributionResult]:
        r"""
        Explains many inputs ``batch_size`` at a time and yields each result, in
        the order of ``inputs``, as soon as it is ready (write it out, and a long
        run can resume after the last one written).

        Everything is checked when this is called, before the model runs: the
        types of the inputs, their lengths against the model's context, the
        targets (class names and indices need ``model.config``; for a plain
        callable they are checked on the first prediction pass, before any
        attribution), the keyword arguments the wrapper sets itself. An error
        names the input at fault (``inputs[3]: ...``).

        Each batch starts with one padded pass for its predictions (the logits
        at each row's last real token). Then:

        - methods of the package's protocol (SP-PI, MP-PI, :mod:`captum_pi.registry`)
          get the whole batch in one call: token ids right-padded with the
          tokenizer's pad id, the attention mask, the feature masks padded with
          -1, and ``target`` as a ``[B]`` tensor. They explain each row on its
          own; a seeded MP-PI or perturbation method draws each row from its
          own generator, so results do not depend on the batching (the
          ``random`` baseline, which draws its rows in order from one generator,
          does). Inputs with different mask tokens never share a call.
        - Captum's methods explain one input at a time (their perturbations are
          already batched, ``perturbations_per_eval`` at a time); with ``seed``
          the generator is seeded anew for every input.

        A result equals :meth:`attribute`'s on the same input up to float32
        rounding (padded and unpadded matrix products differ in their last bits).

        Args:
            inputs (list of InterpretableInput): See :meth:`attribute_batch`.
            target (int, str, list or Tensor, optional): See
                        :meth:`attribute_batch`. Default: None
            batch_size (int, optional): Inputs per model call. Default: 8
            show_progress (bool, optional): A progress bar over the inputs (the
                        methods' own bars stay off). Default: False
            **kwargs (Any): As for :meth:`attribute`.

        Returns:
            An iterator of :class:`ClassifierAttributionResult`, one per input.

        Examples::

            >>> with open("explanations.jsonl", "a") as out:
            >>>     for result in explainer.iter_attribute_batch(inputs, batch_size=8):
            >>>         out.write(json.dumps(result.to_dict()) + "\n")
        """
        adapted, targets, given = self._prepare_batch(inputs, target, batch_size, kwargs)
        return self._explain_batches(adapted, targets, given, batch_size, show_progress, kwargs)

    def _prepare_batch(
        self, inputs: Sequence[InterpretableInput], target: Targets, batch_size: int, kwargs: Dict[str, Any]
    ) -> Tuple[List[AdaptedInput], List[Target], Optional[List[Optional[int]]]]:
        r"""Checks every argument of a batched call; returns the adapted inputs,
        one target per input and, when the model's config names its classes, the
        given targets as class indices (None: the predicted class)."""
        self._check_kwargs(kwargs)
        _check_batch_size(batch_size)
        inputs = _input_list(inputs)
        for index, inp in enumerate(inputs):
            _with_index(f"inputs[{index}]", self._check_input, inp)
        targets = _targets_per_input(target, len(inputs))
        labels = self._configured_label_names()
        given = None if labels is None else _resolve_given_targets(targets, labels)
        self._check_target_type_accepted()
        adapted = []
        for index, inp in enumerate(inputs):
            item = _with_index(f"inputs[{index}]", adapt_input, inp, self.tokenizer, self.mask_token)
            _with_index(f"inputs[{index}]", self._check_length, item.features)
            adapted.append(item)
        return adapted, targets, given

    def _explain_batches(
        self,
        adapted: List[AdaptedInput],
        targets: List[Target],
        given: Optional[List[Optional[int]]],
        batch_size: int,
        show_progress: bool,
        kwargs: Dict[str, Any],
    ) -> Iterator[ClassifierAttributionResult]:
        bar = tqdm(
            total=len(adapted), desc=f"{self.method} explanations", unit="text", disable=not show_progress
        )
        try:
            for rows in _batches([item.features for item in adapted], batch_size, self._call_key):
                views = [adapted[row].features for row in rows]
                probabilities = self._predict_batch(views)
                labels = label_names_of(self.model, int(probabilities.shape[1]))
                if given is None:
                    given = _resolve_given_targets(targets, labels)
                target_indices = [
                    int(probs.argmax()) if given[row] is None else given[row]
                    for row, probs in zip(rows, probabilities)
                ]
                for row, probs, target_index, feature_attr in zip(
                    rows, probabilities, target_indices, self._attribute_rows(views, target_indices, kwargs)
                ):
                    yield self._result(adapted[row], labels, probs, target_index, feature_attr)
                    bar.update(1)
        finally:
            bar.close()

    def _attribute_rows(
        self, views: List[TextFeatureInput], targets: List[int], kwargs: Dict[str, Any]
    ) -> Iterator[Tensor]:
        r"""The feature attributions of a batch, one row at a time: from one call
        for the package's methods, from one call per input for Captum's."""
        if not self.is_captum_method:
            yield from self._attribute_protocol_batch(views, targets, kwargs)
            return
        for view, target in zip(views, targets):
            yield self._attribute_captum_seeded(view, target, kwargs)

    def _predict_batch(self, views: List[TextFeatureInput]) -> Tensor:
        r"""``[B, C]`` softmax probabilities at the last real token of each row, from
        one right-padded pass."""
        ids, attention_mask, _ = pad_views(views, self._pad_token_id(views[0]))
        logits = self.per_position(ids, attention_mask)
        last = (attention_mask.sum(dim=1) - 1).to(logits.device)
        final = logits[torch.arange(len(views), device=logits.device), last]
        return torch.softmax(final.double(), dim=-1).cpu()

    def _pad_token_id(self, view: TextFeatureInput) -> int:
        r"""The tokenizer's pad id; the mask token where it has none (padding is
        masked out by the attention mask, so any valid id serves)."""
        pad_id = getattr(self.tokenizer, "pad_token_id", None)
        return view.baselines if pad_id is None else int(pad_id)

    def _result(
        self,
        adapted: AdaptedInput,
        labels: List[str],
        probabilities: Tensor,
        target: int,
        feature_attr: Tensor,
    ) -> ClassifierAttributionResult:
        feature_attr = feature_attr.detach().double().cpu().reshape(-1)
        inp = adapted.original
        seq_attr = inp.format_attr(adapted.to_original(feature_attr.reshape(1, -1)))[0]
        return ClassifierAttributionResult(
            seq_attr=seq_attr,
            inp=inp,
            label_names=labels,
            probabilities=probabilities,
            target=target,
            target_type=self._result_target_type(),
            method=self.method,
            features=adapted.features,
            feature_attr=feature_attr,
            masking=self._result_masking(adapted.features),
        )

    def _result_masking(self, view: TextFeatureInput) -> Optional[str]:
        if self.is_captum_method or accepts_masking(self.attr_method):
            return self._masking_of(view)
        if isinstance(self.attr_method, TokenIntegratedGradients):
            return "replace"  # its path starts at the replacement baseline
        return None

    def _result_target_type(self) -> str:
        if self.target_type is not None:
            return self.target_type
        if self.is_captum_method:
            return "prob"
        return declared_target_type(self.attr_method) or "prob"

    def _check_kwargs(self, kwargs: Dict[str, Any]) -> None:
        given = sorted(set(kwargs) & set(WRAPPER_SET_ARGUMENTS))
        if given:
            raise ValueError(
                f"{given} are set by LLMClassifierAttribution (target is an argument of "
                "attribute, target_type and masking of the constructor); do not pass them as keyword "
                "arguments."
            )

    def _check_input(self, inp: object) -> None:
        if isinstance(inp, self.SUPPORTED_INPUTS):
            return
        hint = (
            "; build one with TextFeatureInput(text, tokenizer), or many with "
            "TextFeatureInput.from_texts(texts, tokenizer)" if isinstance(inp, str) else ""
        )
        raise TypeError(
            f"inp must be one of {[cls.__name__ for cls in self.SUPPORTED_INPUTS]}, "
            f"got {type(inp).__name__}{hint}."
        )

    def _check_target_type_accepted(self) -> None:
        if self.is_captum_method or self.target_type is None:
            return
        if not accepts_parameter(self.attr_method.attribute, "target_type"):
            raise ValueError(
                f"{self.method} has no target_type argument, so it cannot explain "
                f"target_type={self.target_type!r}; leave target_type=None."
            )

    def _configured_label_names(self) -> Optional[List[str]]:
        r"""The class names from the model's config, or None when the number of
        classes is only known once the model has run (a plain callable)."""
        n_classes = getattr(getattr(self.model, "config", None), "num_labels", None)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
            return None
        return label_names_of(self.model, n_classes)

    def _attribute_captum_seeded(self, view: TextFeatureInput, target: int, kwargs: Dict[str, Any]) -> Tensor:
        options = {name: value for name, value in kwargs.items() if name != "seed"}
        with _seeded(kwargs.get("seed")):
            return self._attribute_captum(view, target, self._result_target_type(), options)

    def _attribute_captum(
        self, view: TextFeatureInput, target: int, target_type: str, kwargs: Dict[str, Any]
    ) -> Tensor:
        kwargs = {"perturbations_per_eval": DEFAULT_PERTURBATIONS_PER_EVAL, **kwargs}
        check_captum_budget(self.attr_method, view.n_itp_features, kwargs)
        attr = self.attr_method.attribute(
            view.to_tensor().to(self.per_position.device),
            additional_forward_args=(view, target, target_type),
            **kwargs,
        )
        return attr.reshape(-1)

    def _protocol_options(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        options = dict(kwargs)
        if "seed" in options and not accepts_parameter(self.attr_method.attribute, "seed"):
            del options["seed"]  # a deterministic method (SP-PI, gradients): nothing to seed
        if self.target_type is not None:
            options["target_type"] = self.target_type
        return options

    def _masking_of(self, view: TextFeatureInput) -> str:
        r"""The masking rule a view is explained under: the wrapper's, else its own."""
        return view.masking if self.masking is None else self.masking

    def _masking_options(self, view: TextFeatureInput) -> Dict[str, Any]:
        r"""``baselines`` and, for methods that mask, ``masking`` of a call: the
        rule's token for those, the mask token for the others (Integrated
        Gradients' baseline)."""
        if not accepts_masking(self.attr_method):
            return {"baselines": view.baselines}
        masking = self._masking_of(view)
        return {"baselines": view.baselines_for(masking), "masking": masking}

    def _call_key(self, view: TextFeatureInput) -> Tuple[Any, ...]:
        r"""Views explained in one batched call must share these options."""
        return tuple(sorted(self._masking_options(view).items()))

    def _attribute_protocol(self, view: TextFeatureInput, target: int, kwargs: Dict[str, Any]) -> Tensor:
        attr = self.attr_method.attribute(
            view.input_ids,
            target=target,
            feature_mask=view.feature_mask,
            attention_mask=view.attention_mask,
            **self._masking_options(view),
            **self._protocol_options(kwargs),
        )
        return feature_attributions(attr.detach().cpu(), view.feature_mask)[0]

    def _attribute_protocol_batch(
        self, views: List[TextFeatureInput], targets: List[int], kwargs: Dict[str, Any]
    ) -> List[Tensor]:
        ids, attention_mask, feature_mask = pad_views(views, self._pad_token_id(views[0]))
        attr = self.attr_method.attribute(
            ids,
            target=torch.tensor(targets, dtype=torch.long),
            feature_mask=feature_mask,
            attention_mask=attention_mask,
            **self._masking_options(views[0]),
            **self._protocol_options(kwargs),
        )
        per_feature = feature_attributions(attr.detach().cpu(), feature_mask, attention_mask)
        return [per_feature[row, : view.n_itp_features] for row, view in enumerate(views)]

    def _forward_func(
        self, perturbed: Tensor, view: TextFeatureInput, target: int, target_type: str
    ) -> Tensor:
        r"""The explained value of the target class at the final token of each
        masked input: ``[P]`` for ``perturbed`` ``[P, n]``."""
        masked = view.to_masked_inputs(perturbed, self._masking_of(view))
        logits = self.per_position(masked.input_ids, masked.attention_mask).cpu()
        final = logits[torch.arange(len(masked)), masked.final]
        return explained_value(final, target, target_type).to(perturbed.device)

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
