import itertools
import warnings

import pytest
import torch
from tiny_text import tiny_tokenizer

from captum_pi import captum_inputs, segmentation
from captum_pi import text as text_module
from captum_pi.text import LEVELS, SuffixWarning, TextFeatureInput, mask_token_id

TRICKY = "Ünïcödé  café   naïve 😀😀 emoji!"
ABBREVIATIONS = (
    'Dr. Smith paid $3.50 for it, e.g. pills. It worked... Then it stopped! "Really?" she asked.'
)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def check_partition(inp: TextFeatureInput, tokenizer) -> None:
    r"""Every token is in exactly one feature or -1; special tokens are -1; features
    are contiguous and in order; each feature's tokens spell its value."""
    encoding = tokenizer(inp.text, return_special_tokens_mask=True)
    features = inp.feature_mask[0].tolist()
    assert len(features) == len(encoding["input_ids"])
    for feature, special in zip(features, encoding["special_tokens_mask"]):
        if special:
            assert feature == -1
    runs = [key for key, _ in itertools.groupby(f for f in features if f >= 0)]
    assert runs == list(range(inp.n_itp_features))
    for feature, (start, end) in enumerate(inp.spans):
        covered = [inp.offsets[p] for p, f in enumerate(features) if f == feature]
        token_text = inp.text[min(s for s, _ in covered): max(e for _, e in covered)]
        assert token_text.strip() == inp.values[feature] == inp.text[start:end]


def test_word_features_on_unicode_emoji_and_multiple_spaces(tokenizer):
    inp = TextFeatureInput(TRICKY, tokenizer, level="word")
    assert inp.values == ["Ünïcödé", "café", "naïve", "😀😀", "emoji!"]
    assert inp.feature_mask[0, 0] == -1  # BOS
    check_partition(inp, tokenizer)


def test_sentence_features_handle_abbreviations_decimals_ellipses_quotes(tokenizer):
    inp = TextFeatureInput(ABBREVIATIONS, tokenizer, level="sentence")
    assert inp.values == [
        "Dr. Smith paid $3.50 for it, e.g. pills.",
        "It worked...",
        "Then it stopped!",
        '"Really?" she asked.',
    ]
    check_partition(inp, tokenizer)


@pytest.mark.parametrize("level", LEVELS)
def test_single_word_is_one_feature(tokenizer, level):
    inp = TextFeatureInput("Great", tokenizer, level=level)
    n_tokens = len(tokenizer("Great", add_special_tokens=False)["input_ids"])
    expected = n_tokens if level == "token" else 1
    assert inp.n_itp_features == expected
    assert "".join(inp.values) == "Great"


def test_token_level_gives_one_feature_per_token_and_joins_pieces_of_one_character(tokenizer):
    inp = TextFeatureInput("naïve 😀 ok", tokenizer, level="token")
    check_partition(inp, tokenizer)
    ids = tokenizer("naïve 😀 ok", add_special_tokens=False)["input_ids"]
    emoji_tokens = [p for p, (s, e) in enumerate(inp.offsets) if "😀" in inp.text[s:e]]
    assert len(emoji_tokens) >= 2  # byte-level BPE splits the emoji
    assert len({int(inp.feature_mask[0, p]) for p in emoji_tokens}) == 1
    assert inp.n_itp_features == len(ids) - len(emoji_tokens) + 1


@pytest.mark.parametrize("level", LEVELS)
def test_template_prefix_is_fixed(tokenizer, level):
    inp = TextFeatureInput("It works. Not bad.", tokenizer, level=level, template="Review: {}")
    prefix_tokens = [p for p, (s, e) in enumerate(inp.offsets) if e > s and e <= len("Review:")]
    assert prefix_tokens and all(inp.feature_mask[0, p] == -1 for p in prefix_tokens)
    assert inp.text == "Review: It works. Not bad."
    assert "Review" not in "".join(inp.values)
    check_partition(inp, tokenizer)


def test_nli_layout_fixes_the_hypothesis(tokenizer):
    inp = TextFeatureInput.for_nli("The {drug} works.", "It works. It is cheap.", tokenizer)
    assert inp.text == "[Assertion]: The {drug} works. [Document]: It works. It is cheap."
    assert inp.values == ["It works.", "It is cheap."]
    first_feature_char = inp.text.index("It works.")
    for (start, end), feature in zip(inp.offsets, inp.feature_mask[0].tolist()):
        if end > start and end <= first_feature_char - 1:
            assert feature == -1


def test_text_after_the_last_feature_warns(tokenizer):
    with pytest.warns(SuffixWarning, match="follows the last feature"):
        TextFeatureInput("It works.", tokenizer, template="Review: {}\nSentiment:")


def test_trailing_whitespace_of_the_text_is_no_suffix(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuffixWarning)
        inp = TextFeatureInput("It works. \n", tokenizer, level="word", template="Review: {}")
    assert inp.values == ["It", "works."]


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_rejected(tokenizer, text):
    with pytest.raises(ValueError, match="empty"):
        TextFeatureInput(text, tokenizer)


@pytest.mark.parametrize("template", ["no field", "{} and {}", "{0}", "{name}", "{:>5}"])
def test_template_needs_one_empty_field(tokenizer, template):
    with pytest.raises(ValueError, match="template"):
        TextFeatureInput("It works.", tokenizer, template=template)


def test_invalid_level_and_slow_tokenizer_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="level must be one of"):
        TextFeatureInput("It works.", tokenizer, level="paragraph")

    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match="not a fast tokenizer"):
        TextFeatureInput("It works.", SlowTokenizer())


def test_mask_token_is_the_single_token_of_the_ellipsis(tokenizer):
    assert mask_token_id(tokenizer) == tokenizer.convert_tokens_to_ids("...")
    with pytest.raises(ValueError, match="encodes to"):
        mask_token_id(tokenizer, "mask of many tokens")
    inp = TextFeatureInput("It works.", tokenizer, mask_token=7)
    assert inp.baselines == 7


def expected_masked_text(inp: TextFeatureInput, present: torch.Tensor, tokenizer) -> str:
    r"""Built from character offsets, independently of the masking code: kept tokens
    keep their characters, masked tokens read "..." (or nothing when deleted), BOS
    reads "<bos>"."""
    pieces, end_so_far = [], 0
    for position, ((start, end), feature) in enumerate(zip(inp.offsets, inp.feature_mask[0].tolist())):
        if position == 0:
            pieces.append(tokenizer.bos_token)
            continue
        if feature >= 0 and not present[feature]:
            if inp.masking == "replace":
                pieces.append("...")
        else:
            pieces.append(inp.text[max(start, end_so_far):end])
        end_so_far = max(end_so_far, end)
    return "".join(pieces)


@pytest.mark.parametrize("level", LEVELS)
def test_masks_round_trip_into_ids_and_text(tokenizer, level):
    inp = TextFeatureInput(ABBREVIATIONS, tokenizer, level=level, template="Review: {}", masking="replace")
    mask_id = mask_token_id(tokenizer)
    generator = torch.Generator().manual_seed(0)
    present = torch.rand(6, inp.n_itp_features, generator=generator) > 0.5
    ids = inp.to_model_input(present.float())
    assert ids.shape == (6, inp.input_ids.shape[1])
    features = inp.feature_mask[0]
    original = inp.input_ids[0]
    for row in range(6):
        kept = (features < 0) | present[row][features.clamp(min=0)]
        assert torch.equal(ids[row][kept], original[kept])
        assert bool((ids[row][~kept] == mask_id).all())
        # a feature that is itself "..." reads the same masked or not; the others round-trip
        readable = [k for k in range(inp.n_itp_features) if bool((original[features == k] != mask_id).any())]
        recovered = [bool((ids[row][features == k] != mask_id).any()) for k in readable]
        assert recovered == present[row][readable].tolist()
        assert inp.to_masked_text(present[row : row + 1])[0] == expected_masked_text(inp, present[row], tokenizer)
    assert torch.equal(inp.to_model_input(), inp.input_ids)
    assert torch.equal(inp.to_model_input(inp.to_tensor()), inp.input_ids)
    assert tokenizer.decode(inp.to_model_input()[0], skip_special_tokens=True) == inp.text


def test_to_model_input_rejects_wrong_width(tokenizer):
    inp = TextFeatureInput("It works well.", tokenizer)
    with pytest.raises(ValueError, match=r"\[P, 3\]"):
        inp.to_model_input(torch.ones(1, 4))


@pytest.mark.parametrize("level", LEVELS)
def test_deletion_keeps_fixed_tokens_and_removes_absent_features_whole(tokenizer, level):
    inp = TextFeatureInput(ABBREVIATIONS, tokenizer, level=level, template="Review: {}")
    assert inp.masking == "delete"
    present = torch.rand(6, inp.n_itp_features, generator=torch.Generator().manual_seed(1)) > 0.5
    masked = inp.to_masked_inputs(present.float())
    features, original = inp.feature_mask[0], inp.input_ids[0]
    for row in range(6):
        kept = (features < 0) | present[row][features.clamp(min=0)]
        length = int(kept.sum())
        assert int(masked.final[row]) == length - 1
        assert masked.attention_mask[row].tolist() == [1] * length + [0] * (masked.input_ids.shape[1] - length)
        assert torch.equal(masked.input_ids[row, :length], original[kept])
        assert inp.to_masked_text(present[row : row + 1])[0] == expected_masked_text(inp, present[row], tokenizer)
    nobody = inp.to_masked_text(torch.zeros(1, inp.n_itp_features))[0]
    assert nobody == tokenizer.bos_token + "Review: "


def test_text_without_fixed_tokens_reads_the_bos_token_as_its_empty_input(tokenizer):
    inp = TextFeatureInput("Works well.", tokenizer, level="word", add_special_tokens=False)
    assert bool((inp.feature_mask >= 0).all())
    empty = inp.to_masked_inputs(torch.zeros(1, inp.n_itp_features))
    assert empty.input_ids[0, : int(empty.final[0]) + 1].tolist() == [tokenizer.bos_token_id]
    assert inp.baselines_for("replace") == mask_token_id(tokenizer)
    with pytest.raises(ValueError, match="masking must be one of"):
        TextFeatureInput("Works well.", tokenizer, masking="erase")


@pytest.mark.parametrize(
    "name, home",
    [("word_spans", segmentation), ("sentence_spans", segmentation), ("PYSBD_INSTALL", segmentation),
     ("_segmenter", segmentation), ("AdaptedInput", captum_inputs), ("adapt_input", captum_inputs),
     ("decoded_offsets", captum_inputs)],
)
def test_names_that_moved_out_still_import_from_captum_pi_text(name, home):
    assert getattr(text_module, name) is getattr(home, name)  # what `from captum_pi.text import name` reads
