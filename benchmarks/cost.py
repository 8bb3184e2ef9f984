r"""
Benchmark 3: what Progressive Inference costs, as ratios measured side by side in
one run (medians of interleaved repeats).

1. SP-PI wall time / one plain forward pass of the model on the same input.
2. MP-PI wall time / the same number of plain batched forward passes (the overhead
   of sampling, bookkeeping and the regression), at n features.
3. Solving for P': time and peak (numpy) memory for n = 10, 25, 50, 100, 200.
4. Peak resident memory of MP-PI as perturbations_per_eval grows (one subprocess per
   setting).

    python benchmarks/cost.py --model smollm2 --features 50 --repeats 5
    python benchmarks/cost.py --model tiny-gpt2          # seconds, for a smoke run

Features are contiguous token spans of a real review (cost does not depend on what
the features mean); the mask token is the id of "...".
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Callable, List, Tuple

import torch

from captum_pi import MultiPassProgressive, SinglePassProgressive
from captum_pi._core import mask_distribution as md

HERE = os.path.dirname(os.path.abspath(__file__))


def load(model_name: str) -> Tuple[torch.nn.Module, torch.Tensor, int]:
    r"""Model, token ids of a long test review [1, T] and the mask token id."""
    if model_name == "tiny-gpt2":
        from transformers import GPT2Config, GPT2ForSequenceClassification

        torch.manual_seed(0)
        model = GPT2ForSequenceClassification(
            GPT2Config(vocab_size=512, n_layer=2, n_embd=64, n_head=2, num_labels=2, pad_token_id=0)
        ).eval()
        ids = torch.randint(1, 512, (1, 160), generator=torch.Generator().manual_seed(0))
        return model, ids, 3
    from captum_pi.data import load_drug_reviews
    from captum_pi.models import load_default_classifier

    bundle = load_default_classifier()
    reviews = load_drug_reviews("test", "binary")
    text = max(reviews.texts[:50], key=len)
    ids = bundle.tokenizer(bundle.prefix + text, return_tensors="pt")["input_ids"][:, :200]
    mask_id = bundle.tokenizer.convert_tokens_to_ids(bundle.tokenizer.tokenize("...")[0])
    return bundle.model, ids, int(mask_id)


def span_features(length: int, n_features: int) -> torch.Tensor:
    r"""``n_features`` contiguous spans over tokens 1..length-1 (token 0 fixed)."""
    ids = (torch.arange(length - 1) * n_features) // (length - 1)
    return torch.cat([torch.tensor([-1]), ids])[None]


def median_time(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(functions: List[Callable[[], object]], repeats: int) -> List[float]:
    r"""Median times of several functions, run alternately so load drifts hit all alike."""
    for function in functions:
        function()  # warm-up
    samples: List[List[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            samples[index].append(median_time(function, 1))
    return [statistics.median(values) for values in samples]


def sp_pi_ratio(model: torch.nn.Module, ids: torch.Tensor, words: torch.Tensor, repeats: int) -> dict:
    sp = SinglePassProgressive(model)

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    def explain() -> None:
        sp.attribute(ids, feature_mask=words)

    plain_time, sp_time = interleaved([plain, explain], repeats)
    return {"plain_forward_s": plain_time, "sp_pi_s": sp_time, "ratio": sp_time / plain_time}


def mp_pi_ratio(model: torch.nn.Module, ids: torch.Tensor, words: torch.Tensor, mask_id: int,
                repeats: int, per_eval: int) -> dict:
    mp = MultiPassProgressive(model)
    n = int(words.max()) + 1
    budget = 2 * n
    md.mask_distribution(n)  # P' is cached per n; its cost is reported separately
    batches = [ids.repeat(min(per_eval, budget - 2 - start), 1) for start in range(0, budget - 2, per_eval)]

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids.repeat(2, 1))  # the unmasked and fully masked anchors
            for batch in batches:
                model(input_ids=batch)

    def explain() -> None:
        mp.attribute(ids, feature_mask=words, baselines=mask_id, seed=0, perturbations_per_eval=per_eval)

    plain_time, mp_time = interleaved([plain, explain], repeats)
    return {"n_features": n, "passes": budget, "plain_passes_s": plain_time, "mp_pi_s": mp_time,
            "ratio": mp_time / plain_time}


def solver_costs(sizes: List[int]) -> List[dict]:
    rows = []
    for n in sizes:
        md.mask_distribution.cache_clear()
        tracemalloc.start()
        start = time.perf_counter()
        distribution = md.mask_distribution(n)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append({"n": n, "solver": distribution.solver, "seconds": elapsed, "peak_MiB": peak / 2**20})
    return rows


def memory_probe(model_name: str, n_features: int, per_eval: int) -> None:
    model, ids, mask_id = load(model_name)
    words = span_features(ids.shape[1], n_features)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    MultiPassProgressive(model).attribute(ids, feature_mask=words, baselines=mask_id, seed=0,
                                          perturbations_per_eval=per_eval)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"per_eval": per_eval, "peak_rss_MiB": after / 1024,
                      "growth_during_mp_pi_MiB": (after - before) / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "tiny-gpt2"])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-eval", type=int, default=16)
    parser.add_argument("--memory-per-eval", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--solver-sizes", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--out", default=None, help="Markdown file for the results")
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe is not None:
        return memory_probe(args.model, args.features, args.memory_probe)
    torch.set_num_threads(os.cpu_count() or 1)
    model, ids, mask_id = load(args.model)
    words = span_features(ids.shape[1], args.features)
    sp = sp_pi_ratio(model, ids, words, args.repeats)
    mp = mp_pi_ratio(model, ids, words, mask_id, args.repeats, args.per_eval)
    solver = solver_costs(args.solver_sizes)
    memory = [
        json.loads(subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--features", str(args.features),
             "--memory-probe", str(per_eval)], capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1])
        for per_eval in args.memory_per_eval
    ]
    lines = [
        f"# Cost of Progressive Inference ({args.model}, {ids.shape[1]} tokens, {args.features} features)",
        "",
        f"Command: `python benchmarks/cost.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}; medians of {args.repeats} interleaved repeats.",
        "",
        "| measurement | ours (s) | reference (s) | ratio | target |",
        "|---|---|---|---|---|",
        f"| SP-PI / one plain forward pass | {sp['sp_pi_s']:.4f} | {sp['plain_forward_s']:.4f} | "
        f"{sp['ratio']:.3f} | <= 1.1 |",
        f"| MP-PI ({mp['passes']} passes, n = {mp['n_features']}) / {mp['passes']} plain batched passes | "
        f"{mp['mp_pi_s']:.3f} | {mp['plain_passes_s']:.3f} | {mp['ratio']:.3f} | <= 1.2 |",
        "",
        "| n | P' solver | solve time (s) | peak numpy memory (MiB) |",
        "|---|---|---|---|",
        *[f"| {row['n']} | {row['solver']} | {row['seconds']:.3f} | {row['peak_MiB']:.1f} |" for row in solver],
        "",
        "| perturbations_per_eval | peak RSS (MiB) | RSS growth during MP-PI (MiB) |",
        "|---|---|---|",
        *[f"| {row['per_eval']} | {row['peak_rss_MiB']:.0f} | {row['growth_during_mp_pi_MiB']:.0f} |"
          for row in memory],
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
