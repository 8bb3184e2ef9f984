r"""
Benchmark 1: the paper's Tables 2 and 3 on offline LLMs, second edition. Every
registered method on one (model, task, level, masking game), over a fixed, seeded
sample of test reviews, explaining the true class (as the paper does): activation and
inverse activation study AUC with 95 % confidence intervals, ERASER AOPC
comprehensiveness and sufficiency, the cost in forward-pass equivalents, the measured
forward rows and the wall time per explanation.

    python benchmarks/faithfulness.py --model smollm2 --level sentence --limit 30
    python benchmarks/faithfulness.py --model smollm2 smollm2-lora --task binary 3class \
        --level word sentence --masking delete replace --limit 30

**Masking games** (``--masking``, default both; captum_pi._core.masking): under
``delete`` the tokens of inactive features are removed, under ``replace`` they become
the paper's "..." token. Methods that mask (``METHODS[name].masks``: SP-PI, MP-PI,
Kernel SHAP, LIME, Feature Ablation, Shapley Value Sampling, ...) are called with the
game; gradient, attention and random attributions have none (Integrated Gradients'
baseline is the "..." input under both), so they are computed once per review and
reused by the other game's table (with their wall time and rows). The studies and AOPC
always evaluate the attributions in the game of the table, so every method's ranking is
judged by the same masked model outputs.

Several models, tasks, levels and games run one after the other; a (model, task)
whose LoRA adapter is not shipped yet stops the run before any work. Per-review
results are cached as JSON under benchmarks/cache/faithfulness/<model>-<task>-<level>-<game>/
(resumable: rerun the same command to continue; a larger --limit only runs the new
reviews, and a method added with --methods only runs that method; ``--shard 1/2`` and
``--shard 2/2`` in two processes fill one cache on two cores). For each (model,
task, level, game) a table (Markdown, CSV), the AS/IAS curves and the per-review scores
are written under --out-dir as <model>-<task>-<level>-<game>.md/.csv/.png/.json;
benchmarks/summary.py then puts the claims side by side with a verdict for every
combination written (benchmarks/claims.py).
"""
import argparse
import csv
import functools
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    MODELS, TASK_CLASSES, CachedPerPosition, RowCounter, check_bundle, load_bundle, machine, sample_reviews,
)

from captum_pi import feature_attributions  # noqa: E402
from captum_pi._core.masking import MASKINGS  # noqa: E402
from captum_pi.metrics import (  # noqa: E402
    ActivationStudyResult,
    activation_study,
    aopc,
    mean_confidence_interval,
    plot_activation_curves,
)
from captum_pi.registry import METHODS  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT_DIR = os.path.join(HERE, "results", "faithfulness")

#: Default upper bound on the features of a review, per level (bounds the CPU time).
MAX_FEATURES = {"sentence": 12, "word": 30}

#: Every registered method but the exact Shapley values, which enumerate 2^n coalitions
#: and refuse more than 8 features (benchmarks/shapley_budget.py uses them as ground truth).
DEFAULT_METHODS = [name for name in METHODS if name != "shapley-values"]

#: How each game masks, for the table headers.
GAMES = {
    "delete": "the tokens of inactive features are deleted (the rest packed left)",
    "replace": "every token of an inactive feature is replaced by the paper's \"...\" token",
}


def method_options(name: str, inp: TextFeatureInput, masking: str, seed: int) -> dict:
    r"""The ``attribute`` options of registered method ``name`` under ``masking``:
    methods that mask get the game and the token it needs; the others (gradient,
    attention, random) have no game and get the mask token, Integrated Gradients'
    baseline (it refuses ``masking="delete"``); stochastic methods get ``seed``."""
    spec = METHODS[name]
    options = {"seed": seed} if spec.stochastic else {}
    if spec.masks:
        return {**options, "masking": masking, "baselines": inp.baselines_for(masking)}
    return {**options, "baselines": inp.mask_token_id}


def explain(method_name: str, method, inp: TextFeatureInput, label: int, seed: int, masking: str) -> np.ndarray:
    r"""Per-feature attributions ``[n]`` of ``label`` by one method under ``masking``."""
    attr = method.attribute(inp.input_ids, target=label, feature_mask=inp.feature_mask,
                            attention_mask=inp.attention_mask, **method_options(method_name, inp, masking, seed))
    return feature_attributions(attr.detach().float(), inp.feature_mask)[0].numpy()


def evaluate(model, inp: TextFeatureInput, label: int, phi: np.ndarray, masking: str) -> dict:
    r"""AS and IAS (AUC, curve, order) and AOPC of per-feature attributions ``phi``,
    the model (a classifier or a per-position forward such as
    :class:`CachedPerPosition`) evaluated on the review masked under ``masking``."""
    common = dict(target=label, feature_mask=inp.feature_mask, baselines=inp.baselines_for(masking),
                  attention_mask=inp.attention_mask, masking=masking)
    scores = torch.tensor(phi)[None]
    activation = activation_study(model, inp.input_ids, scores, **common)
    inverse = activation_study(model, inp.input_ids, scores, inverse=True, **common)
    eraser = aopc(model, inp.input_ids, scores, **common)
    return {
        "as_auc": float(activation.areas[0]), "ias_auc": float(inverse.areas[0]),
        "as_curve": [float(v) for v in activation.curves[0]],
        "ias_curve": [float(v) for v in inverse.curves[0]],
        "order": activation.orders[0].tolist(),
        "inverse_order": inverse.orders[0].tolist(),
        "comprehensiveness": float(eraser.comprehensiveness[0]),
        "sufficiency": float(eraser.sufficiency[0]),
    }


#: What a per-review result holds about the explanation itself (the rest is its evaluation).
EXPLANATION_KEYS = ("phi", "seconds", "rows")


def run_example(model, counter: RowCounter, methods: Dict[str, object], inp: TextFeatureInput,
                label: int, seed: int, masking: str, cached: dict,
                game_free: Optional[Dict[str, dict]] = None,
                save: Optional[Callable[[dict], None]] = None) -> dict:
    r"""
    Explains and evaluates one review with every method missing from ``cached``
    (method name -> result), which is completed in place and returned.

    ``game_free`` (method name -> ``phi``, ``seconds``, ``rows``) holds this review's
    explanations by methods without a masking game (gradient, attention, random) from
    another game's cache: they are evaluated in ``masking`` without being recomputed.
    ``save(cached)`` is called after each method, so an interrupted review keeps the
    methods it finished.
    """
    game_free = game_free or {}
    # The studies of different methods ask for many of the same masked rows (the
    # empty and full inputs, the top features most methods agree on): a memoising
    # forward evaluates each once per review. Explanations never read it, so their
    # rows and wall time stay what a user pays.
    evaluator = CachedPerPosition(model)
    for name, method in tqdm(methods.items(), desc=f"methods (n = {inp.n_itp_features})", leave=False):
        if name in cached:
            continue
        explained = game_free.get(name) if not METHODS[name].masks else None
        if explained is None:
            with counter.measure() as rows:
                start = time.perf_counter()
                phi = explain(name, method, inp, label, seed, masking)
                seconds = time.perf_counter() - start
            explained = {"phi": [float(v) for v in phi], "seconds": seconds, "rows": rows["rows"]}
        cached[name] = {**explained, **evaluate(evaluator, inp, label, np.array(explained["phi"]), masking)}
        if save is not None:
            save(cached)
    return cached


def game_free_explanations(paths: Sequence[str], names: Sequence[str]) -> Dict[str, dict]:
    r"""The explanations by methods without a masking game among ``names`` found in the
    cached results ``paths`` of the same review under other games."""
    found: Dict[str, dict] = {}
    for path in paths:
        for name, result in _read_cache(path).items():
            if name in names and not METHODS[name].masks and name not in found:
                found[name] = {key: result[key] for key in EXPLANATION_KEYS}
    return found


def cache_key(model_name: str, task: str, level: str, masking: str, seed: int = 0) -> str:
    r"""The name of a combination's cache folder and output files (the seed, which
    changes the sample and the stochastic methods, only when it is not 0)."""
    return f"{model_name}-{task}-{level}-{masking}" + (f"-seed{seed}" if seed else "")


def cache_dir(model_name: str, task: str, level: str, masking: str, seed: int = 0) -> str:
    r"""Where a combination's per-review results are cached."""
    return os.path.join(HERE, "cache", "faithfulness", cache_key(model_name, task, level, masking, seed))


def _read_cache(path: str, masking: Optional[str] = None) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        cached = json.load(handle)
    game = cached.get("_review", {}).get("masking", masking)
    if masking is not None and game != masking:
        raise ValueError(f"{path} holds results under masking={game!r}, not {masking!r}.")
    return cached


def _write_cache(path: str, cached: dict) -> None:
    with open(path + ".tmp", "w") as handle:
        json.dump(cached, handle)
    os.replace(path + ".tmp", path)  # an interrupted run never leaves half a file


def collect(bundle, methods: Dict[str, object], reviews: Sequence[Tuple[int, str, int]], level: str,
            masking: str, limit: int, cache_dir: str, feature_range: Tuple[int, int], seed: int,
            other_games: Sequence[str] = (), desc: str = "reviews",
            shard: Tuple[int, int] = (1, 1)) -> Tuple[Dict[str, List[dict]], List[int]]:
    r"""
    The per-review results of the first ``limit`` reviews (in the given order) whose
    feature count lies in ``feature_range``, read from ``cache_dir/<index>.json``
    where there and computed (and cached after each method) where not. The cache
    folders ``other_games`` of the same reviews under other games lend their
    explanations by methods without a game (:func:`game_free_explanations`).

    ``shard=(i, k)`` keeps only the i-th of every k of those reviews (i from 1), so
    that k processes fill one cache side by side; any of them, or a run with the
    default ``(1, 1)``, then reads the others' reviews from the cache.

    Returns:
        ``(results, n_features)``: method name -> per-review results, and the
        feature count of each review, the same reviews in the same order.
    """
    part, n_parts = shard
    os.makedirs(cache_dir, exist_ok=True)
    counter = RowCounter(bundle.model)
    results: Dict[str, List[dict]] = {name: [] for name in methods}
    n_features: List[int] = []
    selected = 0
    progress = tqdm(total=len(range(part - 1, limit, n_parts)), desc=desc)
    try:
        for index, text, label in reviews:
            if selected == limit:
                break
            inp = TextFeatureInput(text, bundle.tokenizer, level=level, template=bundle.prefix + "{}",
                                   masking=masking)
            if not feature_range[0] <= inp.n_itp_features <= feature_range[1]:
                continue
            selected += 1
            if (selected - part) % n_parts:
                continue
            path = os.path.join(cache_dir, f"{index}.json")
            cached = _read_cache(path, masking)
            if any(name not in cached for name in methods):
                cached["_review"] = {"index": index, "label": label, "n_features": inp.n_itp_features,
                                     "masking": masking}
                game_free = game_free_explanations(
                    [os.path.join(folder, f"{index}.json") for folder in other_games], list(methods))
                run_example(bundle.model, counter, methods, inp, label, seed, masking, cached, game_free,
                            save=functools.partial(_write_cache, path))
            for name in methods:
                results[name].append(cached[name])
            n_features.append(inp.n_itp_features)
            progress.update(1)
    finally:
        progress.close()
        counter.remove()
    return results, n_features


def summarise(results: Dict[str, List[dict]], n_features: List[int]) -> List[dict]:
    r"""One table row per method: mean ± 95 % CI of every score, the cost, the median
    wall time and the measured forward rows per feature."""
    rows = []
    for name, examples in results.items():
        spec = METHODS[name]
        row = {"method": spec.title, "cost": spec.cost_formula, "examples": len(examples)}
        for key in ("as_auc", "ias_auc", "comprehensiveness", "sufficiency"):
            interval = mean_confidence_interval([example[key] for example in examples])
            row[key], row[key + "_ci"] = interval.mean, interval.half_width
        row["seconds"] = float(np.median([example["seconds"] for example in examples]))
        row["rows_per_n"] = float(np.mean([e["rows"] / n for e, n in zip(examples, n_features)]))
        rows.append(row)
    return rows


def write_tables(rows: List[dict], stem: str, header: str) -> str:
    r"""Writes ``stem.csv`` and ``stem.md`` (best AS and IAS in bold); returns the Markdown."""
    with open(stem + ".csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best_as = max(row["as_auc"] for row in rows)
    best_ias = min(row["ias_auc"] for row in rows)
    lines = [header, "",
             "| Method | Cost (x) | AS AUC ↑ | IAS AUC ↓ | AOPC comp. ↑ | AOPC suff. ↓ | rows / n | s / explanation |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        as_text = f"{row['as_auc']:.3f} ± {row['as_auc_ci']:.3f}"
        ias_text = f"{row['ias_auc']:.3f} ± {row['ias_auc_ci']:.3f}"
        as_text = f"**{as_text}**" if row["as_auc"] == best_as else as_text
        ias_text = f"**{ias_text}**" if row["ias_auc"] == best_ias else ias_text
        lines.append(
            f"| {row['method']} | {row['cost']} | {as_text} | {ias_text} | "
            f"{row['comprehensiveness']:.3f} ± {row['comprehensiveness_ci']:.3f} | "
            f"{row['sufficiency']:.3f} ± {row['sufficiency_ci']:.3f} | {row['rows_per_n']:.2f} | "
            f"{row['seconds']:.2f} |")
    text = "\n".join(lines)
    with open(stem + ".md", "w") as handle:
        handle.write(text + "\n")
    return text


def _cached_study(key: str, examples: List[dict]) -> ActivationStudyResult:
    r"""Rebuilds the part of a study result that the plot reads from the cached curves."""
    curves = [np.array(example[key]) for example in examples]
    areas = np.array([example[key.replace("curve", "auc")] for example in examples])
    study = "activation" if key == "as_curve" else "inverse_activation"
    orders = [np.array(example["order" if key == "as_curve" else "inverse_order"]) for example in examples]
    return ActivationStudyResult(study, curves, orders, areas, torch.zeros(len(curves), dtype=torch.long), 0, 0)


def plot_curves(results: Dict[str, List[dict]], stem: str) -> None:
    r"""Writes ``stem.png``: the mean AS and IAS curves of every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(10, 8.5))
    for ax, key, title in ((axes[0], "as_curve", "Activation study (higher is better)"),
                           (axes[1], "ias_curve", "Inverse activation study (lower is better)")):
        studies = {METHODS[name].title: _cached_study(key, examples) for name, examples in results.items()}
        plot_activation_curves(studies, ax=ax, title=title)
        # beside the axes: with a dozen methods a legend inside hides the curves
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(stem + ".png", dpi=110)
    plt.close(figure)


def table_header(model_name: str, task: str, level: str, masking: str, n_features: List[int],
                 feature_range: Tuple[int, int]) -> str:
    r"""The Markdown header of one combination's table: what was run, the game and the sample."""
    return (
        f"# {model_name}, drug reviews ({task}), {level} level, masking game `{masking}`: "
        f"n = {len(n_features)} test reviews with {feature_range[0]}..{feature_range[1]} features "
        f"(median {int(np.median(n_features))}); explaining the true class; mean ± 95 % CI\n\n"
        f"Game `{masking}`: {GAMES[masking]}. Methods that mask were run in this game; gradient, "
        f"attention and random attributions have none (Integrated Gradients' baseline is the \"...\" "
        f"input); AS, IAS and AOPC evaluate every method in this game.  \n"
        f"Command: `python benchmarks/faithfulness.py {' '.join(sys.argv[1:])}`  \n"
        f"Machine: {machine()}. Cost: forward-pass equivalents beyond the prediction pass "
        f"(captum_pi.registry); rows / n: measured forward rows per feature; s: median wall time."
    )


def run_combination(bundle, methods: Dict[str, object], model_name: str, task: str, level: str,
                    masking: str, limit: int, args: argparse.Namespace) -> Dict[str, List[dict]]:
    r"""Benchmark 1 on one (model, task, level, game): cached per review, table and curves written."""
    key = cache_key(model_name, task, level, masking, args.seed)
    feature_range = (args.min_features, args.max_features or MAX_FEATURES[level])
    other_games = [cache_dir(model_name, task, level, game, args.seed) for game in MASKINGS if game != masking]
    results, n_features = collect(
        bundle, methods, sample_reviews(task, args.seed), level, masking, limit,
        cache_dir(model_name, task, level, masking, args.seed), feature_range, args.seed, other_games,
        desc=f"{key} reviews", shard=args.shard,
    )
    if args.shard != (1, 1):
        print(f"{key}: shard {args.shard[0]}/{args.shard[1]} cached; no table is written from a shard. "
              "Once every shard has finished, rerun without --shard to write it.")
        return results
    if not n_features:
        raise SystemExit(f"{key}: no test review has {feature_range[0]}..{feature_range[1]} features; "
                         "widen --min-features / --max-features.")
    stem = os.path.join(args.out_dir, key)
    header = table_header(model_name, task, level, masking, n_features, feature_range)
    print(write_tables(summarise(results, n_features), stem, header))
    plot_curves(results, stem)
    write_scores(results, n_features, stem)
    return results


#: The per-review scores benchmarks/summary.py reads.
SCORE_KEYS = ("as_auc", "ias_auc", "comprehensiveness", "sufficiency")


def write_scores(results: Dict[str, List[dict]], n_features: List[int], stem: str) -> None:
    r"""Writes ``stem.json``: the command, each review's feature count and, per
    method, each review's scores (the same reviews in the same order)."""
    scores = {name: [{key: example[key] for key in SCORE_KEYS} for example in examples]
              for name, examples in results.items()}
    with open(stem + ".json", "w") as handle:
        json.dump({"command": f"python benchmarks/faithfulness.py {' '.join(sys.argv[1:])}",
                   "n_features": n_features, "results": scores}, handle)


def unavailable(model_names: Sequence[str], tasks: Sequence[str]) -> List[str]:
    r"""Why each requested (model, task) that cannot be loaded cannot be (empty if all can)."""
    problems = []
    for model_name in model_names:
        for task in tasks:
            try:
                check_bundle(model_name, task)
            except ValueError as error:
                problems.append(f"{model_name} ({task}): {error}")
    return problems


def shard_spec(text: str) -> Tuple[int, int]:
    r"""``"I/K"`` (1 <= I <= K) as ``(I, K)``; anything else is refused before any work."""
    try:
        part, n_parts = (int(number) for number in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/K such as 1/2, got {text!r}") from None
    if not 1 <= part <= n_parts:
        raise argparse.ArgumentTypeError(f"I/K needs 1 <= I <= K, got {text!r}")
    return part, n_parts


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["smollm2"], choices=MODELS)
    parser.add_argument("--task", nargs="+", default=["binary"], choices=list(TASK_CLASSES))
    parser.add_argument("--level", nargs="+", default=["sentence"], choices=["word", "sentence"])
    parser.add_argument("--masking", nargs="+", default=list(MASKINGS), choices=MASKINGS,
                        help="masking games, each a table of its own (default: all)")
    parser.add_argument("--limit", type=int, nargs="+", default=[50],
                        help="test reviews per combination: one number, or one per --model")
    parser.add_argument("--min-features", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=None,
                        help="skip reviews with more features (bounds the CPU time); "
                             f"default per level: {MAX_FEATURES}")
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS),
                        help="default: every registered method but shapley-values (exact, 2^n rows)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=shard_spec, default=(1, 1), metavar="I/K",
                        help="compute only the I-th of every K selected reviews and write no table, so "
                             "that K processes (e.g. one per core) fill the cache side by side; then "
                             "rerun without --shard, which reads them all from the cache")
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                        help="where the tables, curves and scores go (the cache stays under benchmarks/cache)")
    args = parser.parse_args(argv)
    if len(args.limit) not in (1, len(args.model)):
        parser.error(f"--limit takes one number or one per model ({len(args.model)}), got {args.limit}.")
    problems = unavailable(args.model, args.task)
    if problems:
        parser.error("cannot load every requested model; nothing was run:\n  " + "\n  ".join(problems))
    return args


def main() -> None:
    args = parse_args()
    limits = dict(zip(args.model, args.limit * len(args.model) if len(args.limit) == 1 else args.limit))
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(args.seed)
    for model_name in args.model:
        for task in args.task:
            bundle = load_bundle(model_name, task)
            methods = {name: METHODS[name].build(bundle.model) for name in args.methods}
            for level in args.level:
                for masking in args.masking:
                    run_combination(bundle, methods, model_name, task, level, masking, limits[model_name], args)
    print("The claims against every table written so far: python benchmarks/summary.py")


if __name__ == "__main__":
    main()
