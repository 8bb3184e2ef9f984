r"""
ReAGent beside the other methods on SmolLM2 reviews (the quick comparison of the
ReAGent issue; the full tables belong to benchmarks/faithfulness.py, where ReAGent is
one more registered method).

    python benchmarks/reagent.py --limit 8
    python benchmarks/reagent.py --model smollm2-lora --level sentence --limit 8

ReAGent is run with every replacement it offers (the explained LLM's own
language-model head, uniform random tokens, and the two masking games: deleted
features, the "..." token) at the package's budget of ``2 n`` model rows without early
stopping, with the authors' stopping condition (adapted: the rational alone keeps the
class the predicted one), and at ``8 n`` rows. Beside it: Random, SP-PI, Feature
Ablation, Kernel SHAP, LIME and MP-PI at their registry budgets. Each method's
activation / inverse activation study AUC and ERASER AOPC are evaluated in both
masking games (the methods that mask are run in the game they are evaluated in;
ReAGent with a sampler, and Random, have no game and are evaluated in both).

Per-review results are cached as JSON under benchmarks/cache/reagent/<model>-<task>-<level>/
(resumable); the tables go to benchmarks/results/reagent/README.md.
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RowCounter, load_bundle, machine, sample_reviews  # noqa: E402
from faithfulness import evaluate, method_options  # noqa: E402

from captum_pi import feature_attributions  # noqa: E402
from captum_pi._core.masking import MASKINGS  # noqa: E402
from captum_pi._core.reagent import ReAGent  # noqa: E402
from captum_pi.metrics import mean_confidence_interval  # noqa: E402
from captum_pi.registry import METHODS  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results", "reagent", "README.md")

#: ReAGent variants: name -> (title, attribute options, rows per feature or None).
VARIANTS = {
    "reagent-lm-stop": ("ReAGent, LM head, authors' stopping", {"replacement": "lm", "stop_top_k": 1}, 2),
    "reagent-lm": ("ReAGent, LM head", {"replacement": "lm", "stop_top_k": None}, 2),
    "reagent-uniform": ("ReAGent, uniform tokens", {"replacement": "uniform", "stop_top_k": None}, 2),
    "reagent-delete": ("ReAGent, deletion game", {"masking": "delete", "stop_top_k": None}, 2),
    "reagent-replace": ("ReAGent, \"...\" game", {"masking": "replace", "stop_top_k": None}, 2),
    "reagent-lm-8n": ("ReAGent, LM head, 8n", {"replacement": "lm", "stop_top_k": None}, 8),
    "reagent-delete-8n": ("ReAGent, deletion game, 8n", {"masking": "delete", "stop_top_k": None}, 8),
}

#: Registered methods compared (the methods that mask run in the game of the table).
BASELINES = ("random", "sp-pi", "feature-ablation", "kernel-shap", "lime", "mp-pi")


def explain_reagent(reagent: ReAGent, inp: TextFeatureInput, label: int, name: str, seed: int,
                    counter: RowCounter) -> dict:
    r"""One ReAGent variant on one review: ``phi``, seconds, rows, steps and stops."""
    _, options, per_feature = VARIANTS[name]
    options = dict(options)
    if "masking" in options:
        options["baselines"] = inp.baselines_for(options["masking"])
    n = inp.n_itp_features
    with counter.measure() as rows:
        start = time.perf_counter()
        attr = reagent.attribute(inp.input_ids, target=label, feature_mask=inp.feature_mask,
                                 attention_mask=inp.attention_mask, seed=seed,
                                 n_samples=per_feature * n, **options)
        seconds = time.perf_counter() - start
    run = reagent.last_runs[0]
    return {"phi": feature_attributions(attr, inp.feature_mask)[0].tolist(), "seconds": seconds,
            "rows": rows["rows"], "steps": float(run.steps.float().mean()),
            "stopped": float(run.stopped.float().mean())}


def explain_registered(method, name: str, inp: TextFeatureInput, label: int, seed: int, masking: str,
                       counter: RowCounter) -> dict:
    r"""A registered method on one review under ``masking``: ``phi``, seconds, rows."""
    with counter.measure() as rows:
        start = time.perf_counter()
        attr = method.attribute(inp.input_ids, target=label, feature_mask=inp.feature_mask,
                                attention_mask=inp.attention_mask,
                                **method_options(name, inp, masking, seed))
        seconds = time.perf_counter() - start
    return {"phi": feature_attributions(attr.float(), inp.feature_mask)[0].tolist(), "seconds": seconds,
            "rows": rows["rows"]}


def review_results(bundle, reagent: ReAGent, methods: Dict[str, object], counter: RowCounter,
                   inp: TextFeatureInput, label: int, seed: int, path: str) -> dict:
    r"""Every variant and baseline on one review, evaluated in both games; cached in ``path``."""
    cached = json.load(open(path)) if os.path.exists(path) else {}

    def save() -> None:
        with open(path + ".tmp", "w") as handle:
            json.dump(cached, handle)
        os.replace(path + ".tmp", path)

    for name in VARIANTS:
        if name not in cached.get("explanations", {}):
            cached.setdefault("explanations", {})[name] = explain_reagent(reagent, inp, label, name, seed, counter)
            save()
    for masking in MASKINGS:
        game = cached.setdefault(masking, {})
        for name, method in methods.items():
            if name not in game:
                game[name] = explain_registered(method, name, inp, label, seed, masking, counter)
        for name in [*VARIANTS, *methods]:
            explained = game.get(name) or cached["explanations"][name]
            if "as_auc" not in explained:
                explained = {**explained, **evaluate(bundle.model, inp, label, np.array(explained["phi"]),
                                                     masking)}
                game[name] = explained
                save()
    save()
    return cached


def table(results: List[dict], masking: str, n_features: List[int]) -> List[str]:
    r"""Markdown rows of one game: every method's mean ± 95 % CI."""
    lines = ["| Method | AS AUC ↑ | IAS AUC ↓ | AOPC comp. ↑ | AOPC suff. ↓ | rows / n | steps / probe | "
             "probes stopped | s / explanation |", "|---|---|---|---|---|---|---|---|---|"]
    titles = {**{name: title for name, (title, _, _) in VARIANTS.items()},
              **{name: METHODS[name].title for name in BASELINES}}
    for name, title in titles.items():
        examples = [review[masking][name] for review in results]
        cells = []
        for key in ("as_auc", "ias_auc", "comprehensiveness", "sufficiency"):
            interval = mean_confidence_interval([example[key] for example in examples])
            cells.append(f"{interval.mean:.3f} ± {interval.half_width:.3f}")
        rows_per_n = np.mean([e["rows"] / n for e, n in zip(examples, n_features)])
        steps = f"{np.mean([e['steps'] for e in examples]):.1f}" if "steps" in examples[0] else ""
        stopped = f"{100 * np.mean([e['stopped'] for e in examples]):.0f} %" if "stopped" in examples[0] else ""
        seconds = np.median([e["seconds"] for e in examples])
        lines.append(f"| {title} | {' | '.join(cells)} | {rows_per_n:.2f} | {steps} | {stopped} | {seconds:.2f} |")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-lora")
    parser.add_argument("--task", default="binary")
    parser.add_argument("--level", default="sentence", choices=["word", "sentence"])
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--min-features", type=int, default=3)
    parser.add_argument("--max-features", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model, args.task)
    reagent = ReAGent(bundle.model)
    methods = {name: METHODS[name].build(bundle.model) for name in BASELINES}
    counter = RowCounter(bundle.model)
    folder = os.path.join(HERE, "cache", "reagent", f"{args.model}-{args.task}-{args.level}")
    os.makedirs(folder, exist_ok=True)
    results, n_features = [], []
    progress = tqdm(total=args.limit, desc="reviews")
    for index, text, label in sample_reviews(args.task, args.seed):
        if len(results) == args.limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=args.level, template=bundle.prefix + "{}")
        if not args.min_features <= inp.n_itp_features <= args.max_features:
            continue
        results.append(review_results(bundle, reagent, methods, counter, inp, label, args.seed,
                                      os.path.join(folder, f"{index}.json")))
        n_features.append(inp.n_itp_features)
        progress.update(1)
    progress.close()
    lines = [
        f"# ReAGent on {args.model} ({args.task}), {args.level} level: n = {len(results)} test reviews "
        f"with {args.min_features}..{args.max_features} features (median {int(np.median(n_features))}); "
        "explaining the true class; mean ± 95 % CI",
        "",
        f"Command: `python benchmarks/reagent.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
        f"Machine: {machine()}. rows / n: model rows per feature, counted at the head (the prediction pass included where a method makes one); "
        "steps / probe and probes stopped: ReAGent's updates per probe and the share of probes that met "
        "the stopping condition.",
    ]
    for masking in MASKINGS:
        lines += ["", f"## Evaluated in the `{masking}` game", "", *table(results, masking, n_features)]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
