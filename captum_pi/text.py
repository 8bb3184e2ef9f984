r"""
Text in, interpretable features out: the tokens, words or sentences of a piece of
text as Captum ``InterpretableInput`` features over the token ids a decoder-only
classifier reads, and the one masking rule that every attribution method shares.

Data flows one way: text (+ fixed template text) -> fast tokenizer with offset
mapping -> character spans of the features -> ``feature_mask`` (one feature id per
token, -1 for fixed tokens) -> masked token ids.

How text is cut into words and sentences and how tokens are assigned to them
(``level`` ``"token"``, ``"word"`` or ``"sentence"``) is
:mod:`captum_pi.segmentation`; Captum's own ``TextTokenInput`` and
``TextTemplateInput`` become a :class:`TextFeatureInput` in
:mod:`captum_pi.captum_inputs`.

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
import importlib
import string
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
from captum.attr._utils.interpretable_input import InterpretableInput
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
from captum_pi.segmentation import (
    Span,
    _assign_tokens,
    _check_fast,
    _encode_plain,
    _merge_overlapping,
    _renumber,
    _strip_span,
    encode_parts,
    segment_spans,
)

LEVELS = ("token", "word", "sentence")
MASK_TEXT = "..."
NLI_PREFIX = "[Assertion]: {hypothesis} [Document]: "

# Names that lived here before the split, importable from here still (on first use):
# segmentation came out into captum_pi.segmentation, the adaptation of Captum's inputs
# into captum_pi.captum_inputs (which imports this module).
_MOVED = {
    "PYSBD_INSTALL": "captum_pi.segmentation",
    "word_spans": "captum_pi.segmentation",
    "sentence_spans": "captum_pi.segmentation",
    "_segmenter": "captum_pi.segmentation",
    "AdaptedInput": "captum_pi.captum_inputs",
    "adapt_input": "captum_pi.captum_inputs",
    "decoded_offsets": "captum_pi.captum_inputs",
}


def __getattr__(name: str) -> object:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
