r"""
Benchmark 2: attribution quality per model call, against Captum. For test reviews with
at most 10 features (sentences, or the words of short reviews), exact Shapley values
come from enumerating the coalitions (captum_pi.metrics.shapley_values: 2^n rows under
masking="replace", 2^(n-1) under "delete"); MP-PI (optimized and Shapley sampling) and
Captum's KernelShap, ShapleyValueSampling and Lime are run at budgets of B = n, 2n, 4n,
8n, 16n model rows, and compared with the exact values (cosine similarity, relative L2
error), with the rows each method requested. Each masking game (--masking: "delete"
removes the tokens of absent features, "replace" replaces them with the mask token) is
a separate run with its own exact values, cache and report.

A second reference separates MP-PI's two sources of error: the exact Shapley values of
the progressive-inference game that MP-PI actually samples
(captum_pi.metrics.progressive_shapley_values). MP-PI converges to these values; the
cosine between them and the exact values is the ceiling that PI's premise
(p_k = f(x'_k)) sets on this model (1 under deletion, where PI is exact by causality,
up to float noise). The report gives, per method, the first budget whose mean cosine
reaches 0.95 and the ratio of MP-PI's budget to Kernel SHAP's, and a plot of cosine
against budget.

    python benchmarks/shapley_budget.py --model smollm2 --level sentence --limit 10 --seeds 3 \
        --masking delete replace

Budgets: the target (the review's label) is given, so no method spends a prediction
pass, and every method gets exactly B rows where its unit allows: MP-PI, Kernel SHAP
and Lime get n_samples = B (MP-PI at least 3); Shapley Value Sampling gets the largest
number of permutations m >= 1 with 2 + m (n - 1) <= B (at least 1, so at B = n it may
spend up to n + 1 rows; it evaluates each distinct coalition once, so it can spend
fewer). The "rows / n" column is measured: the rows each method requested.

Speed: every model call goes through a memoising forward (_common.CachedPerPosition)
that evaluates each distinct row of real tokens once and, as attention is causal,
answers any row that is a prefix of a computed one from the cache; it is cleared
between reviews. The exact values compute (nearly) every coalition a method can ask
for, so the methods cost almost nothing to run, while the rows they *request* are
counted as their cost. Values from the cache differ from a direct model call only by
float noise (~1e-6). For the same reason no wall time is reported.

Exact values and per-(example, method, budget, seed) results are cached under
benchmarks/cache/shapley_budget/<model>-<task>-<level>-<masking>/; results go to
benchmarks/results/shapley_budget/<model>-<task>-<level>-<masking>.md and .png.
"""
import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MODELS, CachedPerPosition, load_bundle, machine, sample_reviews  # noqa: E402

from captum_pi import feature_attributions  # noqa: E402
from captum_pi._core.masking import MASKINGS  # noqa: E402
from captum_pi.metrics import progressive_shapley_values, shapley_values  # noqa: E402
from captum_pi.registry import METHODS  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
COMPARED = ("mp-pi", "mp-pi-shapley", "kernel-shap", "shapley-value-sampling", "lime")


def budget_options(name: str, budget: int, n: int) -> dict:
    r"""``n_samples`` that spends ``budget`` rows on a row with ``n`` features, the
    target given (no prediction pass)."""
    if name.startswith("mp-pi"):
        return {"n_samples": max(budget, 3)}
    if name == "shapley-value-sampling":  # at most 2 + m (n - 1) rows
        return {"n_samples": max(1, (budget - 2) // max(n - 1, 1))}
    return {"n_samples": max(budget, 1)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def agreement(phi: np.ndarray, exact: np.ndarray, pi_exact: np.ndarray) -> Dict[str, float]:
    relative = float(np.linalg.norm(phi - exact) / (np.linalg.norm(exact) + 1e-12))
    return {"cosine": cosine(phi, exact), "relative_l2": relative,
            "cosine_pi_game": cosine(phi, pi_exact)}


def run_model(bundle, model_name: str, limit: int, masking: str, args: argparse.Namespace) -> None:
    key = f"{model_name}-{args.task}-{args.level}-{masking}"
    cache_dir = os.path.join(HERE, "cache", "shapley_budget", key)
    out_dir = os.path.join(HERE, "results", "shapley_budget")
    os.makedirs(cache_dir, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    forward = CachedPerPosition(bundle.model)
    methods = {name: METHODS[name].build(forward) for name in COMPARED}
    records: List[dict] = []
    premise: List[float] = []
    feature_counts: List[int] = []
    chosen = 0
    progress = tqdm(total=limit, desc=f"{key} examples")
    for index, text, label in sample_reviews(args.task, args.seed):
        if chosen == limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=args.level, template=bundle.prefix + "{}",
                               masking=masking)
        n = inp.n_itp_features
        if not args.min_features <= n <= args.max_features:
            continue
        forward.clear()  # one review's rows at a time
        path = os.path.join(cache_dir, f"{index}.json")
        cached = json.load(open(path)) if os.path.exists(path) else {}
        common = dict(feature_mask=inp.feature_mask, baselines=inp.baselines_for(masking),
                      attention_mask=inp.attention_mask, masking=masking)
        if "exact" not in cached:
            with forward.measure() as rows:
                exact = shapley_values(forward, inp.input_ids, target=label, **common)
            cached["exact"] = exact.values[0, :n].tolist()
            cached["exact_rows"] = rows["computed"]
        if "pi_exact" not in cached:
            with forward.measure() as rows:
                pi_game = progressive_shapley_values(forward, inp.input_ids, target=label, **common)
            cached["pi_exact"] = pi_game.values[0, :n].tolist()
            cached["pi_exact_rows"] = rows["computed"]
        with open(path, "w") as handle:
            json.dump(cached, handle)
        exact, pi_exact = np.array(cached["exact"]), np.array(cached["pi_exact"])
        premise.append(cosine(pi_exact, exact))
        feature_counts.append(n)
        for name, method in methods.items():
            for multiple in args.multiples:
                for seed in range(args.seeds):
                    run_key = f"{name}|{multiple}|{seed}"
                    if run_key in cached:
                        continue
                    with forward.measure() as rows:
                        attr = method.attribute(inp.input_ids, target=label, seed=seed,
                                                **budget_options(name, multiple * n, n), **common)
                    phi = feature_attributions(attr.float(), inp.feature_mask)[0].numpy()
                    cached[run_key] = {"rows": rows["rows"], "computed": rows["computed"],
                                       **agreement(phi, exact, pi_exact)}
            with open(path, "w") as handle:  # resumable after every method
                json.dump(cached, handle)
        for run_key, value in cached.items():
            if "|" not in run_key:
                continue
            name, multiple, seed = run_key.split("|")
            if int(multiple) in args.multiples and int(seed) < args.seeds:
                records.append({"method": name, "multiple": int(multiple), "n": n, **value})
        chosen += 1
        progress.update(1)
    progress.close()
    forward.clear()
    write_report(records, premise, feature_counts, args, model_name, masking, key, out_dir, chosen)
    plot_report(records, args, masking, key, out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["smollm2"], choices=MODELS)
    parser.add_argument("--task", default="binary", choices=["binary", "3class"])
    parser.add_argument("--level", default="sentence", choices=["word", "sentence"])
    parser.add_argument("--masking", nargs="+", default=list(MASKINGS), choices=MASKINGS,
                        help="masking games, each a separate run: 'delete' removes the tokens of "
                             "absent features, 'replace' replaces them with the mask token")
    parser.add_argument("--limit", type=int, nargs="+", default=[10],
                        help="test reviews: one number, or one per --model")
    parser.add_argument("--min-features", type=int, default=4)
    parser.add_argument("--max-features", type=int, default=10)
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, default=3, help="sampling seeds per (example, method, budget)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the review sample")
    args = parser.parse_args()
    if args.max_features > 12:
        parser.error("exact Shapley values enumerate 2^n coalitions; use --max-features <= 12.")
    if len(args.limit) not in (1, len(args.model)):
        parser.error(f"--limit takes one number or one per model ({len(args.model)}), got {args.limit}.")
    limits = args.limit * len(args.model) if len(args.limit) == 1 else args.limit
    for model_name, limit in zip(args.model, limits):
        bundle = load_bundle(model_name, args.task)
        for masking in dict.fromkeys(args.masking):
            run_model(bundle, model_name, limit, masking, args)


def mean_cosines(records: List[dict], name: str, multiples: List[int], key: str = "cosine") -> List[float]:
    return [float(np.mean([r[key] for r in records if r["method"] == name and r["multiple"] == m]))
            if any(r["method"] == name and r["multiple"] == m for r in records) else float("nan")
            for m in multiples]


def plot_report(records: List[dict], args: argparse.Namespace, masking: str, key: str, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.5, 4.2))
    for name in COMPARED:
        line, = ax.plot(args.multiples, mean_cosines(records, name, args.multiples), marker="o",
                        label=METHODS[name].title)
        if name == "mp-pi":
            ax.plot(args.multiples, mean_cosines(records, name, args.multiples, "cosine_pi_game"),
                    marker="o", linestyle="--", color=line.get_color(),
                    label="MP-PI, to the PI game's Shapley values")
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(args.multiples, [f"{m}n" for m in args.multiples])
    ax.set_xlabel("budget B (model rows)")
    ax.set_ylabel("mean cosine to exact Shapley values")
    ax.set_title(f"Quality per model call, {key} (masking={masking!r})", fontsize=10)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, key + ".png"), dpi=110)
    plt.close(figure)


def write_report(records: List[dict], premise: List[float], feature_counts: List[int],
                 args: argparse.Namespace, model_name: str, masking: str, key: str, out_dir: str,
                 chosen: int) -> None:
    game = {"delete": "deletion game (masking='delete': absent features' tokens removed)",
            "replace": "replacement game (masking='replace': absent features' tokens replaced "
                       "by the mask token)"}[masking]
    lines = [
        f"# Quality per model call, {game}: {model_name}, {args.task}, {args.level} level, "
        f"{chosen} test reviews with {args.min_features}..{args.max_features} features, {args.seeds} seeds",
        "",
        f"Command: `python benchmarks/shapley_budget.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine()}. Feature counts of the reviews: {feature_counts}. Mean over examples "
        "and seeds (the relative error's median, as reviews whose exact values are near 0 dominate "
        "its mean); rows / n: rows each method requested (measured; the target is given, so no "
        "prediction pass), over n; PI game: cosine to the exact Shapley values of the "
        "progressive-inference game (the values MP-PI converges to). Model calls go through a "
        "memoising forward (each distinct row, and every prefix of it, evaluated once per review), "
        "so no wall time is reported.",
        "",
        f"Ceiling set by PI's premise: cosine between the exact Shapley values of the PI game "
        f"and of the model, mean {np.mean(premise):.3f}, min {np.min(premise):.3f} over the reviews.",
        "",
        "| method | B | rows / n | cosine to exact | median relative L2 error | cosine to PI game |",
        "|---|---|---|---|---|---|",
    ]
    first_reaching: Dict[str, int] = {}
    first_reaching_own: Dict[str, int] = {}  # MP-PI against the PI game, the others against exact
    for name in COMPARED:
        for multiple in args.multiples:
            subset = [r for r in records if r["method"] == name and r["multiple"] == multiple]
            if not subset:
                continue
            cosine = np.mean([r["cosine"] for r in subset])
            own = np.mean([r["cosine_pi_game" if name.startswith("mp-pi") else "cosine"] for r in subset])
            lines.append(
                f"| {METHODS[name].title} | "
                f"{multiple}n | {np.mean([r['rows'] / r['n'] for r in subset]):.2f} | {cosine:.3f} | "
                f"{np.median([r['relative_l2'] for r in subset]):.3f} | "
                f"{np.mean([r['cosine_pi_game'] for r in subset]):.3f} |")
            if cosine >= 0.95 and name not in first_reaching:
                first_reaching[name] = multiple
            if own >= 0.95 and name not in first_reaching_own:
                first_reaching_own[name] = multiple

    def first(reached: Dict[str, int], name: str) -> str:
        if reached is first_reaching_own and name == "lime":
            return "n/a (LIME's ridge fit does not converge to Shapley values)"
        return f"{reached[name]}n" if name in reached else f"> {args.multiples[-1]}n"

    lines += ["", "| method | first budget with mean cosine >= 0.95 to the exact values | "
                  "... to the values it converges to (the PI game for MP-PI) |", "|---|---|---|"]
    lines += [f"| {METHODS[name].title} | {first(first_reaching, name)} | {first(first_reaching_own, name)} |"
              for name in COMPARED]
    lines += ["", f"Ratio of budgets to reach 0.95 to the exact values, MP-PI / Kernel SHAP: "
                  f"{budget_ratio(first_reaching)}; each to the values it converges to: "
                  f"{budget_ratio(first_reaching_own)}"]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out_dir, key + ".md"), "w") as handle:
        handle.write(text + "\n")


def budget_ratio(first_reaching: Dict[str, int]) -> str:
    ours, theirs = first_reaching.get("mp-pi"), first_reaching.get("kernel-shap")
    if ours is not None and theirs is not None:
        return f"{ours / theirs:.2f}"
    if ours is None and theirs is None:
        return "neither reaches 0.95 within the budgets run"
    return "only Kernel SHAP reaches 0.95" if ours is None else "only MP-PI reaches 0.95"


if __name__ == "__main__":
    main()
