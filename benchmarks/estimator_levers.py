r"""
Which parts of MP-PI's default estimator (``weighting="kernel"``) make it the best per
model call: an ablation on the exact games of benchmarks/game_tables.py, adding one
lever at a time, and two levers that were tried and dropped.

Every variant reads a pass's intermediate values from the game table (a pass on
coalition A yields v(A ∩ {1..k}) at each active k, exactly as under deletion), gets
f(∅) from the prefix, and runs B - 1 sampled passes besides the unmasked one.

    python benchmarks/estimator_levers.py --games smollm2-binary-sentence-delete --seeds 3
"""
import argparse
import os
import sys
from typing import Callable, Dict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from estimators import agreement, load_games, table_masking  # noqa: E402

from captum_pi._core.mask_distribution import border_passes, mask_distribution  # noqa: E402
from captum_pi._core.multi_pass import (  # noqa: E402
    _fit_with_rank,
    _kernel_passes,
    _kernel_shrinkages,
    distinct_coalitions,
    pool_coalitions,
)
from captum_pi.metrics import shapley_from_game  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def chain_values(game: np.ndarray, passes: np.ndarray) -> np.ndarray:
    n = passes.shape[1]
    return game[np.cumsum(passes * (1 << np.arange(n)), axis=1)]


def fit_distinct(game: np.ndarray, passes: np.ndarray, ridge: str) -> np.ndarray:
    n = passes.shape[1]
    every = np.vstack([passes, np.ones((1, n), dtype=bool)])  # with the unmasked pass's prefixes
    data = distinct_coalitions(every, chain_values(game, every))
    distribution = mask_distribution(n)
    if ridge == "loo":
        shrinkages = _kernel_shrinkages(data, distribution)
    elif ridge == "fixed":
        shrinkages = (2.0 * _kernel_shrinkages(data, distribution)[3],)  # 2 units, no choice
    else:
        shrinkages = (0.0,)
    return _fit_with_rank(data, game[-1], game[0], shrinkages)[0]


def paper(game, n, budget, rng):
    distribution = mask_distribution(n)
    passes = distribution.sample(rng, budget - 1)
    data = pool_coalitions(passes, chain_values(game, passes), distribution, "coalition")
    return _fit_with_rank(data, game[-1], game[0])[0]


def distinct(game, n, budget, rng):
    return fit_distinct(game, mask_distribution(n).sample_distinct(rng, budget - 1), "none")


def distinct_border(game, n, budget, rng):
    return fit_distinct(game, _kernel_passes(mask_distribution(n), rng, budget - 1), "none")


def final(game, n, budget, rng):
    return fit_distinct(game, _kernel_passes(mask_distribution(n), rng, budget - 1), "loo")


def fixed_ridge(game, n, budget, rng):
    return fit_distinct(game, _kernel_passes(mask_distribution(n), rng, budget - 1), "fixed")


def paired(game, n, budget, rng):
    half = mask_distribution(n).sample_distinct(rng, (budget - 1 + 1) // 2)
    complements = ~half
    complements[:, -1] = True
    passes = np.unique(np.vstack([half, complements[~complements.all(axis=1)]]), axis=0)[: budget - 1]
    return fit_distinct(game, passes, "loo")


def first_layer_only(game, n, budget, rng):
    border = border_passes(n)[: budget - 1]
    rest = mask_distribution(n).sample_distinct(rng, budget - 1 - len(border), exclude=border)
    return fit_distinct(game, np.vstack([border, rest]), "loo")


VARIANTS: Dict[str, Callable] = {
    "paper (i.i.d. P', importance weights)": paper,
    "+ distinct passes, each coalition once, Kernel SHAP weights": distinct,
    "+ border passes (layer 1, then whole layers)": distinct_border,
    "+ ridge chosen by leave-one-out (the default)": final,
    "default, border layer 1 only": first_layer_only,
    "tried: default with a fixed ridge": fixed_ridge,
    "tried: distinct + complementary (paired) passes, LOO ridge": paired,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="smollm2-binary-sentence-delete")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "estimators"))
    args = parser.parse_args()
    games = load_games(args.games)
    if any(table_masking(table) != "delete" for table in games):
        parser.error("the levers read a pass's intermediate values from the game, which only the "
                     "deletion game gives; pass a -delete game folder.")
    lines = [f"# MP-PI's levers, one at a time: {args.games}", "",
             f"Command: `python benchmarks/estimator_levers.py {' '.join(sys.argv[1:])}`  ",
             f"{len(games)} games, n = {sorted(int(g['n']) for g in games)}, {args.seeds} seeds; "
             "mean cosine to the exact Shapley values (median relative L2 error).", "",
             "| variant | " + " | ".join(f"{m}n" for m in args.multiples) + " |",
             "|---|" + "---|" * len(args.multiples)]
    for name, variant in VARIANTS.items():
        cells = []
        for multiple in args.multiples:
            scores = []
            for table in games:
                game, n = table["game"], int(table["n"])
                exact = shapley_from_game(game)
                for seed in range(args.seeds):
                    phi = variant(game, n, multiple * n, np.random.default_rng(seed))
                    scores.append(agreement(phi, exact))
            cosines, errors = zip(*scores)
            cells.append(f"{np.mean(cosines):.3f} ({np.median(errors):.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"levers-{args.games}.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
