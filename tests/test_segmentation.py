from captum_pi.segmentation import sentence_spans, word_spans


def test_word_spans_are_whitespace_separated_runs():
    assert word_spans("  a  bc\td\n") == [(2, 3), (5, 7), (8, 9)]


def test_sentence_spans_strip_whitespace_and_keep_offsets():
    text = "  First one.   Second one?\n\nThird one!  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["First one.", "Second one?", "Third one!"]
