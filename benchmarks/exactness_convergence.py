r"""
MP-PI against exact Shapley values on the exactness model (a running sum of token
embeddings with a zero mask embedding and a nonlinear head, whose intermediate
predictions are exactly its predictions on masked inputs), beside Captum's
KernelShap at the same number of model calls (forward-pass rows).

    python benchmarks/exactness_convergence.py --features 8 --models 5 --seeds 20

Writes a Markdown table to stdout and, with --out, to a file.
"""
import argparse
import os
import sys
import time
from typing import Callable, Dict, List

import numpy as np
import torch
from captum.attr import KernelShap

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from toy_models import MASK_ID, RunningSumClassifier, exact_shapley, masked_value  # noqa: E402

from captum_pi import MultiPassProgressive, feature_attributions  # noqa: E402
from captum_pi._core import mask_distribution as md  # noqa: E402

SHIPPED_FRACTION = md.DEFENSIVE_SHAPLEY_FRACTION


class _CountingProbabilities(torch.nn.Module):
    r"""Final-token probabilities for Captum's KernelShap, counting the rows evaluated."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.rows += input_ids.shape[0]
        return torch.softmax(self.model(input_ids)[:, -1], dim=-1)


def _methods(model: torch.nn.Module, fractions: List[float]) -> Dict[str, Callable]:
    mp = MultiPassProgressive(model)
    counting = _CountingProbabilities(model)
    kernel_shap = KernelShap(counting)

    def mp_pi(sampling: str, fraction: float = SHIPPED_FRACTION) -> Callable:
        def run(ids, mask, target, budget, seed):
            if fraction != md.DEFENSIVE_SHAPLEY_FRACTION:
                md.DEFENSIVE_SHAPLEY_FRACTION = fraction  # P' is cached per n: rebuild it
                md.mask_distribution.cache_clear()
            mp.per_position.n_rows = 0
            attr = mp.attribute(ids, target=target, feature_mask=mask, baselines=MASK_ID,
                                n_samples=budget, seed=seed, sampling=sampling)
            return feature_attributions(attr, mask)[0], mp.per_position.n_rows
        return run

    def captum_kernel_shap(ids, mask, target, budget, seed):
        torch.manual_seed(seed)
        counting.rows = 0
        attr = kernel_shap.attribute(ids, baselines=MASK_ID, target=target, feature_mask=mask,
                                     n_samples=budget, perturbations_per_eval=64)
        return feature_attributions(attr, mask)[0], counting.rows

    methods = {"MP-PI (optimized)": mp_pi("optimized"), "MP-PI (shapley)": mp_pi("shapley"),
               "Captum KernelShap": captum_kernel_shap}
    for fraction in fractions:
        methods[f"MP-PI (optimized, Shapley fraction {fraction})"] = mp_pi("optimized", fraction)
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--models", type=int, default=5, help="random exactness models (and inputs)")
    parser.add_argument("--seeds", type=int, default=20, help="sampling seeds per model")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--shapley-fractions", type=float, nargs="*", default=[],
                        help="also run MP-PI with these defensive Shapley fractions of P'")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    n = args.features
    rows: List[str] = []
    results: Dict[tuple, List[tuple]] = {}
    start = time.time()
    for model_seed in range(args.models):
        model = RunningSumClassifier(vocab_size=64, dim=8, n_classes=3, seed=model_seed)
        generator = torch.Generator().manual_seed(1000 + model_seed)
        ids = torch.randint(1, 64, (1, 2 * n), generator=generator)
        mask = torch.arange(2 * n).div(2, rounding_mode="floor")[None]
        target = int(model(ids)[0, -1].argmax())
        exact = exact_shapley(lambda s: masked_value(model, ids[0], mask[0], s, target), n)
        for name, run in _methods(model, args.shapley_fractions).items():
            for multiple in args.multiples:
                for seed in range(args.seeds):
                    phi, calls = run(ids, mask, target, multiple * n, seed)
                    phi = phi.double()
                    cosine = float(torch.nn.functional.cosine_similarity(phi, exact, dim=0))
                    max_error = float((phi - exact).abs().max())
                    results.setdefault((name, multiple), []).append((cosine, max_error, calls))
    rows.append(f"n = {n} features; {args.models} models x {args.seeds} seeds; mean (95% CI half-width)\n")
    rows.append("| method | B | model rows | cosine to exact | max abs error |")
    rows.append("|---|---|---|---|---|")
    for (name, multiple), values in results.items():
        values = np.array(values)
        half = 1.96 * values.std(axis=0, ddof=1) / np.sqrt(len(values))
        rows.append(
            f"| {name} | {multiple}n | {values[:, 2].mean():.0f} | "
            f"{values[:, 0].mean():.3f} (±{half[0]:.3f}) | {values[:, 1].mean():.4f} (±{half[1]:.4f}) |"
        )
    rows.append(f"\nwall time {time.time() - start:.0f} s; command: python benchmarks/exactness_convergence.py "
                + " ".join(sys.argv[1:]))
    text = "\n".join(rows)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
