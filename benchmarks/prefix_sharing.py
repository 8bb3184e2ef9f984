r"""
What prefix sharing saves (issue 18): each perturbation method's wall time with the
prefix-sharing engine divided by its wall time on the same rows as plain batched
passes (``captum_pi.prefix_sharing(False)``), measured side by side in one run
(medians of interleaved repeats), and the largest change of an attribution.

Two prompts: the classifier's own prompt prefix, and a long-instruction prompt (a few
hundred tokens of fixed annotation guidelines before that prefix). Methods: Feature
Ablation (n + 1 rows), Kernel SHAP, LIME and MP-PI at 2n rows, word features, under
the deletion game (``--masking replace`` for the paper's game).

    python benchmarks/prefix_sharing.py                       # SmolLM2 (LoRA), 3 reviews
    python benchmarks/prefix_sharing.py --model gemma3-lora --limit 1 --prompts default

Writes ``benchmarks/results/prefix_sharing/<model>-<masking>.md``, ``.json`` and
``.png``. No timing is asserted anywhere: the ratios are results.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import MODELS, load_bundle, sample_reviews  # noqa: E402

import captum_pi  # noqa: E402
from captum_pi import MultiPassProgressive, TextFeatureInput, feature_attributions  # noqa: E402
from captum_pi._core.captum_adapters import TokenFeatureAblation, TokenKernelShap, TokenLime  # noqa: E402

#: Fixed instructions put before the classifier's prompt prefix in the long prompt.
LONG_INSTRUCTIONS = (
    "You are an annotator for a pharmacovigilance study. You will read one patient review of a "
    "prescription or over-the-counter medication, written by the patient in their own words on a "
    "public health forum. Your task is to judge the overall sentiment the patient expresses about "
    "the medication. Follow these guidelines carefully. First, consider the effectiveness of the "
    "medication for the condition it was taken for: did the symptoms improve, stay the same, or get "
    "worse? Second, consider the side effects the patient reports, their severity and duration, and "
    "whether the patient found them acceptable given the benefit. Third, consider whether the patient "
    "would recommend the medication to others, or whether they stopped taking it, switched to another "
    "treatment, or asked their doctor for an alternative. Reviews that describe strong relief with mild "
    "or temporary side effects are positive. Reviews that describe no relief, severe or lasting side "
    "effects, or that warn other patients are negative. Mixed reviews should be judged by the balance "
    "the patient draws in their own conclusion, usually in the last sentences. Ignore spelling mistakes, "
    "dosage details, prices, insurance, pharmacy experiences and the behaviour of doctors unless they "
    "bear on the patient's judgement of the medication itself. Do not infer sentiment from the name of "
    "the drug or the condition alone. Read the whole review before deciding, because patients often "
    "change their mind as they describe the course of their treatment over weeks or months.\n\n"
)

PROMPT_LABELS = {"default": "the classifier's prompt prefix", "long": "long-instruction prompt"}

METHODS: Dict[str, Callable] = {
    "Feature Ablation": lambda model: TokenFeatureAblation(model),
    "Kernel SHAP (2n)": lambda model: TokenKernelShap(model),
    "LIME (2n)": lambda model: TokenLime(model),
    "MP-PI (2n)": lambda model: MultiPassProgressive(model),
}


def method_options(name: str, n_features: int) -> dict:
    return {} if name == "Feature Ablation" else {"n_samples": 2 * n_features, "seed": 0}


def pick_reviews(limit: int, min_words: int, max_words: int, seed: int) -> List[tuple]:
    picked = []
    for index, text, label in sample_reviews("binary", seed):
        if min_words <= len(text.split()) <= max_words:
            picked.append((index, text, label))
        if len(picked) == limit:
            break
    return picked


def measure(explainer, inp, options: dict, masking: str, per_eval: int, repeats: int, target: int) -> dict:
    r"""Median wall times with and without prefix sharing (interleaved, the order
    alternating), the rows and positions of one explanation, and the largest change
    of a feature's attribution."""
    forward = explainer.per_position
    arguments = dict(target=target, feature_mask=inp.feature_mask, baselines=inp.baselines,
                     masking=masking, perturbations_per_eval=per_eval, **options)
    times: Dict[bool, List[float]] = {True: [], False: []}
    results: Dict[bool, torch.Tensor] = {}
    counts: Dict[bool, tuple] = {}
    for repeat in range(repeats):
        for share in ((True, False) if repeat % 2 == 0 else (False, True)):
            before = (forward.n_rows, forward.n_tokens_requested, forward.n_tokens_computed)
            with captum_pi.prefix_sharing(share):
                start = time.perf_counter()
                attributions = explainer.attribute(inp.input_ids, **arguments)
                times[share].append(time.perf_counter() - start)
            counts[share] = (forward.n_rows - before[0], forward.n_tokens_requested - before[1],
                             forward.n_tokens_computed - before[2])
            results[share] = feature_attributions(attributions, inp.feature_mask)[0]
    shared, plain = statistics.median(times[True]), statistics.median(times[False])
    rows, requested, computed = counts[True]
    return {
        "shared_s": shared, "plain_s": plain, "ratio": shared / plain, "rows": rows,
        "positions_requested": requested, "positions_computed": computed,
        "max_abs_change": float((results[True] - results[False]).abs().max()),
    }


def plot(summary: Dict[str, Dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prompts = list(summary)
    methods = list(METHODS)
    figure, axis = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(prompts)
    for offset, prompt in enumerate(prompts):
        values = [summary[prompt].get(method, float("nan")) for method in methods]
        positions = [index + (offset - (len(prompts) - 1) / 2) * width for index in range(len(methods))]
        bars = axis.bar(positions, values, width, label=PROMPT_LABELS[prompt])
        axis.bar_label(bars, fmt="%.2f", fontsize=8)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.axhline(0.6, color="grey", linewidth=0.8, linestyle="--", label="goal (long prompt)")
    axis.set_xticks(range(len(methods)), methods)
    axis.set_ylabel("time with sharing / plain passes")
    axis.set_ylim(0, 1.25)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-lora", choices=MODELS)
    parser.add_argument("--masking", default="delete", choices=["delete", "replace"])
    parser.add_argument("--prompts", nargs="+", default=["default", "long"], choices=["default", "long"])
    parser.add_argument("--limit", type=int, default=3, help="reviews")
    parser.add_argument("--min-words", type=int, default=25)
    parser.add_argument("--max-words", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--per-eval", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out-dir", default=str(HERE / "results" / "prefix_sharing"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model, "binary")
    templates = {"default": bundle.prefix + "{}", "long": LONG_INSTRUCTIONS + bundle.prefix + "{}"}
    reviews = pick_reviews(args.limit, args.min_words, args.max_words, args.seed)
    records = []
    for prompt in args.prompts:
        for index, text, label in reviews:
            inp = TextFeatureInput(text, bundle.tokenizer, level="word", template=templates[prompt],
                                   masking=args.masking)
            prompt_tokens = int((inp.feature_mask[0] < 0).sum())
            with torch.no_grad():  # warm-up, so the first method measured pays no start-up
                bundle.model(input_ids=inp.input_ids.repeat(args.per_eval, 1))
            for name, make in METHODS.items():
                explainer = make(bundle.model)
                engine = explainer.per_position.prefix_engine
                record = {"prompt": prompt, "review": index, "tokens": inp.input_ids.shape[1],
                          "fixed_tokens": prompt_tokens, "n_features": inp.n_itp_features, "method": name,
                          "engine": "on" if explainer.per_position.shares_prefixes else f"off: {engine.reason if engine else 'no engine'}"}
                record.update(measure(explainer, inp, method_options(name, inp.n_itp_features), args.masking,
                                      args.per_eval, args.repeats, label))
                records.append(record)
                print(json.dumps(record), flush=True)
    write_results(args, records)


def write_results(args: argparse.Namespace, records: List[dict]) -> None:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{args.model}-{args.masking}"
    summary: Dict[str, Dict[str, float]] = {}
    lines = [
        f"# Prefix sharing: time with the engine / the same rows as plain batched passes ({args.model}, "
        f"{args.masking} game)",
        "",
        f"Command: `python benchmarks/prefix_sharing.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}; word features, "
        f"perturbations_per_eval = {args.per_eval}, medians of {args.repeats} interleaved repeats per "
        f"review, then the median over {args.limit} reviews of {args.min_words}-{args.max_words} words.",
        "",
        "| prompt | method | tokens (fixed) | n | rows | positions computed / requested | "
        "time shared (s) | time plain (s) | ratio (median, range) | max abs change of an attribution |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for prompt in args.prompts:
        for method in METHODS:
            group = [r for r in records if r["prompt"] == prompt and r["method"] == method]
            ratios = [r["ratio"] for r in group]
            median_ratio = statistics.median(ratios)
            summary.setdefault(prompt, {})[method] = median_ratio
            lines.append(
                f"| {prompt} | {method} | {statistics.median(r['tokens'] for r in group):.0f} "
                f"({statistics.median(r['fixed_tokens'] for r in group):.0f}) "
                f"| {statistics.median(r['n_features'] for r in group):.0f} "
                f"| {statistics.median(r['rows'] for r in group):.0f} "
                f"| {sum(r['positions_computed'] for r in group) / sum(r['positions_requested'] for r in group):.2f} "
                f"| {statistics.median(r['shared_s'] for r in group):.2f} "
                f"| {statistics.median(r['plain_s'] for r in group):.2f} "
                f"| **{median_ratio:.2f}** ({min(ratios):.2f}-{max(ratios):.2f}) "
                f"| {max(r['max_abs_change'] for r in group):.1e} |"
            )
    engines = sorted({r["engine"] for r in records})
    lines += ["", f"Engine: {'; '.join(engines)}.", ""]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(records, indent=1) + "\n")
    plot(summary, stem.with_suffix(".png"), f"Prefix sharing on {args.model} ({args.masking} game, word features)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
