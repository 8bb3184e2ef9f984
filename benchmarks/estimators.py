r"""
The leaderboard of Shapley estimators per model call, on exact games: every
estimator (MP-PI, Captum's Kernel SHAP, Shapley Value Sampling and LIME, and shapiq's
approximators) is run at budgets of B = 1n ... 16n model rows on the deletion or the
replacement game of test reviews, whose every coalition was evaluated once by
benchmarks/game_tables.py, and compared with the exact Shapley values.

Each estimator sees the game through the interface it has on a real model: MP-PI and
the Captum adapters call a causal "table model", shapiq's approximators call the game
on coalition matrices. Under deletion the table model's prediction at each position
is the game value of the features read so far (the deletion game is exactly this, by
causality, so every estimator gets the values it would get from the LLM, to float
rounding). Under replacement it replays what the LLM predicted at each feature's last
token in the row of the coalition read so far (the table's ``reads``): MP-PI then
reads the same approximate intermediate predictions it would read from the LLM. Rows are
counted where the model would be called. Every method gets at most B rows; MP-PI,
Kernel SHAP, LIME and shapiq's estimators exactly B; Shapley Value Sampling the most
permutations that fit (2 + m (n - 1) rows; n + 1 at B = n).

    python benchmarks/game_tables.py --model smollm2 --level sentence --limit 20
    python benchmarks/estimators.py --games smollm2-binary-sentence-delete --seeds 3

Writes <games>.md (the leaderboard), <games>.png (error against budget) and
<games>.json (every estimate's error, for the paired comparisons of
benchmarks/summary.py) under --out.
"""
import argparse
import glob
import json
import os
import sys
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from captum_pi import feature_attributions  # noqa: E402
from captum_pi.metrics import shapley_from_game  # noqa: E402
from captum_pi.metrics.plots import method_color  # noqa: E402
from captum_pi.registry import METHODS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BOS = 1
MASK_ID = 0  #: the token of a masked feature under replacement
ERROR_FLOOR = 1e-3  # the plot shows smaller errors (exact values, float rounding) at this line


class TableGameModel(torch.nn.Module):
    r"""
    A causal classifier that replays a game table; class 0's logit carries the value.
    Token ``2 + i`` is feature ``i``, ``BOS`` is fixed and any other token is a masked
    feature. Without ``reads`` (deletion) the prediction at position ``t`` is
    ``game[code]``, ``code`` the bits of the features among the first ``t + 1`` tokens.
    With ``reads`` (replacement, one token per feature, so position ``t >= 1`` holds
    feature ``t - 1``) it is ``reads[code, t - 1]``, and ``game[0]`` at ``BOS``.
    Counts the rows it is asked for.
    """

    def __init__(self, game: np.ndarray, reads: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.game = torch.from_numpy(np.asarray(game, dtype=np.float64))
        self.reads = None if reads is None else torch.from_numpy(np.asarray(reads, dtype=np.float64))
        self.rows = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor = None) -> torch.Tensor:
        self.rows += int(input_ids.shape[0])
        features = input_ids - 2
        bits = torch.where(features >= 0, 2 ** features.clamp(min=0), torch.zeros_like(features))
        if attention_mask is not None:
            bits = bits * attention_mask
        codes = bits.cumsum(dim=1)
        logits = torch.zeros(*input_ids.shape, 2, dtype=torch.float64)
        if self.reads is None:
            logits[..., 0] = self.game[codes]
        else:
            feature = (torch.arange(input_ids.shape[1]) - 1).clamp(min=0, max=self.reads.shape[1] - 1)
            logits[..., 0] = self.reads[codes, feature.expand_as(codes)]
            logits[:, 0, 0] = self.game[0]
        return logits


def table_inputs(n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[BOS] + [2 + i for i in range(n)]])
    features = torch.tensor([[-1] + list(range(n))])
    return ids, features


def svs_permutations(budget: int, n: int) -> int:
    return max(1, (budget - 2) // (n - 1))


def captum_pi_estimator(name: str, **preset) -> Callable:
    def estimate(table: dict, n: int, budget: int, seed: int) -> Tuple[np.ndarray, int]:
        masking = table_masking(table)
        model = TableGameModel(table["game"], table["reads"] if masking == "replace" else None)
        ids, features = table_inputs(n)
        spec = METHODS[name]
        n_samples = svs_permutations(budget, n) if name == "shapley-value-sampling" else budget
        method = spec.build(model)
        rows_before = model.rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = method.attribute(ids, target=0, feature_mask=features, target_type="logit",
                                    n_samples=n_samples, seed=seed, masking=masking,
                                    baselines=MASK_ID if masking == "replace" else None, **preset)
        return feature_attributions(attr.double(), features)[0].numpy(), model.rows - rows_before

    return estimate


def shapiq_estimator(cls_name: str, **options) -> Callable:
    def estimate(table: dict, n: int, budget: int, seed: int) -> Tuple[np.ndarray, int]:
        import shapiq.approximator as approximators

        game = table["game"]
        calls = {"rows": 0}
        weights = 2 ** np.arange(n)

        def value(coalitions: np.ndarray) -> np.ndarray:
            coalitions = np.atleast_2d(np.asarray(coalitions, dtype=np.int64))
            calls["rows"] += int(coalitions.shape[0])
            return game[coalitions @ weights]

        approximator = getattr(approximators, cls_name)(n=n, random_state=seed, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = approximator.approximate(budget=budget, game=value)
        phi = np.array([result[(i,)] for i in range(n)])
        return phi, calls["rows"]

    return estimate


ESTIMATORS: Dict[str, Callable] = {
    "MP-PI": captum_pi_estimator("mp-pi"),
    "MP-PI, paper's weighting": captum_pi_estimator("mp-pi", weighting="coalition"),
    "Kernel SHAP (Captum)": captum_pi_estimator("kernel-shap"),
    "Shapley Value Sampling (Captum)": captum_pi_estimator("shapley-value-sampling"),
    "LIME (Captum, ridge)": captum_pi_estimator("lime"),
    "Kernel SHAP (shapiq)": shapiq_estimator("KernelSHAP"),
    "Kernel SHAP, paired (shapiq)": shapiq_estimator("KernelSHAP", pairing_trick=True),
    "Unbiased Kernel SHAP (shapiq)": shapiq_estimator("UnbiasedKernelSHAP"),
    "Permutation sampling (shapiq)": shapiq_estimator("PermutationSamplingSV"),
    "SVARM (shapiq)": shapiq_estimator("SVARM"),
    "Stratified sampling (shapiq)": shapiq_estimator("StratifiedSamplingSV"),
    "Owen sampling (shapiq)": shapiq_estimator("OwenSamplingSV"),
    "k-additive SHAP (shapiq)": shapiq_estimator("kADDSHAP"),
}


def load_games(key: str) -> List[dict]:
    paths = sorted(glob.glob(os.path.join(HERE, "cache", "games", key, "*.npz")))
    tables = [dict(np.load(path)) for path in paths]
    for table in tables:
        table.setdefault("masking", np.array(key.rsplit("-", 1)[-1]))  # tables written before it was stored
    return tables


def table_masking(table: dict) -> str:
    r"""The masking game of a game table; a replacement table must hold the ``reads``
    MP-PI replays (tables written by game_tables.py before they were stored do not)."""
    masking = str(table["masking"])
    if masking not in ("delete", "replace"):
        raise ValueError(f"unknown masking game {masking!r} in a game table.")
    if masking == "replace" and "reads" not in table:
        raise ValueError("a replacement game table without 'reads': rerun benchmarks/game_tables.py "
                         "--masking replace to rewrite it.")
    return masking


def agreement(phi: np.ndarray, exact: np.ndarray) -> Tuple[float, float]:
    cosine = float(phi @ exact / (np.linalg.norm(phi) * np.linalg.norm(exact) + 1e-300))
    return cosine, float(np.linalg.norm(phi - exact) / (np.linalg.norm(exact) + 1e-300))


def run(games: List[dict], names: List[str], multiples: List[int], seeds: int) -> List[dict]:
    from tqdm import tqdm

    records = []
    total = len(games) * len(names) * len(multiples) * seeds
    with tqdm(total=total, desc="estimates") as bar:
        for game_index, table in enumerate(games):
            n = int(table["n"])
            exact = shapley_from_game(table["game"])
            review = int(table["index"]) if "index" in table else game_index
            for name in names:
                for multiple in multiples:
                    for seed in range(seeds):
                        phi, rows = ESTIMATORS[name](table, n, multiple * n, seed)
                        cosine, relative = agreement(phi, exact)
                        records.append({"method": name, "multiple": multiple, "n": n, "game": game_index,
                                        "review": review, "seed": seed, "rows": rows, "cosine": cosine,
                                        "relative_l2": relative})
                        bar.update(1)
    return records


def table(records: List[dict], names: List[str], multiples: List[int]) -> List[str]:
    lines = ["| method | " + " | ".join(f"{m}n" for m in multiples) + " | first 0.95 |",
             "|---|" + "---|" * (len(multiples) + 1)]
    for name in names:
        cells, first = [], None
        for multiple in multiples:
            subset = [r for r in records if r["method"] == name and r["multiple"] == multiple]
            cosine = np.mean([r["cosine"] for r in subset])
            relative = np.median([r["relative_l2"] for r in subset])
            rows = np.mean([r["rows"] / r["n"] for r in subset])
            cells.append(f"{cosine:.3f} ({relative:.2f}; {rows:.1f}n)")
            if first is None and cosine >= 0.95:
                first = f"{multiple}n"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {first or '> ' + str(multiples[-1]) + 'n'} |")
    return lines


def plot(records: List[dict], names: List[str], multiples: List[int], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(10, 4.8))
    for index, name in enumerate(names):
        medians = [np.median([r["relative_l2"] for r in records if r["method"] == name and r["multiple"] == m])
                   for m in multiples]
        ax.plot(multiples, np.maximum(medians, ERROR_FLOOR), marker="o", label=name,
                color=method_color(index),
                linewidth=2.5 if name.startswith("MP-PI") else 1,
                linestyle="--" if "shapiq" in name else "-")
    ax.axhline(ERROR_FLOOR, color="grey", linestyle=":", linewidth=1)
    ax.text(multiples[0], ERROR_FLOOR * 1.15, "exact (error below 1e-3, float rounding)", fontsize=7, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(multiples, [f"{m}n" for m in multiples])
    ax.set_xlabel("budget B (model rows)")
    ax.set_ylabel("median relative L2 error to exact Shapley values")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="smollm2-binary-sentence-delete",
                        help="a directory under benchmarks/cache/games/ (written by game_tables.py)")
    parser.add_argument("--methods", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS), metavar="M")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "estimators"))
    args = parser.parse_args()
    games = load_games(args.games)
    if not games:
        parser.error(f"no game tables under benchmarks/cache/games/{args.games}; run game_tables.py first.")
    records = run(games, args.methods, args.multiples, args.seeds)
    os.makedirs(args.out, exist_ok=True)
    sizes = sorted(int(g["n"]) for g in games)
    lines = [f"# Shapley estimators per model row: {args.games}", "",
             f"Command: `python benchmarks/estimators.py {' '.join(sys.argv[1:])}`  ",
             f"{len(games)} reviews with n = {sizes} features, {args.seeds} seeds. Cells: mean cosine to the "
             "exact Shapley values (median relative L2 error; rows requested / n).", ""]
    lines += table(records, args.methods, args.multiples)
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, args.games + ".md"), "w") as handle:
        handle.write(text + "\n")
    with open(os.path.join(args.out, args.games + ".json"), "w") as handle:
        json.dump({"games": args.games, "command": f"python benchmarks/estimators.py {' '.join(sys.argv[1:])}",
                   "seeds": args.seeds, "records": records}, handle)
    plot(records, args.methods, args.multiples, os.path.join(args.out, args.games + ".png"), args.games)


if __name__ == "__main__":
    main()
