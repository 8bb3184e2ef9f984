r"""
Benchmark 1: the paper's Tables 2 and 3 on offline LLMs. Every registered method on
one (model, task, level), over a fixed, seeded sample of test reviews, explaining the
true class (as the paper does): activation and inverse activation study AUC with 95 %
confidence intervals, ERASER AOPC comprehensiveness and sufficiency, the cost in
forward-pass equivalents, the measured forward rows and the wall time per explanation.

    python benchmarks/faithfulness.py --model smollm2 --task binary --level sentence --limit 30
    python benchmarks/faithfulness.py --model smollm2 --task binary --level word --limit 10 --max-features 40

Per-example results are cached as JSON under benchmarks/cache/ (resumable: rerun the
same command to continue); tables (Markdown, CSV) and AS/IAS plots are written under
benchmarks/results/faithfulness/.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=MODELS)
    parser.add_argument("--task", default="binary", choices=["binary", "3class"])
    parser.add_argument("--level", default="sentence", choices=["word", "sentence"])
    parser.add_argument("--limit", type=int, default=50, help="number of test reviews")
    parser.add_argument("--min-features", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=12,
                        help="skip reviews with more features (bounds the CPU time)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    key = f"{args.model}-{args.task}-{args.level}"
    cache_dir = os.path.join(HERE, "cache", "faithfulness", key)
    out_dir = os.path.join(HERE, "results", "faithfulness")
    os.makedirs(cache_dir, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    bundle = load_bundle(args.model, args.task)
    counter = RowCounter(bundle.model)
    methods = {name: METHODS[name].build(bundle.model) for name in args.methods}
    template = bundle.prefix + "{}"
    results: Dict[str, List[dict]] = {name: [] for name in methods}
    n_features: List[int] = []
    chosen = 0
    progress = tqdm(total=args.limit, desc=f"{key} examples")
    for index, text, label in sample_reviews(args.task, args.seed):
        if chosen == args.limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=args.level, template=template)
        if not args.min_features <= inp.n_itp_features <= args.max_features:
            continue
        path = os.path.join(cache_dir, f"{index}.json")
        cached = json.load(open(path)) if os.path.exists(path) else {}
        cached = run_example(bundle, counter, methods, inp, label, args.seed, cached)
        with open(path, "w") as handle:
            json.dump(cached, handle)
        for name in methods:
            results[name].append(cached[name])
        n_features.append(inp.n_itp_features)
        chosen += 1
        progress.update(1)
    progress.close()
    header = (
        f"# {args.model}, drug reviews ({args.task}), {args.level} level: {chosen} test reviews "
        f"with {args.min_features}..{args.max_features} features (median {int(np.median(n_features))}); "
        f"explaining the true class; mean ± 95 % CI\n\n"
        f"Command: `python benchmarks/faithfulness.py {' '.join(sys.argv[1:])}`  \n"
        f"Machine: {machine()}. Cost: forward-pass equivalents beyond the prediction pass "
        f"(captum_pi.registry); rows / n: measured forward rows per feature; s: median wall time."
    )
    stem = os.path.join(out_dir, key)
    print(write_tables(summarise(results, n_features), stem, header))
    plot_curves(results, stem)


if __name__ == "__main__":
    main()
