r"""
Benchmark 1: the paper's Tables 2 and 3 on offline LLMs. Every registered method on
one (model, task, level), over a fixed, seeded sample of test reviews, explaining the
true class (as the paper does): activation and inverse activation study AUC with 95 %
confidence intervals, ERASER AOPC comprehensiveness and sufficiency, the cost in
forward-pass equivalents, the measured forward rows and the wall time per explanation.

    python benchmarks/faithfulness.py --model smollm2 --level sentence --limit 30
    python benchmarks/faithfulness.py --model smollm2 gemma3 --level word sentence

Several models, tasks and levels run one after the other. Per-example results are
cached as JSON under benchmarks/cache/ (resumable: rerun the same command to
continue; a larger --limit only runs the new reviews); for each (model, task, level)
a table (Markdown, CSV) and the AS/IAS curves are written under
benchmarks/results/faithfulness/, and summary.md puts the paper's claims
side by side for every pair of the run: SP-PI against the best method costing at most
one pass, MP-PI against the best method costing about 2n passes and against Kernel
SHAP at the same budget, as relative AUC gains (the paper's measure) with paired 95 %
confidence intervals over the reviews.
"""
import argparse
import csv
import json
import os
import sys
import time
from typing import Dict, List

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MODELS, RowCounter, load_bundle, machine, sample_reviews  # noqa: E402

from captum_pi import feature_attributions  # noqa: E402
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

#: Default upper bound on the features of a review, per level (bounds the CPU time).
MAX_FEATURES = {"sentence": 12, "word": 30}

#: The paper's claims: (our method, the methods it is said to beat); the last one is
#: the head-to-head with Kernel SHAP at the same 2n budget.
CLAIMS = (
    ("sp-pi", ("a-last", "gae", "input-x-gradient", "lrp")),
    ("mp-pi", ("kernel-shap", "integrated-gradients", "lime", "feature-ablation",
               "shapley-value-sampling")),
    ("mp-pi", ("kernel-shap",)),
)


def explain(method_name: str, method, inp: TextFeatureInput, label: int, seed: int) -> np.ndarray:
    options = {"seed": seed} if METHODS[method_name].stochastic else {}
    attr = method.attribute(inp.input_ids, target=label, feature_mask=inp.feature_mask,
                            baselines=inp.baselines, attention_mask=inp.attention_mask, **options)
    return feature_attributions(attr.detach().float(), inp.feature_mask)[0].numpy()


def evaluate(model, inp: TextFeatureInput, label: int, phi: np.ndarray) -> dict:
    common = dict(target=label, feature_mask=inp.feature_mask, baselines=inp.baselines,
                  attention_mask=inp.attention_mask)
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


def run_example(bundle, counter: RowCounter, methods: Dict[str, object], inp: TextFeatureInput,
                label: int, seed: int, cached: dict) -> dict:
    for name, method in tqdm(methods.items(), desc=f"methods (n = {inp.n_itp_features})", leave=False):
        if name in cached:
            continue
        with counter.measure() as rows:
            start = time.perf_counter()
            phi = explain(name, method, inp, label, seed)
            seconds = time.perf_counter() - start
        cached[name] = {"phi": [float(v) for v in phi], "seconds": seconds, "rows": rows["rows"],
                        **evaluate(bundle.model, inp, label, phi)}
    return cached


def summarise(results: Dict[str, List[dict]], n_features: List[int]) -> List[dict]:
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title in ((axes[0], "as_curve", "Activation study (higher is better)"),
                           (axes[1], "ias_curve", "Inverse activation study (lower is better)")):
        studies = {METHODS[name].title: _cached_study(key, examples) for name, examples in results.items()}
        plot_activation_curves(studies, ax=ax, title=title)
    figure.tight_layout()
    figure.savefig(stem + ".png", dpi=110)
    plt.close(figure)


def claim_rows(results: Dict[str, List[dict]]) -> List[dict]:
    r"""For each claim and study, the best competitor by mean AUC and our method's paired
    difference to it: relative gain (the paper's measure; positive means ours is better)
    and the mean per-review difference with its 95 % confidence interval."""
    rows = []
    for ours, rivals in CLAIMS:
        rivals = [name for name in rivals if name in results]
        if ours not in results or not rivals:
            continue
        for key, sign in (("as_auc", 1.0), ("ias_auc", -1.0)):
            means = {name: np.mean([e[key] for e in results[name]]) for name in rivals}
            best = max(rivals, key=lambda name: sign * means[name])
            ours_values = np.array([e[key] for e in results[ours]])
            best_values = np.array([e[key] for e in results[best]])
            difference = mean_confidence_interval(sign * (ours_values - best_values))
            rows.append({
                "method": METHODS[ours].title, "study": "AS" if sign > 0 else "IAS",
                "best_rival": METHODS[best].title, "ours": float(ours_values.mean()),
                "rival": float(best_values.mean()),
                "relative_gain": float(sign * (ours_values.mean() - best_values.mean()) / best_values.mean()),
                "difference": difference.mean, "difference_ci": difference.half_width,
            })
    return rows


def verdict(row: dict) -> str:
    low, high = row["difference"] - row["difference_ci"], row["difference"] + row["difference_ci"]
    if low > 0:
        return "holds"
    if high < 0:
        return "reversed"
    return "not significant"


def write_summary(claims: Dict[str, List[dict]], header: str) -> str:
    lines = [header, "",
             "Relative gain: (ours - best rival) / best rival for AS AUC, (best rival - ours) / "
             "best rival for IAS AUC, so positive always means ours is better (the paper reports "
             "up to +10.3 % AS and +57.5 % IAS for MP-PI). Paired difference: mean over reviews "
             "of the same sign convention, with its 95 % CI; the claim holds when the CI lies "
             "above 0.", "",
             "| model-task-level | method | study | best rival | ours | rival | relative gain | "
             "paired difference | claim |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, rows in claims.items():
        for row in rows:
            lines.append(
                f"| {key} | {row['method']} | {row['study']} | {row['best_rival']} | "
                f"{row['ours']:.3f} | {row['rival']:.3f} | {100 * row['relative_gain']:+.1f} % | "
                f"{row['difference']:+.3f} ± {row['difference_ci']:.3f} | {verdict(row)} |")
    text = "\n".join(lines)
    with open(os.path.join(HERE, "results", "faithfulness", "summary.md"), "w") as handle:
        handle.write(text + "\n")
    return text


def run_pair(bundle, model_name: str, task: str, level: str, limit: int, args) -> tuple:
    r"""Benchmark 1 on one (model, task, level): cached per review, tables and plots written."""
    key = f"{model_name}-{task}-{level}"
    max_features = args.max_features or MAX_FEATURES[level]
    cache_dir = os.path.join(HERE, "cache", "faithfulness", key)
    out_dir = os.path.join(HERE, "results", "faithfulness")
    os.makedirs(cache_dir, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    counter = RowCounter(bundle.model)
    methods = {name: METHODS[name].build(bundle.model) for name in args.methods}
    template = bundle.prefix + "{}"
    results: Dict[str, List[dict]] = {name: [] for name in methods}
    n_features: List[int] = []
    progress = tqdm(total=limit, desc=f"{key} examples")
    for index, text, label in sample_reviews(task, args.seed):
        if len(n_features) == limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=level, template=template)
        if not args.min_features <= inp.n_itp_features <= max_features:
            continue
        path = os.path.join(cache_dir, f"{index}.json")
        cached = json.load(open(path)) if os.path.exists(path) else {}
        cached = run_example(bundle, counter, methods, inp, label, args.seed, cached)
        with open(path, "w") as handle:
            json.dump(cached, handle)
        for name in methods:
            results[name].append(cached[name])
        n_features.append(inp.n_itp_features)
        progress.update(1)
    progress.close()
    counter.remove()
    if not n_features:
        raise SystemExit(f"{key}: no test review has {args.min_features}..{max_features} features; "
                         "widen --min-features / --max-features.")
    header = (
        f"# {model_name}, drug reviews ({task}), {level} level: {len(n_features)} test reviews "
        f"with {args.min_features}..{max_features} features (median {int(np.median(n_features))}); "
        f"explaining the true class; mean ± 95 % CI\n\n"
        f"Command: `python benchmarks/faithfulness.py {' '.join(sys.argv[1:])}`  \n"
        f"Machine: {machine()}. Cost: forward-pass equivalents beyond the prediction pass "
        f"(captum_pi.registry); rows / n: measured forward rows per feature; s: median wall time."
    )
    stem = os.path.join(out_dir, key)
    table = summarise(results, n_features)
    print(write_tables(table, stem, header))
    plot_curves(results, stem)
    return results, table


def plot_summary(tables: Dict[str, List[dict]], path: str) -> None:
    r"""AS and IAS AUC (mean, 95 % CI) of every method, one column per (model, task, level);
    the progressive methods in colour, the others in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(tables)
    figure, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys) + 1.5, 8.5), squeeze=False,
                                sharey=True)
    for column, key in enumerate(keys):
        rows = tables[key]
        positions = np.arange(len(rows))
        colours = ["tab:red" if row["method"].startswith("MP-PI") else
                   "tab:orange" if row["method"] == "SP-PI" else "0.6" for row in rows]
        for line, (study, title) in enumerate((("as_auc", "AS AUC (higher is better)"),
                                               ("ias_auc", "IAS AUC (lower is better)"))):
            ax = axes[line, column]
            ax.barh(positions, [row[study] for row in rows], xerr=[row[study + "_ci"] for row in rows],
                    color=colours, error_kw={"elinewidth": 0.8})
            ax.set_title(f"{key}\n{title}", fontsize=9)
            ax.set_yticks(positions, [row["method"] for row in rows], fontsize=8)
            ax.set_ylim(len(rows) - 0.5, -0.5)  # first method on top (invert_yaxis toggles with sharey)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["smollm2"], choices=MODELS)
    parser.add_argument("--task", nargs="+", default=["binary"], choices=["binary", "3class"])
    parser.add_argument("--level", nargs="+", default=["sentence"], choices=["word", "sentence"])
    parser.add_argument("--limit", type=int, nargs="+", default=[50],
                        help="test reviews per pair: one number, or one per --model")
    parser.add_argument("--min-features", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=None,
                        help="skip reviews with more features (bounds the CPU time); "
                             f"default per level: {MAX_FEATURES}")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if len(args.limit) not in (1, len(args.model)):
        parser.error(f"--limit takes one number or one per model ({len(args.model)}), got {args.limit}.")
    limits = dict(zip(args.model, args.limit * len(args.model) if len(args.limit) == 1 else args.limit))
    torch.manual_seed(args.seed)
    claims: Dict[str, List[dict]] = {}
    tables: Dict[str, List[dict]] = {}
    for model_name in args.model:
        for task in args.task:
            bundle = load_bundle(model_name, task)
            for level in args.level:
                results, table = run_pair(bundle, model_name, task, level, limits[model_name], args)
                claims[f"{model_name}-{task}-{level}"] = claim_rows(results)
                tables[f"{model_name}-{task}-{level}"] = table
    header = (
        "# Benchmark 1: the paper's claims, pair by pair\n\n"
        f"Command: `python benchmarks/faithfulness.py {' '.join(sys.argv[1:])}`  \n"
        f"Machine: {machine()}. Per-pair tables: `<model>-<task>-<level>.md` beside this file; "
        "all AUCs at a glance: `summary.png`."
    )
    print(write_summary(claims, header))
    plot_summary(tables, os.path.join(HERE, "results", "faithfulness", "summary.png"))


if __name__ == "__main__":
    main()
