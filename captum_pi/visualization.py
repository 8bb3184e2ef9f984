r"""
Pictures of text attributions, like the paper's Figures 6 and 7: the text with
every feature highlighted green (positive attribution: it raises the explained
value) or red (negative), shaded by its magnitude normalised by the largest
magnitude of the method, with a legend and the predicted class and its
probability.

- :func:`attribution_html`: one explanation as a self-contained HTML page.
- :func:`comparison_html`: several methods on one input, side by side, in one page.
- :func:`terminal_text`: the same for a terminal (ANSI colours, and signed numbers
  in brackets so that it reads without colour too); a long text becomes a ranked
  table of its strongest features.

All text (the input, labels, method names) is escaped with :func:`html.escape`;
Captum's ``visualize_text`` does not escape (meta-pytorch/captum#1226). The pages
hold no script and load nothing.
"""
import html
from typing import List, Mapping, Optional, Sequence, Tuple, Union

from captum_pi.attribution_result import ClassifierAttributionResult
from captum_pi.text import TextFeatureInput

POSITIVE_RGB = (22, 163, 74)
NEGATIVE_RGB = (220, 38, 38)
FIXED_RGB = (107, 114, 128)
MIN_SHADE = 0.08
MAX_SHADE = 0.75
#: A terminal explanation with more features, or more characters of text, than
#: these shows a ranked table of its strongest features instead of the text.
TERMINAL_MAX_FEATURES = 20
TERMINAL_MAX_TEXT_CHARS = 2000

TARGET_TYPE_WORDS = {"prob": "P({})", "logit": "logit({})", "log_prob": "log P({})"}

Results = Union[Sequence[ClassifierAttributionResult], Mapping[str, ClassifierAttributionResult]]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #111827; background: #ffffff; }
h1 { font-size: 20px; margin: 0 0 12px 0; }
.summary { margin: 0 0 12px 0; font-size: 15px; }
.summary .label { font-weight: 600; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 13px; margin: 8px 0 14px 0; }
.legend .bar { width: 220px; height: 14px; border: 1px solid #d1d5db;
               background: linear-gradient(to right, rgba(220,38,38,0.75), rgba(255,255,255,1),
                                           rgba(22,163,74,0.75)); }
.legend .caption { color: #4b5563; }
.text { white-space: pre-wrap; line-height: 1.9; font-size: 16px; border: 1px solid #e5e7eb;
        border-radius: 6px; padding: 12px 14px; }
.feature { border-radius: 3px; padding: 1px 0; color: #111827; }
.fixed { color: #6b7280; font-style: italic; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.panel h2 { font-size: 16px; margin: 0 0 6px 0; }
"""


def shade(value: float, scale: float) -> Tuple[str, float]:
    r"""
    Sign class and opacity of one attribution: ``("positive" | "negative" |
    "zero", alpha)`` with ``alpha`` growing linearly with ``|value| / scale`` from
    ``MIN_SHADE`` to ``MAX_SHADE`` (0 for a zero attribution).
    """
    if scale <= 0 or value == 0:
        return "zero", 0.0
    strength = min(abs(value) / scale, 1.0)
    return ("positive" if value > 0 else "negative"), MIN_SHADE + (MAX_SHADE - MIN_SHADE) * strength


def _scale(values: Sequence[float]) -> float:
    finite = [abs(v) for v in values if v == v]
    return max(finite) if finite else 0.0


def feature_pieces(view: TextFeatureInput, show_fixed: bool = True) -> List[Tuple[str, Optional[int]]]:
    r"""The text of ``view`` cut into ``(text, feature index or None)`` pieces in
    reading order; pieces outside the features are fixed text or whitespace.
    Without ``show_fixed``, the fixed text before the first and after the last
    feature is left out."""
    text = view.text
    pieces: List[Tuple[str, Optional[int]]] = []
    position = 0
    for index, (start, end) in sorted(enumerate(view.spans), key=lambda item: item[1]):
        start = max(start, position)
        if end <= start:
            continue
        if start > position:
            pieces.append((text[position:start], None))
        pieces.append((text[start:end], index))
        position = end
    if position < len(text):
        pieces.append((text[position:], None))
    if not show_fixed:
        while pieces and pieces[0][1] is None:
            pieces.pop(0)
        while pieces and pieces[-1][1] is None:
            pieces.pop()
    return pieces


def _explained(result: ClassifierAttributionResult) -> str:
    return TARGET_TYPE_WORDS.get(result.target_type, "{}").format(result.target_label)


def _summary_html(result: ClassifierAttributionResult, with_method: bool) -> str:
    esc = html.escape
    probability = float(result.probabilities[result.predicted])
    parts = [
        f'Predicted class: <span class="label predicted">{esc(result.predicted_label)}</span> '
        f'(probability <span class="probability">{probability:.3f}</span>)',
        f'explained: <span class="label explained">{esc(_explained(result))}</span>'
        + ("" if result.target == result.predicted else
           f" (probability {float(result.probabilities[result.target]):.3f})"),
        f"level: {esc(result.features.level)}",
    ]
    if with_method:
        parts.append(f'method: <span class="label method">{esc(result.method)}</span>')
    masking = getattr(result, "masking", None)
    if masking is not None:
        parts.append(f"masking: {esc(masking)}")
    return '<p class="summary">' + " &middot; ".join(parts) + "</p>"


def _masking_note(result: ClassifierAttributionResult) -> str:
    masking = getattr(result, "masking", None)
    return "" if masking is None else f" | masking: {masking}"


def _legend_html(result: ClassifierAttributionResult, scale: float, caption: bool = True) -> str:
    return (
        '<div class="legend">'
        f'<span class="min">&minus;{scale:.3g}</span><span class="bar"></span>'
        f'<span class="max">+{scale:.3g}</span>'
        + (_caption_html(result) if caption else "")
        + "</div>"
    )


def _caption_html(result: ClassifierAttributionResult) -> str:
    target = html.escape(_explained(result))
    return (
        f'<span class="caption">green raises {target}, red lowers it; shade &prop; '
        "|attribution| / largest |attribution|; grey italics: fixed text, not attributed</span>"
    )


def _text_html(result: ClassifierAttributionResult, scale: float, show_fixed: bool = True) -> str:
    esc = html.escape
    values = result.feature_attr.tolist()
    out = []
    for text, index in feature_pieces(result.features, show_fixed):
        if index is None:
            out.append(_fixed_html(text))
            continue
        value = values[index]
        sign, alpha = shade(value, scale)
        rgb = POSITIVE_RGB if sign == "positive" else NEGATIVE_RGB
        out.append(
            f'<span class="feature {sign}" data-feature="{index}" data-attribution="{value:.6g}" '
            f'title="{esc(f"feature {index}: {value:+.4g}")}" '
            f'style="background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.3f})">{esc(text)}</span>'
        )
    return '<div class="text">' + "".join(out) + "</div>"


def _fixed_html(text: str) -> str:
    if text.strip() == "":
        return html.escape(text)
    return f'<span class="fixed">{html.escape(text)}</span>'


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def attribution_html(
    result: ClassifierAttributionResult, title: Optional[str] = None, show_fixed: bool = True
) -> str:
    r"""
    One explanation as a self-contained HTML page: the text with each feature
    highlighted (green positive, red negative, shade by ``|phi| / max |phi|``), a
    legend, the predicted class and its probability.

    Args:
        result (ClassifierAttributionResult): From
                    :meth:`~captum_pi.llm_attr.LLMClassifierAttribution.attribute`.
        title (str, optional): Page title. Default: None (the method's name)
        show_fixed (bool, optional): Show the fixed text before the first and after
                    the last feature (a prompt, in grey italics). Default: True

    Returns:
        str: The HTML page.

    Examples::

        >>> Path("explanation.html").write_text(attribution_html(result), encoding="utf-8")
    """
    _check_result(result)
    scale = _scale(result.feature_attr.tolist())
    body = (
        _summary_html(result, with_method=True)
        + _legend_html(result, scale)
        + _text_html(result, scale, show_fixed)
    )
    return _page(title or f"{result.method} attributions", body)


def comparison_html(results: Results, title: Optional[str] = None, show_fixed: bool = True) -> str:
    r"""
    Several methods' explanations of one input side by side in one HTML page; each
    panel is shaded by its own largest magnitude (methods differ in scale).

    Args:
        results (list or dict): :class:`ClassifierAttributionResult` objects of the
                    same text, or a dict from panel name to result (the name
                    replaces the method name).
        title (str, optional): Page title. Default: "Attributions compared"
        show_fixed (bool, optional): Show the fixed text before the first and after
                    the last feature. Default: True

    Returns:
        str: The HTML page.
    """
    named = list(results.items()) if isinstance(results, Mapping) else [(r.method, r) for r in results]
    if not named:
        raise ValueError("results is empty: pass at least one attribution result.")
    for _, result in named:
        _check_result(result)
    first = named[0][1]
    for name, result in named[1:]:
        if result.features.text != first.features.text or result.target != first.target:
            raise ValueError(
                f"All results must explain the same text and class; {name!r} differs from "
                f"{named[0][0]!r}."
            )
    panels = []
    for name, result in named:
        scale = _scale(result.feature_attr.tolist())
        panels.append(
            f'<section class="panel"><h2>{html.escape(str(name))}</h2>'
            + _legend_html(result, scale, caption=False)
            + _text_html(result, scale, show_fixed)
            + "</section>"
        )
    body = (
        _summary_html(first, with_method=False)
        + f'<div class="legend">{_caption_html(first)}</div>'
        + '<div class="grid">'
        + "".join(panels)
        + "</div>"
    )
    return _page(title or "Attributions compared", body)


def _check_result(result: object) -> None:
    if not isinstance(result, ClassifierAttributionResult):
        raise TypeError(
            "expected a ClassifierAttributionResult from LLMClassifierAttribution.attribute, "
            f"got {type(result).__name__}."
        )


def _ansi_background(sign: str, alpha: float) -> str:
    rgb = POSITIVE_RGB if sign == "positive" else NEGATIVE_RGB
    mixed = [round(255 * (1 - alpha) + channel * alpha) for channel in rgb]
    return f"\x1b[30;48;2;{mixed[0]};{mixed[1]};{mixed[2]}m"


def terminal_text(
    result: ClassifierAttributionResult,
    color: bool = True,
    top_k: int = 5,
    show_fixed: bool = True,
    max_features: Optional[int] = TERMINAL_MAX_FEATURES,
    max_text_chars: Optional[int] = TERMINAL_MAX_TEXT_CHARS,
) -> str:
    r"""
    The explanation for a terminal. A short explanation shows a summary line,
    the text with every feature in brackets followed by its signed attribution
    (``[great +0.213]``), on a green or red background shaded by strength when
    ``color``, and the ``top_k`` features by magnitude.

    A long one (more than ``max_features`` features, or more than
    ``max_text_chars`` characters of text) shows, instead of the text, a table of
    its ``max_features`` strongest features by ``|attribution|``, ranked, each
    with its position in reading order, and a last line saying how many it left
    out. The JSON and HTML outputs keep every feature.

    Args:
        result (ClassifierAttributionResult): The explanation.
        color (bool, optional): Use ANSI 24-bit background colours. Default: True
        top_k (int, optional): Number of strongest features listed under a short
                    text. Default: 5
        show_fixed (bool, optional): Show the fixed text before the first and after
                    the last feature. Default: True
        max_features (int, optional): Most features shown; beyond it the text is
                    replaced by the ranked table. None shows all. Default: 20
        max_text_chars (int, optional): Longest text shown inline; a longer one is
                    replaced by the ranked table. None has no limit. Default: 2000

    Returns:
        str: Lines of text (no trailing newline).
    """
    _check_result(result)
    _check_limit(max_features, "max_features")
    _check_limit(max_text_chars, "max_text_chars")
    values = result.feature_attr.tolist()
    pieces = feature_pieces(result.features, show_fixed)
    probability = float(result.probabilities[result.predicted])
    lines = [
        f"Predicted: {result.predicted_label} (probability {probability:.3f}) | explained: "
        f"{_explained(result)} | method: {result.method} | level: {result.features.level}"
        + _masking_note(result),
    ]
    n_chars = sum(len(text) for text, _ in pieces)
    too_many = max_features is not None and len(values) > max_features
    too_long = max_text_chars is not None and n_chars > max_text_chars
    if too_many or too_long:
        shown = len(values) if max_features is None else min(max_features, len(values))
        return "\n".join(lines + _ranked_table(result, values, shown, n_chars, color))
    lines += [
        "Attributions: [feature +value] raises, [feature -value] lowers the explained value.",
        "",
        _inline_text(pieces, values, color),
    ]
    order = _strongest(values)[:top_k]
    if order:
        lines += ["", f"Strongest {len(order)} of {len(values)} features:"]
        lines += [f"  {values[i]:+.4f}  {_one_line(result.features.values[i])}" for i in order]
    return "\n".join(lines)


def _check_limit(limit: Optional[int], name: str) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"{name} must be a positive int or None, got {limit!r}.")


def _strongest(values: Sequence[float]) -> List[int]:
    r"""Feature indices by decreasing ``|attribution|`` (reading order among ties)."""
    return sorted(range(len(values)), key=lambda i: -abs(values[i]))


def _coloured(text: str, value: float, scale: float, color: bool) -> str:
    sign, alpha = shade(value, scale)
    if not color or sign == "zero":
        return text
    return _ansi_background(sign, alpha) + text + "\x1b[0m"


def _inline_text(pieces: Sequence[Tuple[str, Optional[int]]], values: Sequence[float], color: bool) -> str:
    scale = _scale(values)
    body = []
    for text, index in pieces:
        if index is None:
            body.append(text)
        else:
            body.append(_coloured(f"[{text} {values[index]:+.3g}]", values[index], scale, color))
    return "".join(body).strip("\n")


def _ranked_table(
    result: ClassifierAttributionResult, values: Sequence[float], shown: int, n_chars: int, color: bool
) -> List[str]:
    r"""The ``shown`` strongest features as ranked table rows, and the line saying
    how many were left out."""
    n = len(values)
    order = _strongest(values)
    scale = _scale(values)
    level = result.features.level
    width = max(len("position"), 2 * len(str(n)) + 1)
    lines = [
        f"The text ({n} {level} features, {n_chars:,} characters) is too long to show; "
        f"its {shown} strongest features by |attribution| (+ raises, - lowers the explained value):",
        "",
        f"  {'rank':>4}  {'attribution':>11}  {'position':>{width}}  {level}",
    ]
    for rank, index in enumerate(order[:shown], start=1):
        position = f"{index + 1}/{n}"
        feature = _coloured(_one_line(result.features.values[index]), values[index], scale, color)
        lines.append(f"  {rank:>4}  {values[index]:>+11.4f}  {position:>{width}}  {feature}")
    left_out = n - shown
    if left_out:
        weakest = abs(values[order[shown]])
        lines += [
            "",
            f"  ... {left_out} more features not shown (|attribution| <= {weakest:.4g}); "
            "the JSON and HTML outputs hold all of them.",
        ]
    return lines


def _one_line(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
