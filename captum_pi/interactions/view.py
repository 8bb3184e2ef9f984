r"""
The strongest interactions of one text: a ranked list (:func:`top_interactions`,
:func:`interaction_text`) and an HTML page with, for each interaction, the text and
its features highlighted together (:func:`interaction_html`), green when together
they raise the explained value more than their separate effects (synergy), red when
less (redundancy), shaded by ``|value|`` over the largest one shown.

Any :class:`shapiq.InteractionValues` works: ours from
:func:`~captum_pi.interactions.progressive_interactions`, SPEX's, ProxySPEX's or
:class:`shapiq.ExactComputer`'s. Text is escaped and the page holds no script, as in
:mod:`captum_pi.visualization`, whose colours and page it shares.
"""
import html
from typing import List, Optional, Sequence, Tuple, Union

from captum_pi.text import TextFeatureInput
from captum_pi.visualization import (
    NEGATIVE_RGB,
    POSITIVE_RGB,
    _fixed_html,
    _one_line,
    _page,
    feature_pieces,
    shade,
)

Names = Union[TextFeatureInput, Sequence[str], None]


def top_interactions(values: object, k: int = 5, order: int = 2) -> List[Tuple[Tuple[int, ...], float]]:
    r"""
    The ``k`` interactions of exactly ``order`` features with the largest
    ``|value|``, strongest first (reading order among ties).

    Args:
        values (shapiq.InteractionValues): The interactions.
        k (int, optional): How many. Default: 5
        order (int, optional): Interaction size. Default: 2

    Returns:
        list of ``(features, value)``, ``features`` a sorted tuple of indices.

    Examples::

        >>> top_interactions(fsii, k=2)
        [((1, 3), -0.081), ((0, 1), 0.024)]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    entries = [
        (tuple(sorted(int(i) for i in interaction)), float(values[interaction]))
        for interaction in values.interaction_lookup
        if len(interaction) == order
    ]
    entries.sort(key=lambda entry: (-abs(entry[1]), entry[0]))
    return entries[:k]


def _names(features: Names, n_players: int) -> List[str]:
    if features is None:
        return [f"feature {i}" for i in range(n_players)]
    names = list(features.values) if isinstance(features, TextFeatureInput) else [str(f) for f in features]
    if len(names) != n_players:
        raise ValueError(f"features name {len(names)} features; the interactions have {n_players} players.")
    return names


def _cost(values: object) -> str:
    budget = getattr(values, "estimation_budget", None)
    exactness = "estimated" if getattr(values, "estimated", True) else "exact"
    return exactness + ("" if budget is None else f", budget {budget}")


def interaction_text(values: object, features: Names = None, k: int = 5, order: int = 2) -> str:
    r"""
    The ``k`` strongest interactions of ``order`` features as lines of text, each
    with its signed value and the features' positions (1-based) and texts.

    Args:
        values (shapiq.InteractionValues): The interactions.
        features (TextFeatureInput or list of str, optional): Names of the
                    features. Default: None ("feature i")
        k (int, optional): How many. Default: 5
        order (int, optional): Interaction size. Default: 2

    Returns:
        str: Lines (no trailing newline).

    Examples::

        >>> print(interaction_text(fsii, inp, k=1))
        Strongest 1 of 15 interactions of 2 features (FSII, estimated, budget 12); + synergy, - redundancy:
          -0.0810  [2] "The nausea was awful." x [4] "I stopped after a week."
    """
    names = _names(features, values.n_players)
    top = top_interactions(values, k, order)
    n_terms = sum(1 for interaction in values.interaction_lookup if len(interaction) == order)
    lines = [
        f"Strongest {len(top)} of {n_terms} interactions of {order} features ({values.index}, "
        f"{_cost(values)}); + synergy, - redundancy:"
    ]
    for interaction, value in top:
        described = " x ".join(f'[{i + 1}] "{_one_line(names[i], 50)}"' for i in interaction)
        lines.append(f"  {value:+.4f}  {described}")
    return "\n".join(lines)


def _highlighted_text(features: TextFeatureInput, interaction: Tuple[int, ...], value: float,
                      scale: float, show_fixed: bool) -> str:
    sign, alpha = shade(value, scale)
    rgb = POSITIVE_RGB if sign == "positive" else NEGATIVE_RGB
    out = []
    for text, index in feature_pieces(features, show_fixed):
        if index is None:
            out.append(_fixed_html(text))
        elif index in interaction:
            out.append(
                f'<span class="feature {sign}" data-feature="{index}" '
                f'style="background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.3f}); '
                f'outline: 2px solid rgb({rgb[0]}, {rgb[1]}, {rgb[2]})">{html.escape(text)}</span>'
            )
        else:
            out.append(f'<span class="feature" data-feature="{index}">{html.escape(text)}</span>')
    return '<div class="text">' + "".join(out) + "</div>"


def interaction_html(
    values: object,
    features: TextFeatureInput,
    k: int = 5,
    order: int = 2,
    title: Optional[str] = None,
    caption: Optional[str] = None,
    show_fixed: bool = True,
) -> str:
    r"""
    The ``k`` strongest interactions of one text as a self-contained HTML page: one
    panel per interaction, strongest first, with the text and the interacting
    features highlighted together.

    Args:
        values (shapiq.InteractionValues): The interactions of ``features``.
        features (TextFeatureInput): The text and its features.
        k (int, optional): How many. Default: 5
        order (int, optional): Interaction size. Default: 2
        title (str, optional): Page title. Default: None ("Strongest interactions")
        caption (str, optional): A line under the title (e.g. the explained
                    class). Default: None
        show_fixed (bool, optional): Show the fixed text (a prompt) in grey.
                    Default: True

    Returns:
        str: The HTML page.

    Examples::

        >>> Path("interactions.html").write_text(interaction_html(fsii, inp), encoding="utf-8")
    """
    if not isinstance(features, TextFeatureInput):
        raise TypeError(f"features must be the TextFeatureInput explained, got {type(features).__name__}.")
    names = _names(features, values.n_players)
    top = top_interactions(values, k, order)
    scale = max((abs(value) for _, value in top), default=0.0)
    esc = html.escape
    summary = (
        f'<p class="summary">{esc(values.index)} interactions of {order} features &middot; '
        f"{values.n_players} {esc(features.level)} features &middot; {esc(_cost(values))}"
        + ("" if caption is None else f" &middot; {esc(caption)}") + "</p>"
        '<div class="legend"><span class="caption">green: together the features raise the '
        "explained value more than their separate effects (synergy); red: less (redundancy); "
        "shade &prop; |interaction| / largest shown; grey italics: fixed text</span></div>"
    )
    panels = []
    for rank, (interaction, value) in enumerate(top, start=1):
        label = " &times; ".join(f"[{i + 1}] {esc(_one_line(names[i], 40))}" for i in interaction)
        panels.append(
            f'<section class="panel" style="margin-bottom: 16px" data-interaction="{" ".join(map(str, interaction))}" '
            f'data-value="{value:.6g}"><h2>#{rank} &nbsp;{value:+.4g} &nbsp; {label}</h2>'
            + _highlighted_text(features, interaction, value, scale, show_fixed)
            + "</section>"
        )
    return _page(title or "Strongest interactions", summary + "".join(panels))
