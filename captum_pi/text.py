r"""
Text in, interpretable features out: the tokens, words or sentences of a piece of
text as Captum ``InterpretableInput`` features over the token ids a decoder-only
classifier reads, and the one masking rule that every attribution method shares.

Data flows one way: text (+ fixed template text) -> fast tokenizer with offset
mapping -> character spans of the features -> ``feature_mask`` (one feature id per
token, -1 for fixed tokens) -> masked token ids.

The fixed text before the explained text, the explained text and the fixed text
after it are tokenized separately and concatenated (:func:`encode_parts`, as
:func:`captum_pi.encoding.encode_texts` does), so a prompt always has the same
tokens and no token straddles fixed and explained text.

**Features.** Every token belongs to exactly one feature or to none (-1):

- ``"token"``: every token of the explained text is a feature.
- ``"word"``: a word is a run of non-whitespace characters (punctuation stays
  with its word: ``"great!"`` is one word). Text without spaces (Chinese,
  Japanese, ...) is therefore one word per run; use ``"token"`` there.
- ``"sentence"``: sentences come from `pysbd <https://pypi.org/project/pysbd/>`_
  (the rule-based "Pragmatic Segmenter", pure Python, works offline, keeps
  character offsets), which handles abbreviations (``"Dr. Smith"``, ``"e.g."``),
  decimals (``"3.5 mg"``), ellipses and quotes.

A token is assigned to the feature holding its first non-whitespace character (a
whitespace-only token goes with the word or sentence before it; the byte pieces of
one character, such as an emoji split by a byte-level BPE, stay together even at
the token level), so features are contiguous token spans in reading order.

**Fixed text.** Text around the features is never masked nor attributed; its
tokens get -1 in the feature mask: special tokens (BOS), an instruction or
template prefix (``template="Review: {}"``), and the paper's NLI layout
``"[Assertion]: hypothesis [Document]: premise"`` (:meth:`TextFeatureInput.for_nli`),
where only the premise's sentences are features.

**Text after the last feature.** A suffix (``template="{} Sentiment:"``) is
allowed, but it changes what intermediate predictions mean: the model's own
prediction is read after the suffix, while Progressive Inference reads the
prediction after feature *k* before the suffix was seen. Under either masking
game SP-PI then no longer sums to ``f(x) - f(empty)`` and MP-PI's coalition values
mix two kinds of predictions. A :class:`SuffixWarning` is issued (once per call
site) when an input has one; prefer prompts whose fixed text comes first.

**Masking games** (:mod:`captum_pi._core.masking`, one ``masking=`` keyword
everywhere). ``"delete"`` (the default) removes every token of a masked feature
and packs the rest to the left; under it Progressive Inference is exact by
causality, and it needs no mask token. ``"replace"`` replaces every token of a
masked feature with the token id of ``"..."`` (the paper's mask token, section 4),
so the sequence keeps its length. :func:`mask_token_id` gives that id; the wrapper
:class:`captum_pi.llm_attr.LLMClassifierAttribution` passes it as ``baselines`` to
every method, so comparisons are fair. Under deletion, the input with every
feature deleted keeps the fixed tokens (BOS, the template prefix); a text with no
fixed token at all reads as the tokenizer's BOS token alone
(:attr:`TextFeatureInput.empty_token_id`).
"""
import bisect
import os
import re
import string
import warnings
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr._utils.interpretable_input import (
    InterpretableInput,
    TextTemplateInput,
    TextTokenInput,
)
from torch import Tensor

from captum_pi._core.masking import (  # noqa: F401 (SuffixWarning is re-exported)
    DEFAULT_MASKING,
    SUFFIX_MESSAGE,
    MaskedInputs,
    Masking,
    SuffixWarning,
    check_masking,
)
from captum_pi._core.progressive import FeatureLayout, build_feature_layouts

LEVELS = ("token", "word", "sentence")
MASK_TEXT = "..."
NLI_PREFIX = "[Assertion]: {hypothesis} [Document]: "
PYSBD_INSTALL = "pip install pysbd"

Span = Tuple[int, int]


def mask_token_id(tokenizer: object, mask_text: str = MASK_TEXT) -> int:
    r"""
    The token id that replaces every token of a masked feature under
    ``masking="replace"``: the id of ``"..."`` (the paper's mask token), for
    every method and metric alike.

    Args:
        tokenizer (PreTrainedTokenizerBase): The classifier's tokenizer.
        mask_text (str, optional): Text of the mask token; it must encode to
                    exactly one token. Default: "..."

    Returns:
        int: The mask token id.

    Examples::

        >>> mask_token_id(tokenizer)        # GPT-2 / SmolLM2: the id of "..."
    """
    ids = _encode_plain(tokenizer, mask_text)
    if len(ids) != 1:
        raise ValueError(
            f"The mask text {mask_text!r} encodes to {len(ids)} tokens {ids} with this "
            "tokenizer; the masking rule needs one token. Pass mask_token= a text that is "
            "one token or a token id."
        )
    return int(ids[0])


def resolve_mask_token(tokenizer: object, mask_token: Union[int, str, None]) -> int:
    r"""``mask_token`` as a token id: None gives :func:`mask_token_id`, a str is encoded."""
    if mask_token is None:
        return mask_token_id(tokenizer)
    if isinstance(mask_token, str):
        return mask_token_id(tokenizer, mask_token)
    if isinstance(mask_token, bool) or not isinstance(mask_token, int) or mask_token < 0:
        raise ValueError(f"mask_token must be a token id (int >= 0) or a str, got {mask_token!r}.")
    return mask_token


def _encode_plain(tokenizer: object, text: str) -> List[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_parts(
    tokenizer: object, parts: Sequence[str], add_special_tokens: bool = True
) -> Tuple[List[int], List[Span], List[int]]:
    r"""
    Tokenizes consecutive pieces of text separately and concatenates them, with the
    special tokens the tokenizer adds to one text (BOS, ...) around the whole.
    Fixed text then always has the same tokens, the explained text has the same
    tokens as on its own, and no token straddles a boundary
    (:func:`captum_pi.encoding.encode_texts` builds inputs the same way).

    Args:
        tokenizer (PreTrainedTokenizerFast): The tokenizer.
        parts (list of str): The pieces, in order.
        add_special_tokens (bool, optional): Add the tokenizer's special tokens.
                    Default: True

    Returns:
        (ids, offsets, special): token ids, the character span of each token in
        ``"".join(parts)``, and 1 for special tokens, 0 otherwise.
    """
    ids: List[int] = []
    offsets: List[Span] = []
    start = 0
    for part in parts:
        if part:
            encoding = tokenizer(part, add_special_tokens=False, return_offsets_mapping=True)
            ids += list(encoding["input_ids"])
            offsets += [(start + s, start + e) for s, e in encoding["offset_mapping"]]
        start += len(part)
    special = [0] * len(ids)
    if add_special_tokens:
        probe = tokenizer("".join(parts) or " ", return_special_tokens_mask=True)
        mask = list(probe["special_tokens_mask"])
        leading = next((i for i, m in enumerate(mask) if not m), len(mask))
        trailing = next((i for i, m in enumerate(reversed(mask)) if not m), 0)
        head = list(probe["input_ids"][:leading])
        tail = list(probe["input_ids"][len(mask) - trailing:]) if trailing else []
        ids = head + ids + tail
        offsets = [(0, 0)] * len(head) + offsets + [(start, start)] * len(tail)
        special = [1] * len(head) + special + [1] * len(tail)
    return ids, offsets, special


def word_spans(text: str) -> List[Span]:
    r"""Character spans ``(start, end)`` of the words of ``text``: runs of
    non-whitespace characters."""
    return [match.span() for match in re.finditer(r"\S+", text)]


@lru_cache(maxsize=8)
def _segmenter(language: str) -> object:
    try:
        import pysbd
    except ImportError as error:
        raise ImportError(
            f"Sentence features need the package pysbd: {PYSBD_INSTALL}"
        ) from error
    return pysbd.Segmenter(language=language, clean=False, char_span=True)


def sentence_spans(text: str, language: str = "en") -> List[Span]:
    r"""
    Character spans ``(start, end)`` of the sentences of ``text`` from pysbd (the
    Pragmatic Segmenter's rules: abbreviations, decimals, ellipses, quotes), without
    surrounding whitespace.

    Args:
        text (str): The text.
        language (str, optional): ISO 639-1 code of a language pysbd knows.
                    Default: "en"
    """
    if not text.strip():
        return []
    starts = sorted({span.start for span in _segmenter(language).segment(text)})
    first_char = len(text) - len(text.lstrip())
    starts = [first_char] + [start for start in starts if start > first_char]
    bounds = starts + [len(text)]
    spans = [_strip_span(text, (bounds[i], bounds[i + 1])) for i in range(len(starts))]
    return [span for span in spans if span[1] > span[0]]


def _strip_span(text: str, span: Span) -> Span:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def segment_spans(text: str, level: str, language: str = "en") -> List[Span]:
    r"""Character spans of the words or sentences of ``text`` (``level`` "word" or
    "sentence")."""
    if level == "word":
        return word_spans(text)
    if level == "sentence":
        return sentence_spans(text, language)
    raise ValueError(f"level must be 'word' or 'sentence' here, got {level!r}.")


def fixed_template(prefix: str = "", suffix: str = "") -> str:
    r"""
    A ``template`` for :class:`TextFeatureInput` with fixed text before and after
    the explained text, braces in it escaped.

    Examples::

        >>> fixed_template("Review: {not a field}\n")
        'Review: {{not a field}}\n{}'
    """
    def escape(text: str) -> str:
        return text.replace("{", "{{").replace("}", "}}")

    return escape(prefix) + "{}" + escape(suffix)


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}.")
    return level


def _split_template(template: str) -> Tuple[str, str]:
    if not isinstance(template, str):
        raise ValueError(f"template must be a str with one '{{}}' field, got {type(template).__name__}.")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"template {template!r} is not a valid format string: {error}") from error
    fields = [part for part in parts if part[1] is not None]
    if len(fields) != 1 or fields[0][1] != "" or fields[0][2] or fields[0][3]:
        raise ValueError(
            f"template must hold exactly one empty field '{{}}' where the text goes "
            f"(write literal braces as '{{{{' and '}}}}'), got {template!r}."
        )
    prefix, suffix, seen_field = "", "", False
    for literal, field, _spec, _conversion in parts:
        if seen_field:
            suffix += literal
        else:
            prefix += literal
        if field is not None:
            seen_field = True
    return prefix, suffix


def _anchor(text: str, span: Span) -> int:
    r"""Position of the first non-whitespace character of a token (its start if none)."""
    start, end = span
    for position in range(start, end):
        if not text[position].isspace():
            return position
    return start


def _assign_tokens(
    text: str,
    offsets: Sequence[Span],
    special: Sequence[int],
    segments: Sequence[Span],
    partition: Optional[Span] = None,
) -> List[int]:
    r"""
    Segment index of every token, from the character its position is judged by (its
    first non-whitespace character); -1 for special tokens, zero-width tokens and
    tokens outside every segment.

    ``segments`` are sorted, non-overlapping character spans. With ``partition`` =
    ``(start, end)`` they are stretched to cover that range without gaps: segment
    ``i`` runs from its start to the next segment's start, the first from
    ``start``, the last to ``end``, so whitespace between words or sentences goes
    with the one before it. Without it a token counts only inside a segment (the
    gaps are fixed text, e.g. a template's literal text).
    """
    starts = [start for start, _ in segments]
    if partition is not None and segments:
        ranges = [
            (partition[0] if i == 0 else starts[i], starts[i + 1] if i + 1 < len(segments) else partition[1])
            for i in range(len(segments))
        ]
    else:
        ranges = list(segments)
    range_starts = [start for start, _ in ranges]
    result = []
    for (start, end), is_special in zip(offsets, special):
        if is_special or end <= start:
            result.append(-1)
            continue
        position = _anchor(text, (start, end))
        index = bisect.bisect_right(range_starts, position) - 1
        inside = index >= 0 and position < ranges[index][1]
        result.append(index if inside else -1)
    return result


def _merge_overlapping(spans: Sequence[Span]) -> List[Span]:
    r"""Sorted spans with overlapping ones merged (the byte pieces of one emoji share
    a character span)."""
    merged: List[Span] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _renumber(segment_of_token: Sequence[int]) -> Tuple[List[int], List[int]]:
    r"""Feature ids 0..n-1 in order of first appearance; returns them and, for each
    feature, the segment index it came from."""
    feature_of_segment: Dict[int, int] = {}
    features = []
    for segment in segment_of_token:
        if segment < 0:
            features.append(-1)
            continue
        if segment not in feature_of_segment:
            feature_of_segment[segment] = len(feature_of_segment)
        features.append(feature_of_segment[segment])
    segments = sorted(feature_of_segment, key=feature_of_segment.get)
    return features, segments


def _check_fast(tokenizer: object) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} is not a fast tokenizer: text features need the "
            "offset mapping of a Hugging Face fast tokenizer (PreTrainedTokenizerFast, "
            "AutoTokenizer.from_pretrained(..., use_fast=True))."
        )


class TextFeatureInput(InterpretableInput):
    r"""
    Text whose tokens, words or sentences are the interpretable features of a
    decoder-only classifier, in Captum's ``InterpretableInput`` interface. The
    interpretable representation is a binary vector ``[1, n]`` (1 = feature
    present); the model input is the token ids with every token of an absent
    feature deleted (``masking="delete"``, the default) or replaced by the mask
    token (``masking="replace"``, see :func:`mask_token_id`).

    Fixed text (special tokens, the template around ``{}``) is never masked nor
    attributed; it carries -1 in :attr:`feature_mask`. Text after the features
    triggers a :class:`SuffixWarning` (see the module documentation).

    Args:
        text (str): The text to explain.
        tokenizer (PreTrainedTokenizerFast): The classifier's fast tokenizer.
        level (str, optional): ``"token"``, ``"word"`` or ``"sentence"``.
                    Default: "word"
        template (str, optional): Fixed text around the explained text, with one
                    ``{}`` field where the text goes, e.g.
                    ``"Review: {}\nSentiment:"``. Default: "{}"
        mask_token (int or str, optional): Mask token id, or a text that is one
                    token. None uses the id of ``"..."``. Default: None
        add_special_tokens (bool, optional): Let the tokenizer add its special
                    tokens (BOS, ...); they are fixed. Default: True
        language (str, optional): Language of the sentence splitter (pysbd).
                    Default: "en"
        masking (str, optional): How absent features are masked: ``"delete"``
                    or ``"replace"`` (see :mod:`captum_pi._core.masking`).
                    Default: "delete"

    Attributes:
        text (str): The full text the model reads (template filled in).
        explained_span (tuple of int): ``(start, end)`` of the explained text in
                    ``text``: ``text[start:end]`` is the ``text`` argument,
                    ``text[:start]`` the template's fixed text before it. For
                    inputs adapted from Captum's, the whole text.
        input_ids (Tensor): LongTensor ``[1, T]``.
        attention_mask (Tensor): LongTensor ``[1, T]`` of ones.
        feature_mask (Tensor): LongTensor ``[1, T]``: feature id per token, -1 fixed.
        offsets (list of (int, int)): Character span of each token in ``text``.
        spans (list of (int, int)): Character span of each feature in ``text``,
                    without surrounding whitespace.
        values (list of str): The text of each feature.
        n_itp_features (int): Number of features.
        baselines (int): The mask token id (used under ``masking="replace"``).
        masking (str): ``"delete"`` or ``"replace"``.

    Examples::

        >>> inp = TextFeatureInput("Works well. Made me dizzy.", tokenizer,
        >>>                        level="sentence", template="Review: {}")
        >>> inp.values
        >>> # ['Works well.', 'Made me dizzy.']
        >>> inp.to_masked_text(torch.tensor([[1, 0]]))
        >>> # ['Review: Works well.']: the tokens of 'Made me dizzy.' deleted
    """

    def __init__(
        self,
        text: str,
        tokenizer: object,
        level: str = "word",
        template: str = "{}",
        mask_token: Union[int, str, None] = None,
        add_special_tokens: bool = True,
        language: str = "en",
        masking: str = DEFAULT_MASKING,
    ) -> None:
        if isinstance(text, (list, tuple)):
            raise ValueError(
                f"text must be a str, got a {type(text).__name__} of {len(text)}: one "
                "TextFeatureInput holds one text. For many texts, build the inputs with "
                "TextFeatureInput.from_texts(texts, tokenizer, ...) and explain them with "
                "LLMClassifierAttribution.attribute_batch (or iter_attribute_batch)."
            )
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}.")
        if not text.strip():
            raise ValueError("text is empty: there is nothing to explain.")
        _check_level(level)
        _check_fast(tokenizer)
        check_masking(masking)
        prefix, suffix = _split_template(template)
        full_text = prefix + text + suffix
        slot = (len(prefix), len(prefix) + len(text))
        input_ids, offsets, special = encode_parts(tokenizer, [prefix, text, suffix], add_special_tokens)
        if level == "token":
            segments = _merge_overlapping(
                [(max(start, slot[0]), min(end, slot[1])) for (start, end), sp in zip(offsets, special) if not sp]
            )
            segments = [span for span in segments if span[1] > span[0]]
        else:
            segments = [(start + slot[0], end + slot[0]) for start, end in segment_spans(text, level, language)]
        segment_of_token = _assign_tokens(full_text, offsets, special, segments, partition=slot)
        features, _ = _renumber(segment_of_token)
        self._setup(
            full_text,
            tokenizer,
            level,
            torch.tensor([input_ids], dtype=torch.long),
            torch.tensor([features], dtype=torch.long),
            offsets,
            resolve_mask_token(tokenizer, mask_token),
            explained_span=slot,
            masking=masking,
        )

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        tokenizer: object,
        level: str = "word",
        template: str = "{}",
        mask_token: Union[int, str, None] = None,
        add_special_tokens: bool = True,
        language: str = "en",
        masking: str = DEFAULT_MASKING,
    ) -> List["TextFeatureInput"]:
        r"""
        One :class:`TextFeatureInput` per text, all with the same level, template
        and mask token: the inputs of
        :meth:`~captum_pi.llm_attr.LLMClassifierAttribution.attribute_batch`.

        Every text is checked before any is tokenized, and an error names the
        first bad one (``texts[3] is empty``).

        Args:
            texts (list of str): The texts to explain.
            tokenizer (PreTrainedTokenizerFast): The classifier's fast tokenizer.
            level (str, optional): ``"token"``, ``"word"`` or ``"sentence"``.
                        Default: "word"
            template (str, optional): See :class:`TextFeatureInput`. Default: "{}"
            mask_token (int or str, optional): See :class:`TextFeatureInput`.
                        Default: None
            add_special_tokens (bool, optional): Default: True
            language (str, optional): Default: "en"
            masking (str, optional): ``"delete"`` or ``"replace"``. Default: "delete"

        Returns:
            list of :class:`TextFeatureInput`, in the order of ``texts``.

        Examples::

            >>> inputs = TextFeatureInput.from_texts(reviews, tokenizer, level="sentence",
            >>>                                      template="Review: {}")
            >>> results = explainer.attribute_batch(inputs, batch_size=8)
        """
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(
                f"texts must be a list of str, got {type(texts).__name__}; for one text "
                "use TextFeatureInput(text, tokenizer, ...)."
            )
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}.")
            if not text.strip():
                raise ValueError(f"texts[{index}] is empty: there is nothing to explain.")
        _check_level(level)
        _check_fast(tokenizer)
        _split_template(template)
        check_masking(masking)
        mask_id = resolve_mask_token(tokenizer, mask_token)
        inputs = []
        for index, text in enumerate(texts):
            try:
                inputs.append(
                    cls(text, tokenizer, level, template, mask_id, add_special_tokens, language, masking)
                )
            except ValueError as error:
                raise ValueError(f"texts[{index}]: {error}") from error
        return inputs

    @classmethod
    def for_nli(
        cls,
        hypothesis: str,
        premise: str,
        tokenizer: object,
        level: str = "sentence",
        mask_token: Union[int, str, None] = None,
        add_special_tokens: bool = True,
        language: str = "en",
        masking: str = DEFAULT_MASKING,
    ) -> "TextFeatureInput":
        r"""
        The paper's NLI layout ``"[Assertion]: hypothesis [Document]: premise"``
        (Appendix, TrueTeacher): the hypothesis and the labels are fixed; only the
        premise's tokens, words or sentences are features, so intermediate
        predictions are predictions on masked premises.

        Args:
            hypothesis (str): The assertion, fixed.
            premise (str): The document, explained.
            tokenizer (PreTrainedTokenizerFast): The classifier's fast tokenizer.
            level (str, optional): Feature level of the premise. Default: "sentence"
            mask_token (int or str, optional): See :class:`TextFeatureInput`.
                        Default: None
            add_special_tokens (bool, optional): Default: True
            language (str, optional): Default: "en"
            masking (str, optional): ``"delete"`` or ``"replace"``. Default: "delete"
        """
        template = fixed_template(NLI_PREFIX.format(hypothesis=hypothesis))
        return cls(premise, tokenizer, level, template, mask_token, add_special_tokens, language, masking)

    @classmethod
    def from_token_features(
        cls,
        text: str,
        tokenizer: object,
        input_ids: Tensor,
        feature_mask: Tensor,
        offsets: Sequence[Span],
        mask_token: Union[int, str, None] = None,
        level: str = "token",
        masking: str = DEFAULT_MASKING,
    ) -> "TextFeatureInput":
        r"""
        Builds the input from token ids, a feature mask and the character span of
        every token in ``text`` (used to adapt Captum's text inputs).

        Args:
            text (str): The text the token ids spell.
            tokenizer (PreTrainedTokenizerFast): The classifier's tokenizer.
            input_ids (Tensor): ``[1, T]`` or ``[T]`` token ids.
            feature_mask (Tensor): ``[1, T]`` or ``[T]`` feature ids in the core's
                        convention (0..n-1 in order, contiguous, -1 fixed).
            offsets (list of (int, int)): Character span of each token.
            mask_token (int or str, optional): Default: None (the id of "...")
            level (str, optional): Name of the feature level. Default: "token"
            masking (str, optional): ``"delete"`` or ``"replace"``. Default: "delete"
        """
        input_ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(1, -1)
        feature_mask = torch.as_tensor(feature_mask, dtype=torch.long).reshape(1, -1)
        if len(offsets) != input_ids.shape[1]:
            raise ValueError(
                f"offsets must hold one span per token ({input_ids.shape[1]}), got {len(offsets)}."
            )
        inp = cls.__new__(cls)
        inp._setup(
            text, tokenizer, level, input_ids, feature_mask,
            [tuple(span) for span in offsets], resolve_mask_token(tokenizer, mask_token),
            masking=check_masking(masking),
        )
        return inp

    def _setup(
        self,
        text: str,
        tokenizer: object,
        level: str,
        input_ids: Tensor,
        feature_mask: Tensor,
        offsets: List[Span],
        mask_id: int,
        explained_span: Optional[Span] = None,
        masking: str = DEFAULT_MASKING,
    ) -> None:
        self.text = text
        self.explained_span = (0, len(text)) if explained_span is None else explained_span
        self.tokenizer = tokenizer
        self.level = level
        self.input_ids = input_ids
        self.attention_mask = torch.ones_like(input_ids)
        self.feature_mask = feature_mask
        self.offsets = offsets
        self.baselines = mask_id
        self.masking = masking
        if not bool((feature_mask >= 0).any()):
            raise ValueError("text is empty: none of its tokens forms a feature.")
        self.layout: FeatureLayout = build_feature_layouts(input_ids, feature_mask)[0]
        self.n_itp_features = self.layout.n_features
        self.spans = [self._feature_span(feature) for feature in range(self.n_itp_features)]
        self.values = [text[start:end] for start, end in self.spans]
        if int(self.layout.ends[-1]) < self.layout.length - 1:
            warnings.warn(SUFFIX_MESSAGE, SuffixWarning, stacklevel=3)

    def _feature_span(self, feature: int) -> Span:
        positions = torch.nonzero(self.feature_mask[0] == feature).flatten().tolist()
        starts = [self.offsets[p][0] for p in positions if self.offsets[p][1] > self.offsets[p][0]]
        ends = [self.offsets[p][1] for p in positions if self.offsets[p][1] > self.offsets[p][0]]
        if not starts:
            return (0, 0)
        raw = (min(starts), max(ends))
        stripped = _strip_span(self.text, raw)
        return stripped if stripped[1] > stripped[0] else raw

    @property
    def explained_text(self) -> str:
        r"""The text being explained, as given (``text`` without the template's
        fixed text around it)."""
        start, end = self.explained_span
        return self.text[start:end]

    @property
    def prefix(self) -> str:
        r"""The fixed text before the explained text (the template's, and the
        hypothesis of :meth:`for_nli`)."""
        return self.text[: self.explained_span[0]]

    @property
    def suffix(self) -> str:
        r"""The fixed text after the explained text."""
        return self.text[self.explained_span[1]:]

    @property
    def mask_token_id(self) -> int:
        r"""The token id that replaces every token of a masked feature under
        ``masking="replace"``."""
        return self.baselines

    @property
    def empty_token_id(self) -> int:
        r"""The token read as the input with every feature deleted when the input
        has no fixed token (under ``masking="delete"``): the tokenizer's BOS token,
        else its EOS token, else the mask token."""
        for name in ("bos_token_id", "eos_token_id"):
            token = getattr(self.tokenizer, name, None)
            if isinstance(token, int) and token >= 0:
                return token
        return self.baselines

    def masking_game(self, masking: Optional[str] = None) -> Masking:
        r"""The :class:`~captum_pi._core.masking.Masking` of this input: its own
        rule, or ``masking`` when given, with the token that rule needs."""
        rule = self.masking if masking is None else check_masking(masking)
        return Masking(rule, self.baselines if rule == "replace" else self.empty_token_id)

    def baselines_for(self, masking: Optional[str] = None) -> int:
        r"""The ``baselines`` to pass to a method under ``masking`` (the input's own
        rule when None): the mask token under ``"replace"``, the token of the empty
        input under ``"delete"``."""
        return int(self.masking_game(masking).token)

    def to_tensor(self) -> Tensor:
        r"""The interpretable representation: ``[1, n]`` ones (every feature present)."""
        return torch.ones(1, self.n_itp_features)

    def to_model_input(self, perturbed_tensor: Optional[Tensor] = None) -> Tensor:
        r"""
        Token ids of the (masked) input.

        Args:
            perturbed_tensor (Tensor, optional): ``[P, n]`` or ``[n]``; nonzero
                        entries mark present features. None returns the unmasked ids.
                        Default: None

        Returns:
            LongTensor ``[P, L]`` (``[1, T]`` for None): fixed tokens kept; every
            token of an absent feature deleted (rows right-padded, see
            :meth:`to_masked_inputs` for their attention mask) or, under
            ``masking="replace"``, replaced by the mask token.
        """
        if perturbed_tensor is None:
            return self.input_ids.clone()
        return self.to_masked_inputs(perturbed_tensor).input_ids

    def to_masked_inputs(self, perturbed_tensor: Tensor, masking: Optional[str] = None) -> MaskedInputs:
        r"""
        The model inputs of the masked copies, with attention mask and final
        positions (:class:`~captum_pi._core.masking.MaskedInputs`).

        Args:
            perturbed_tensor (Tensor): ``[P, n]`` or ``[n]``; nonzero entries mark
                        present features.
            masking (str, optional): Overrides the input's masking rule.
                        Default: None
        """
        present = torch.as_tensor(perturbed_tensor)
        if present.dim() == 1:
            present = present.unsqueeze(0)
        if present.dim() != 2 or present.shape[1] != self.n_itp_features:
            raise ValueError(
                f"perturbed_tensor must be [P, {self.n_itp_features}] (one entry per "
                f"feature), got {tuple(present.shape)}."
            )
        return self.masking_game(masking).apply(self.input_ids[0], self.layout, present.cpu() != 0)

    def to_masked_text(self, perturbed_tensor: Optional[Tensor] = None) -> List[str]:
        r"""The decoded text of :meth:`to_model_input`: what the model reads, one
        string per row (replaced tokens show as the mask text)."""
        if perturbed_tensor is None:
            return [self.tokenizer.decode(self.input_ids[0].tolist())]
        masked = self.to_masked_inputs(perturbed_tensor)
        return [
            self.tokenizer.decode(row[: int(final) + 1].tolist())
            for row, final in zip(masked.input_ids, masked.final)
        ]

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        r"""Attributions stay one per feature, ``[*, n]``."""
        return itp_attr

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(level={self.level!r}, n_itp_features={self.n_itp_features}, "
            f"masking={self.masking!r}, values={self.values!r})"
        )


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
