r"""
Benchmark 2: attribution quality per model call, against Captum. For test reviews with
at most 10 features (sentences, or the words of short reviews), exact Shapley values
come from enumerating all 2^n coalitions; MP-PI (optimized and Shapley sampling) and
Captum's KernelShap, ShapleyValueSampling and Lime are run at budgets of B = n, 2n, 4n,
8n, 16n model rows, and compared with the exact values (cosine similarity, relative L2
error), with the measured rows and wall time.

    python benchmarks/shapley_budget.py --model smollm2 --level sentence --limit 10 --seeds 3
    python benchmarks/shapley_budget.py --model gpt2 --level sentence --limit 10 --seeds 3

Budgets: MP-PI's n_samples counts every pass (B rows); Kernel SHAP and Lime get
n_samples = B - 1 (plus the pass that finds the predicted class: B rows);
Shapley Value Sampling gets max(1, round((B - 1) / n)) permutations (n rows each).
Exact values and per-(example, method, budget, seed) results are cached under
benchmarks/cache/; results go to benchmarks/results/shapley_budget/.
"""
import argparse
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
from captum_pi.metrics import shapley_values  # noqa: E402
from captum_pi.registry import METHODS  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
COMPARED = ("mp-pi", "mp-pi-shapley", "kernel-shap", "shapley-value-sampling", "lime")


def budget_options(name: str, budget: int, n: int) -> dict:
    if name.startswith("mp-pi"):
        return {"n_samples": max(budget, 3)}
    if name == "shapley-value-sampling":
        return {"n_samples": max(1, round((budget - 1) / n))}
    return {"n_samples": max(budget - 1, 1)}


def agreement(phi: np.ndarray, exact: np.ndarray) -> Dict[str, float]:
    cosine = float(phi @ exact / (np.linalg.norm(phi) * np.linalg.norm(exact) + 1e-12))
    relative = float(np.linalg.norm(phi - exact) / (np.linalg.norm(exact) + 1e-12))
    return {"cosine": cosine, "relative_l2": relative}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=MODELS)
    parser.add_argument("--task", default="binary", choices=["binary", "3class"])
    parser.add_argument("--level", default="sentence", choices=["word", "sentence"])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--min-features", type=int, default=4)
    parser.add_argument("--max-features", type=int, default=10)
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, default=3, help="sampling seeds per (example, method, budget)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the review sample")
    args = parser.parse_args()
    key = f"{args.model}-{args.task}-{args.level}"
    cache_dir = os.path.join(HERE, "cache", "shapley_budget", key)
    out_dir = os.path.join(HERE, "results", "shapley_budget")
    os.makedirs(cache_dir, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    bundle = load_bundle(args.model, args.task)
    counter = RowCounter(bundle.model)
    methods = {name: METHODS[name].build(bundle.model) for name in COMPARED}
    records: List[dict] = []
    chosen = 0
    progress = tqdm(total=args.limit, desc=f"{key} examples")
    for index, text, label in sample_reviews(args.task, args.seed):
        if chosen == args.limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=args.level, template=bundle.prefix + "{}")
        n = inp.n_itp_features
        if not args.min_features <= n <= args.max_features:
            continue
        path = os.path.join(cache_dir, f"{index}.json")
        cached = json.load(open(path)) if os.path.exists(path) else {}
        common = dict(feature_mask=inp.feature_mask, baselines=inp.baselines, attention_mask=inp.attention_mask)
        if "exact" not in cached:
            exact = shapley_values(bundle.model, inp.input_ids, target=label, **common)
            cached["exact"] = exact.values[0, :n].tolist()
            with open(path, "w") as handle:
                json.dump(cached, handle)
        exact = np.array(cached["exact"])
        for name, method in methods.items():
            for multiple in args.multiples:
                for seed in range(args.seeds):
                    run_key = f"{name}|{multiple}|{seed}"
                    if run_key in cached:
                        continue
                    with counter.measure() as rows:
                        start = time.perf_counter()
                        attr = method.attribute(inp.input_ids, target=label, seed=seed,
                                                **budget_options(name, multiple * n, n), **common)
                        seconds = time.perf_counter() - start
                    phi = feature_attributions(attr.float(), inp.feature_mask)[0].numpy()
                    cached[run_key] = {"rows": rows["rows"], "seconds": seconds, **agreement(phi, exact)}
            with open(path, "w") as handle:  # resumable after every method
                json.dump(cached, handle)
        for run_key, value in cached.items():
            if run_key != "exact":
                name, multiple, seed = run_key.split("|")
                records.append({"method": name, "multiple": int(multiple), "n": n, **value})
        chosen += 1
        progress.update(1)
    progress.close()
    write_report(records, args, key, out_dir, chosen)


def write_report(records: List[dict], args: argparse.Namespace, key: str, out_dir: str, chosen: int) -> None:
    lines = [
        f"# Quality per model call: {args.model}, {args.task}, {args.level} level, {chosen} test reviews "
        f"with {args.min_features}..{args.max_features} features, {args.seeds} seeds",
        "",
        f"Command: `python benchmarks/shapley_budget.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine()}. Mean over examples and seeds; rows: measured forward rows / n.",
        "",
        "| method | B | rows / n | cosine to exact | relative L2 error | median s |",
        "|---|---|---|---|---|---|",
    ]
    first_reaching: Dict[str, str] = {}
    for name in COMPARED:
        for multiple in args.multiples:
            subset = [r for r in records if r["method"] == name and r["multiple"] == multiple]
            if not subset:
                continue
            cosine = np.mean([r["cosine"] for r in subset])
            lines.append(
                f"| {METHODS[name].title} | "
                f"{multiple}n | {np.mean([r['rows'] / r['n'] for r in subset]):.2f} | {cosine:.3f} | "
                f"{np.mean([r['relative_l2'] for r in subset]):.3f} | "
                f"{np.median([r['seconds'] for r in subset]):.2f} |")
            if cosine >= 0.95 and name not in first_reaching:
                first_reaching[name] = f"{multiple}n"
    lines += ["", "| method | first budget with mean cosine >= 0.95 |", "|---|---|"]
    lines += [f"| {name} | {first_reaching.get(name, f'> {args.multiples[-1]}n')} |" for name in COMPARED]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out_dir, key + ".md"), "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
