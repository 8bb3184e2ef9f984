r"""
Feature interactions on LLM classifiers, with shapiq (``pip install "captum-pi[shapiq]"``).

- :mod:`~captum_pi.interactions.game`: :class:`TextGame`, one text explanation as a
  :class:`shapiq.Game` with our masking games, so SPEX, ProxySPEX, shapiq's
  regression and sampling approximators and :class:`shapiq.ExactComputer` run on a
  classifier; :class:`TableGame`, the same over a table of every coalition's value.
- :mod:`~captum_pi.interactions.progressive`: :func:`progressive_interactions`,
  Faith-Shap interactions fitted on the coalitions MP-PI's passes reveal.
- :mod:`~captum_pi.interactions.view`: the strongest interactions of a text as a
  list (:func:`interaction_text`) and as an HTML page (:func:`interaction_html`).

Everything returns or reads shapiq's own :class:`shapiq.InteractionValues`, so
shapiq's plots work unchanged. Importing this package imports shapiq (an
ImportError says how to install it); ``import captum_pi`` does not.

Examples::

    >>> import shapiq
    >>> from captum_pi.interactions import TextGame, progressive_interactions, interaction_text
    >>> inp = TextFeatureInput(review, bundle.tokenizer, level="sentence",
    >>>                        template=bundle.prefix + "{}")
    >>> fsii = progressive_interactions(TextGame.from_input(bundle.model, inp), seed=0)
    >>> exact = shapiq.ExactComputer(TextGame.from_input(bundle.model, inp))("FSII", 2)
    >>> print(interaction_text(fsii, inp, k=3))
"""
from captum_pi.interactions.game import (
    SHAPIQ_INSTALL,
    PassGame,
    TableGame,
    TextGame,
    plan_passes,
)
from captum_pi.interactions.progressive import (
    interaction_basis,
    progressive_interactions,
)
from captum_pi.interactions.view import (
    interaction_html,
    interaction_text,
    top_interactions,
)

__all__ = [
    "SHAPIQ_INSTALL",
    "PassGame",
    "TableGame",
    "TextGame",
    "interaction_basis",
    "interaction_html",
    "interaction_text",
    "plan_passes",
    "progressive_interactions",
    "top_interactions",
]
