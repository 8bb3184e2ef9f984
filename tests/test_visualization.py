import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from tiny_text import tiny_gpt2_classifier, tiny_tokenizer

from captum_pi.llm_attr import LLMClassifierAttribution
from captum_pi.text import TextFeatureInput
from captum_pi.visualization import (
    MAX_SHADE,
    MIN_SHADE,
    TERMINAL_MAX_FEATURES,
    attribution_html,
    comparison_html,
    shade,
    terminal_text,
)

TEXT = "It <script>document.title='HACKED'</script> works & heals. Not bad."
PHI = [0.5, -0.25, 0.0, 0.1, -0.5, 0.3, -0.05]  # one value per word of TEXT


class FixedAttribution:
    r"""A method of the uniform protocol returning chosen attributions per feature."""

    def __init__(self, model, phi):
        self.forward_func = model
        self.phi = torch.tensor(phi)

    def attribute(self, inputs, target=None, feature_mask=None, baselines=None, attention_mask=None, **kwargs):
        return torch.where(feature_mask >= 0, self.phi[feature_mask.clamp(min=0)], torch.zeros(()))


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    model = tiny_gpt2_classifier(len(tokenizer))
    model.config.id2label = {0: "<b>bad</b>", 1: "neutral", 2: "good"}
    return model


def explain(model, tokenizer, phi, text=TEXT, name=None):
    method = FixedAttribution(model, phi)
    if name:
        method.name = name
    inp = TextFeatureInput(text, tokenizer, level="word", template="Review: {}")
    return LLMClassifierAttribution(method, tokenizer).attribute(inp, target=0)


class FeatureSpans(HTMLParser):
    r"""Collects the highlighted feature spans, the text of the ``.text`` blocks and
    every tag name of a page."""

    def __init__(self):
        super().__init__()
        self.features, self.tags, self.texts = [], [], []
        self._in_text = 0
        self._feature = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "div" and attrs.get("class") == "text":
            self._in_text = 1
            self.texts.append("")
        elif self._in_text and tag in ("div", "span"):
            self._in_text += 1
        if tag == "span" and "feature" in (attrs.get("class") or "").split():
            self._feature = dict(attrs, text="")
            self.features.append(self._feature)

    def handle_endtag(self, tag):
        if self._in_text and tag in ("div", "span"):
            self._in_text -= 1
        if tag == "span":
            self._feature = None

    def handle_data(self, data):
        if self._in_text:
            self.texts[-1] += data
        if self._feature is not None:
            self._feature["text"] += data


def parse(page):
    parser = FeatureSpans()
    parser.feed(page)
    return parser


def test_shade_grows_with_magnitude_and_keeps_the_sign():
    assert shade(0.0, 1.0) == ("zero", 0.0)
    assert shade(1.0, 1.0) == ("positive", pytest.approx(MAX_SHADE))
    assert shade(-2.0, 1.0) == ("negative", pytest.approx(MAX_SHADE))
    sign, half = shade(-0.5, 1.0)
    assert sign == "negative" and half == pytest.approx((MIN_SHADE + MAX_SHADE) / 2)
    assert shade(0.3, 0.0) == ("zero", 0.0)


def test_html_highlights_every_feature_by_sign_and_strength(model, tokenizer):
    result = explain(model, tokenizer, PHI)
    page = parse(attribution_html(result))
    assert [f["text"] for f in page.features] == result.features.values
    assert [float(f["data-attribution"]) for f in page.features] == PHI
    classes = [f["class"].split()[1] for f in page.features]
    assert classes == ["positive", "negative", "zero", "positive", "negative", "positive", "negative"]
    alphas = [float(f["style"].rsplit(",", 1)[1].rstrip(")")) for f in page.features]
    assert alphas[0] == pytest.approx(MAX_SHADE) and alphas[4] == pytest.approx(MAX_SHADE)
    assert alphas[1] == pytest.approx((MIN_SHADE + MAX_SHADE) / 2, abs=1e-3)
    assert page.texts == [result.features.text]  # nothing lost or added


def test_html_escapes_all_text(model, tokenizer):
    page_source = attribution_html(explain(model, tokenizer, PHI), title="<i>t</i>")
    assert "<script>" not in page_source and "<b>bad</b>" not in page_source
    assert "&lt;script&gt;document.title=&#x27;HACKED&#x27;&lt;/script&gt;" in page_source
    assert "&lt;b&gt;bad&lt;/b&gt;" in page_source and "&lt;i&gt;t&lt;/i&gt;" in page_source
    assert "script" not in parse(page_source).tags


def test_html_shows_prediction_probability_and_legend(model, tokenizer):
    result = explain(model, tokenizer, PHI)
    page_source = attribution_html(result)
    probability = float(result.probabilities[result.predicted])
    assert f'<span class="probability">{probability:.3f}</span>' in page_source
    assert 'class="legend"' in page_source and "+0.5" in page_source and "&minus;0.5" in page_source


def test_comparison_puts_methods_side_by_side(model, tokenizer):
    results = [explain(model, tokenizer, PHI, name="A"), explain(model, tokenizer, [-v for v in PHI], name="B")]
    page_source = comparison_html(results)
    page = parse(page_source)
    n = len(PHI)
    assert len(page.features) == 2 * n
    assert [float(f["data-attribution"]) for f in page.features[n:]] == [-v for v in PHI]
    assert "<h2>A</h2>" in page_source and "<h2>B</h2>" in page_source
    named = comparison_html({"<left>": results[0], "right": results[1]})
    assert "&lt;left&gt;" in named and "<left>" not in named
    other = explain(model, tokenizer, [1.0, 2.0], text="Other text.")
    with pytest.raises(ValueError, match="same text"):
        comparison_html([results[0], other])


def test_terminal_text_reads_without_colour(model, tokenizer):
    result = explain(model, tokenizer, [0.5, -0.25], text="Works well.")
    plain = terminal_text(result, color=False)
    assert "Review: [Works +0.5] [well. -0.25]" in plain.splitlines()
    assert "\x1b" not in plain
    assert "  +0.5000  Works" in plain
    coloured = terminal_text(result, color=True)
    assert "\x1b[30;48;2;" in coloured and "[Works +0.5]" in coloured


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


CHROMIUM_BINARIES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_INSTALL = "apt-get install -y chromium"


def chromium_binary():
    r"""The headless browser's path. Without one the test is skipped, with the
    install command; on CI (``CI=true``) a missing browser is a failure, so the
    browser test never silently stops running there."""
    binary = next((shutil.which(name) for name in CHROMIUM_BINARIES if shutil.which(name)), None)
    if binary:
        return binary
    message = f"headless Chromium is needed for the browser test: {CHROMIUM_INSTALL}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing browser fails the run)")
    pytest.skip(message)


def test_a_missing_browser_skips_the_test_except_on_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium_binary()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        chromium_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium.*CI=true"):
        chromium_binary()
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/bin/chromium" if name == "chromium-browser" else None)
    assert chromium_binary() == "/opt/bin/chromium"


def chromium(*arguments):
    binary = chromium_binary()
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True, text=True, timeout=120,
        )


def test_the_page_renders_in_a_real_browser(model, tokenizer, tmp_path):
    from PIL import Image

    results = [explain(model, tokenizer, PHI, name="A"), explain(model, tokenizer, [-v for v in PHI], name="B")]
    page = tmp_path / "comparison.html"
    page.write_text(comparison_html(results), encoding="utf-8")
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert "HACKED" not in dom.split("</title>")[0]  # the review's script never ran
    assert dom.count('class="feature ') == 2 * len(PHI)
    assert "&lt;script&gt;" in dom
    screenshot = tmp_path / "comparison.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1000,600", page.as_uri())
    rgb = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    greenish = int(((g > r + 60) & (g > b + 40)).sum())
    reddish = int(((r > g + 80) & (r > b + 80)).sum())
    assert greenish > 300 and reddish > 300  # highlighted words of both signs are visible


def test_fixed_text_around_the_features_can_be_left_out(model, tokenizer):
    result = explain(model, tokenizer, [0.5, -0.25], text="Works well.")
    assert "Review:" in attribution_html(result) and "Review:" not in attribution_html(result, show_fixed=False)
    assert terminal_text(result, color=False, show_fixed=False).splitlines()[3] == "[Works +0.5] [well. -0.25]"


LONG_TEXT = " ".join(["It works great. Not bad at all."] * 40)  # 280 words, 1,279 characters


@pytest.fixture(scope="module")
def long_model(tokenizer):
    return tiny_gpt2_classifier(len(tokenizer), n_positions=4096)


def ranked_rows(output):
    r"""The table rows of a long terminal explanation: (rank, attribution, position, text)."""
    rows = []
    for line in output.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[0].isdigit() and "/" in parts[2]:
            rows.append((int(parts[0]), float(parts[1]), parts[2], parts[3]))
    return rows


def test_a_long_text_shows_its_strongest_features_ranked(long_model, tokenizer):
    n = len(LONG_TEXT.split())
    phi = [((7 * k) % 97 - 48) / 100 for k in range(n)]  # distinct magnitudes except sign pairs
    result = explain(long_model, tokenizer, phi, text=LONG_TEXT)
    output = terminal_text(result, color=False)
    assert len(output) < 3000 and "Review:" not in output  # no 1,279-character text line
    rows = ranked_rows(output)
    assert len(rows) == TERMINAL_MAX_FEATURES == 20
    expected = sorted(range(n), key=lambda i: -abs(phi[i]))[:20]
    assert [row[0] for row in rows] == list(range(1, 21))
    assert [row[2] for row in rows] == [f"{i + 1}/{n}" for i in expected]
    assert [row[1] for row in rows] == pytest.approx([phi[i] for i in expected], abs=1e-4)
    assert [row[3] for row in rows] == [result.features.values[i] for i in expected]
    weakest_left_out = abs(phi[sorted(range(n), key=lambda i: -abs(phi[i]))[20]])
    assert f"... {n - 20} more features not shown (|attribution| <= {weakest_left_out:.4g})" in output
    assert len(ranked_rows(terminal_text(result, color=False, max_features=5))) == 5
    coloured = terminal_text(result, color=True)
    assert coloured.count("\x1b[0m") == 20


def test_few_but_long_features_are_ranked_without_a_left_out_line(long_model, tokenizer):
    text = "It works great. Not bad at all. " + "x" * 2100
    result = explain(long_model, tokenizer, [0.1] * len(text.split()), text=text)
    output = terminal_text(result, color=False)
    assert len(ranked_rows(output)) == result.features.n_itp_features == 8
    assert "more features not shown" not in output and "x" * 100 not in output
    assert "[It +0.1]" in terminal_text(result, color=False, max_text_chars=None)


def test_short_texts_are_shown_whole(model, tokenizer):
    phi = [0.1 * (k + 1) for k in range(20)]
    text = " ".join(f"w{k}" for k in range(20))
    output = terminal_text(explain(model, tokenizer, phi, text=text), color=False)
    assert ranked_rows(output) == [] and "more features not shown" not in output
    assert "Review: " + " ".join(f"[w{k} {phi[k]:+.3g}]" for k in range(20)) in output.splitlines()
    assert "Strongest 5 of 20 features:" in output
    longer = explain(model, tokenizer, phi + [0.05], text=text + " w20")
    assert "1 more features not shown" in terminal_text(longer, color=False)
    with pytest.raises(ValueError, match="max_features must be a positive int"):
        terminal_text(longer, max_features=0)


def test_the_masking_game_is_named_in_the_terminal_and_the_page(model, tokenizer):
    result = explain(model, tokenizer, [0.5, -0.25], text="Works well.")
    result.masking = "delete"
    assert terminal_text(result, color=False).splitlines()[0].endswith("| masking: delete")
    assert "masking: delete" in attribution_html(result)
    result.masking = None  # a method that masks nothing
    assert "masking" not in terminal_text(result, color=False).splitlines()[0]
