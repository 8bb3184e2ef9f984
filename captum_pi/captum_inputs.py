r"""
Captum's own text inputs as a :class:`~captum_pi.text.TextFeatureInput`:
:func:`adapt_input` turns a ``TextTokenInput`` or a ``TextTemplateInput`` (str
template) into one token-id view with the shared masking rule, and
:class:`AdaptedInput` maps attributions of that view back to the original input's
interpretable features.
"""
import os
import string
import warnings
from typing import List, Sequence, Tuple, Union

import torch
from captum.attr._utils.interpretable_input import (
    InterpretableInput,
    TextTemplateInput,
    TextTokenInput,
)
from torch import Tensor

from captum_pi.segmentation import Span, _assign_tokens, _check_fast, _renumber
from captum_pi.text import TextFeatureInput, resolve_mask_token


class AdaptedInput:
    r"""
    A :class:`TextFeatureInput` view of any accepted input, with the map from its
    features (reading order) to the original input's interpretable features.

    Attributes:
        original (InterpretableInput): The input as given.
        features (TextFeatureInput): The token-id view used for every method.
        itp_index (list of int): For each feature of ``features``, the index of
                    the original interpretable feature it is.
        n_itp_features (int): Number of interpretable features of ``original``.
    """

    def __init__(
        self, original: InterpretableInput, features: TextFeatureInput, itp_index: List[int], n_itp: int
    ) -> None:
        self.original = original
        self.features = features
        self.itp_index = itp_index
        self.n_itp_features = n_itp

    def to_original(self, feature_attr: Tensor) -> Tensor:
        r"""``[*, n_features]`` in reading order -> ``[*, n_itp_features]`` of the
        original input (features without any token get 0)."""
        out = torch.zeros(*feature_attr.shape[:-1], self.n_itp_features, dtype=feature_attr.dtype)
        out[..., torch.tensor(self.itp_index, dtype=torch.long)] = feature_attr
        return out


def adapt_input(
    inp: InterpretableInput, tokenizer: object, mask_token: Union[int, str, None] = None
) -> AdaptedInput:
    r"""
    Brings a :class:`TextFeatureInput`, or Captum's ``TextTokenInput`` or
    ``TextTemplateInput``, into one token-id view with the shared masking rule.

    - ``TextTokenInput``: its interpretable tokens are features, its
      ``skip_tokens`` are fixed. Its own ``baselines`` token is replaced by the
      shared mask token (a warning says so when it was set to another id).
    - ``TextTemplateInput`` with a str template: each value's tokens form a
      feature (values grouped by ``mask`` form one, and must then be adjacent);
      the template text is fixed. Its ``baselines`` strings are not used: masked
      values have every token replaced by the mask token, like every other input.

    Args:
        inp (InterpretableInput): The input.
        tokenizer (PreTrainedTokenizerFast): The classifier's tokenizer.
        mask_token (int or str, optional): Default: None (the id of "...")

    Returns:
        :class:`AdaptedInput`
    """
    if isinstance(inp, TextFeatureInput):
        if mask_token is not None and resolve_mask_token(tokenizer, mask_token) != inp.baselines:
            raise ValueError(
                f"The input masks with token {inp.baselines} but the wrapper with "
                f"{mask_token!r}; build both with the same mask_token."
            )
        return AdaptedInput(inp, inp, list(range(inp.n_itp_features)), inp.n_itp_features)
    if isinstance(inp, TextTokenInput):
        return _adapt_token_input(inp, tokenizer, mask_token)
    if isinstance(inp, TextTemplateInput):
        return _adapt_template_input(inp, tokenizer, mask_token)
    raise TypeError(
        "inp must be a captum_pi TextFeatureInput, or Captum's TextTokenInput or "
        f"TextTemplateInput, got {type(inp).__name__}."
    )


def decoded_offsets(tokenizer: object, ids: Sequence[int]) -> Tuple[str, List[Span]]:
    r"""The decoded text of ``ids`` and the character span of every token in it,
    from decoding growing prefixes (a token that only completes a character, such
    as part of an emoji, shares the span where the character appears)."""
    text = tokenizer.decode(list(ids))
    spans: List[Span] = []
    previous = ""
    for position in range(len(ids)):
        current = tokenizer.decode(list(ids[: position + 1]))
        start = len(os.path.commonprefix([previous, current]))
        spans.append((start, len(current)))
        previous = current
    return text, [(min(start, len(text)), min(end, len(text))) for start, end in spans]


def _adapt_token_input(
    inp: TextTokenInput, tokenizer: object, mask_token: Union[int, str, None]
) -> AdaptedInput:
    mask_id = resolve_mask_token(tokenizer, mask_token)
    if inp.baselines not in (0, mask_id):
        warnings.warn(
            f"TextTokenInput.baselines={inp.baselines} is replaced by the shared mask "
            f"token {mask_id}: every method masks with the same token.",
            stacklevel=3,
        )
    ids = inp.inp_tensor.reshape(1, -1).long()
    is_feature = torch.ones(ids.shape[1], dtype=torch.bool) if inp.itp_mask is None else inp.itp_mask.reshape(-1).bool()
    feature_mask = torch.where(is_feature, torch.cumsum(is_feature.long(), 0) - 1, torch.tensor(-1))
    text, offsets = decoded_offsets(tokenizer, ids[0].tolist())
    features = TextFeatureInput.from_token_features(text, tokenizer, ids, feature_mask, offsets, mask_id)
    n = int(is_feature.sum())
    return AdaptedInput(inp, features, list(range(n)), n)


def _adapt_template_input(
    inp: TextTemplateInput, tokenizer: object, mask_token: Union[int, str, None]
) -> AdaptedInput:
    _check_fast(tokenizer)
    mask_id = resolve_mask_token(tokenizer, mask_token)
    if not callable(inp.baselines) and any(baseline != "" for baseline in inp.baselines):
        warnings.warn(
            "TextTemplateInput.baselines are not used: masked values have every token "
            "replaced by the shared mask token, like every other input.",
            stacklevel=3,
        )
    text, value_spans = _template_spans(inp)
    encoding = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets = [tuple(span) for span in encoding["offset_mapping"]]
    placed = sorted((span, value) for value, span in enumerate(value_spans) if span[1] > span[0])
    segment_of_token = _assign_tokens(
        text, offsets, encoding["special_tokens_mask"], [span for span, _ in placed]
    )
    itp_of_value = inp.formatted_mask if inp.mask is not None else list(range(inp.n_features))
    itp_of_token = [itp_of_value[placed[s][1]] if s >= 0 else -1 for s in segment_of_token]
    itp_of_token = _join_whitespace_gaps(text, offsets, itp_of_token)
    features, itp_order = _renumber(itp_of_token)
    ids = torch.tensor([encoding["input_ids"]], dtype=torch.long)
    try:
        view = TextFeatureInput.from_token_features(text, tokenizer, ids, torch.tensor(features), offsets, mask_id, "template")
    except ValueError as error:
        raise ValueError(
            f"TextTemplateInput features must each be one contiguous span of tokens "
            f"(values grouped by `mask` must be adjacent): {error}"
        ) from error
    return AdaptedInput(inp, view, itp_order, inp.n_itp_features)


def _join_whitespace_gaps(text: str, offsets: Sequence[Span], feature_of_token: List[int]) -> List[int]:
    r"""A fixed whitespace-only token between two tokens of the same feature joins it
    (values grouped by ``mask`` and separated by a space form one span)."""
    result = list(feature_of_token)
    for position in range(1, len(result) - 1):
        start, end = offsets[position]
        if result[position] >= 0 or end <= start or text[start:end].strip():
            continue
        before, after = result[position - 1], feature_of_token[position + 1]
        if before >= 0 and before == after:
            result[position] = before
    return result


def _template_spans(inp: TextTemplateInput) -> Tuple[str, List[Span]]:
    template = inp.template
    if not isinstance(template, str):
        raise ValueError(
            "TextTemplateInput with a callable template is not supported: the "
            "character span of each value must be known. Use a str template."
        )
    named = dict(zip(inp.dict_keys, inp.values)) if inp.dict_keys else {}
    text, spans = "", [(0, 0)] * len(inp.values)
    auto_index = 0
    for literal, field, spec, conversion in string.Formatter().parse(template):
        text += literal
        if field is None:
            continue
        if field == "":
            index, auto_index = auto_index, auto_index + 1
        elif field.isdigit():
            index = int(field)
        elif field in named:
            index = inp.dict_keys.index(field)
        else:
            raise ValueError(f"TextTemplateInput template field {{{field}}} is not supported.")
        value = inp.values[index]
        value = {"r": repr, "s": str, "a": ascii}.get(conversion or "s")(value)
        formatted = format(value, spec or "")
        spans[index] = (len(text), len(text) + len(formatted))
        text += formatted
    return text, spans
