r"""
Segmentation: the words and sentences of a text as character spans, the token ids of
consecutive pieces of text with each token's character span, and the assignment of
every token to the span (feature) it belongs to. :class:`captum_pi.text.TextFeatureInput`
builds its features from these; nothing here knows about masking or templates.

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
"""
import bisect
import re
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

PYSBD_INSTALL = "pip install pysbd"

Span = Tuple[int, int]


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
