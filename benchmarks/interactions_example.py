r"""
The strongest sentence interactions of one review on the shipped classifier, from
Progressive Inference at MP-PI's budget (2n model rows) and exactly (2^(n-1) rows,
shapiq's ExactComputer on the same game), printed as a list and written as an HTML
page (benchmarks/results/interactions/example.html; the list, the command and the
machine in example.md beside it).

    python benchmarks/interactions_example.py
"""
import os
import sys

import shapiq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

from captum_pi.interactions import (  # noqa: E402
    TextGame,
    interaction_html,
    interaction_text,
    progressive_interactions,
)
from captum_pi.models import load_default_classifier  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "interactions")
TEXT = ("This medicine worked wonders for my back pain. The nausea was awful though. "
        "It went away after a week. I would still not take it again. My doctor agreed.")


def main() -> None:
    bundle = load_default_classifier()
    text = " ".join(sys.argv[1:]) or TEXT
    inp = TextFeatureInput(text, bundle.tokenizer, level="sentence", template=bundle.prefix + "{}")
    n = inp.n_itp_features

    game = TextGame.from_input(bundle.model, inp)  # explains the predicted class, P(class)
    fsii = progressive_interactions(game, n_samples=2 * n, seed=0)
    label = bundle.label_names[game.target]
    exact_game = TextGame.from_input(bundle.model, inp, target=game.target)
    exact = shapiq.ExactComputer(exact_game)("FSII", 2)
    command = "python benchmarks/interactions_example.py " + " ".join(sys.argv[1:])
    lines = [
        "# The strongest sentence interactions of one review", "",
        f"Command: `{command.strip()}`  ", f"Machine: {machine()}", "",
        f"P({label}) = {game.full_value:.3f} on the full review. PI at 2n = {game.n_rows} model rows:", "",
        "```", interaction_text(fsii, inp, k=3), "```", "",
        f"Exact (shapiq's ExactComputer on the same game, {exact_game.n_rows} model rows):", "",
        "```", interaction_text(exact, inp, k=3), "```", "",
        "The HTML view of PI's: example.html.",
    ]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "example.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "example.html"), "w", encoding="utf-8") as handle:
        handle.write(interaction_html(fsii, inp, k=3, caption=f"P({label}); PI at {game.n_rows} model rows; "
                                      f"written by {command.strip()}"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
