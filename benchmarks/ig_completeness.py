r"""
Integrated Gradients' completeness gap on the default classifier, by number of
integration steps: why ``TokenIntegratedGradients`` takes 257 trapezoid points by default.

For each of the first ``--reviews`` test reviews of at most ``--max-words`` words,
IG explains the predicted class at each ``--level`` with each ``--steps`` value
and each of Captum's ``--rules`` (``n-1`` is the paper's budget of ``2n`` passes) through the package's own front
end, and records the relative completeness gap
``|sum(attributions) - (f(x) - f(baseline))| / |f(x) - f(baseline)|`` that
``TokenIntegratedGradients.last_completeness_gap`` reports. Per-review results are
cached in ``--out``'s JSON, so an interrupted run resumes.

    python benchmarks/ig_completeness.py --reviews 6 --steps n-1 64 257 --level word
"""
import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Dict, List

from captum_pi import LLMClassifierAttribution, TextFeatureInput
from captum_pi.data import load_drug_reviews
from captum_pi.models import load_default_classifier
from captum_pi.registry import get_method

TOLERANCE = 0.05


def relative_gap(
    explainer: LLMClassifierAttribution, view: TextFeatureInput, steps: int, rule: str
) -> Dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer.attribute(view, n_steps=steps, method=rule)
    method = explainer.attr_method
    gap = float(method.last_completeness_gap[0])
    difference = float(method.last_value_difference[0])
    return {"gap": gap, "difference": difference, "relative": gap / max(abs(difference), 1e-12)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=6)
    parser.add_argument("--max-words", type=int, default=80)
    parser.add_argument("--steps", nargs="+", default=["n-1", "64", "257"])
    parser.add_argument("--rules", nargs="+", default=["gausslegendre", "riemann_trapezoid"],
                        help="Captum's integration methods")
    parser.add_argument("--level", nargs="+", default=["word", "sentence"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ig_completeness.md"))
    args = parser.parse_args()
    cache_path = args.out.with_suffix(".json")
    cache: Dict[str, Dict[str, float]] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    bundle = load_default_classifier()
    explainer = LLMClassifierAttribution(get_method("integrated-gradients").build(bundle.model), bundle.tokenizer)
    texts = [t for t in load_drug_reviews("test", "binary").texts if len(t.split()) <= args.max_words][: args.reviews]
    for index, text in enumerate(texts):
        for level in args.level:
            view = TextFeatureInput(text, bundle.tokenizer, level=level, template=bundle.prefix + "{}")
            for rule in args.rules:
                for label in args.steps:
                    key = f"{index}|{level}|{rule}|{label}"
                    if key in cache:
                        continue
                    steps = max(view.n_itp_features - 1, 2) if label == "n-1" else int(label)
                    start = time.perf_counter()
                    cache[key] = {**relative_gap(explainer, view, steps, rule), "steps": steps,
                                  "seconds": time.perf_counter() - start}
                    cache_path.parent.mkdir(parents=True, exist_ok=True)
                    cache_path.write_text(json.dumps(cache, indent=1))
                    print(key, json.dumps(cache[key]), flush=True)
    write_table(cache, texts, args)


def write_table(cache: Dict[str, Dict[str, float]], texts: List[str], args: argparse.Namespace) -> None:
    lines = [
        "# Integrated Gradients: completeness gap by number of steps",
        "",
        f"Command: `python benchmarks/ig_completeness.py --reviews {args.reviews} --max-words {args.max_words} "
        f"--steps {' '.join(args.steps)} --rules {' '.join(args.rules)} --level {' '.join(args.level)}`",
        "",
        f"Default classifier (SmolLM2-135M-Instruct, shipped head), {len(texts)} test reviews of at most "
        f"{args.max_words} words, predicted class; baseline: every feature masked. The package's default is "
        "riemann_trapezoid with 257 points. Relative gap = |sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)|.",
        "",
        "| level | rule | steps | median relative gap | max | reviews under 5 % | median s per review |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in args.level:
        for rule in args.rules:
            for label in args.steps:
                keys = [f"{i}|{level}|{rule}|{label}" for i in range(len(texts))]
                rows = [cache[key] for key in keys if key in cache]
                if rows:
                    lines.append(_row(level, rule, label, rows))
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _row(level: str, rule: str, label: str, rows: List[Dict[str, float]]) -> str:
    relative = [row["relative"] for row in rows]
    under = sum(value <= TOLERANCE for value in relative)
    return (
        f"| {level} | {rule} | {label} | {statistics.median(relative):.1%} | {max(relative):.1%} | "
        f"{under} of {len(rows)} | {statistics.median(row['seconds'] for row in rows):.1f} |"
    )


if __name__ == "__main__":
    main()
