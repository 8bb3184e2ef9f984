r"""
How far Progressive Inference's premise holds for a model: for test reviews, the gap
between each intermediate prediction p_k and the model's prediction on the input with
every feature after k masked, f(x'_k) (the paper's footnote 1), per relative position,
under each masking game (--masking): "delete" removes the tokens of the features after
k, where the gap is 0 by causality up to float noise (~1e-6) when no fixed text follows
the features; "replace" replaces them with the mask token, where it is not.

    python benchmarks/fidelity.py --model smollm2 --level sentence --limit 20 --masking delete replace

Writes a Markdown summary, a plot of the gap against relative position and the gaps
of every review (for benchmarks/summary.py) per game under
benchmarks/results/fidelity/<model>-<task>-<level>-<masking>.md, .png and .json.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MODELS, load_bundle, machine, sample_reviews  # noqa: E402

from captum_pi._core.masking import MASKINGS  # noqa: E402
from captum_pi.batching import pad_views  # noqa: E402
from captum_pi.metrics import plot_fidelity_gap, progressive_fidelity  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=MODELS)
    parser.add_argument("--task", default="binary", choices=["binary", "3class"])
    parser.add_argument("--level", default="sentence", choices=["word", "sentence"])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--min-features", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masking", nargs="+", default=list(MASKINGS), choices=MASKINGS,
                        help="masking games, one report each: 'delete' removes the tokens of "
                             "masked features, 'replace' replaces them with the mask token")
    args = parser.parse_args()
    bundle = load_bundle(args.model, args.task)
    inputs = []
    for _, text, label in sample_reviews(args.task, args.seed):
        if len(inputs) == args.limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=args.level, template=bundle.prefix + "{}")
        if args.min_features <= inp.n_itp_features <= args.max_features:
            inputs.append((inp, label))
    ids, attention_mask, feature_mask = pad_views([inp for inp, _ in inputs], bundle.tokenizer.pad_token_id)
    out_dir = os.path.join(HERE, "results", "fidelity")
    os.makedirs(out_dir, exist_ok=True)
    counts = [inp.n_itp_features for inp, _ in inputs]
    for masking in dict.fromkeys(args.masking):
        result = progressive_fidelity(bundle.model, ids, target=torch.tensor([label for _, label in inputs]),
                                      feature_mask=feature_mask, baselines=inputs[0][0].baselines_for(masking),
                                      attention_mask=attention_mask, show_progress=True, masking=masking)
        mean_gaps, max_gaps = result.mean_abs_gap, result.max_abs_gap
        key = f"{args.model}-{args.task}-{args.level}-{masking}"
        game = {"delete": "deletion game (masking='delete': the tokens of the features after k removed)",
                "replace": "replacement game (masking='replace': the tokens of the features after k "
                           "replaced by the mask token)"}[masking]
        text = "\n".join([
            f"# Progressive-inference fidelity, {game}: {args.model}, {args.task}, {args.level} level, "
            f"{len(inputs)} test reviews (true class, probability)",
            "",
            f"Command: `python benchmarks/fidelity.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine()}  ",
            f"Feature counts of the reviews: {counts}",
            "",
            "| per review | mean | median | max |",
            "|---|---|---|---|",
            f"| mean abs gap over positions | {mean_gaps.mean():.3g} | {np.median(mean_gaps):.3g} | {mean_gaps.max():.3g} |",
            f"| max abs gap over positions | {max_gaps.mean():.3g} | {np.median(max_gaps):.3g} | {max_gaps.max():.3g} |",
        ])
        print(text)
        with open(os.path.join(out_dir, key + ".md"), "w") as handle:
            handle.write(text + "\n")
        with open(os.path.join(out_dir, key + ".json"), "w") as handle:
            json.dump({"masking": masking, "command": f"python benchmarks/fidelity.py {' '.join(sys.argv[1:])}",
                       "n_features": counts, "mean_abs_gap": [float(gap) for gap in mean_gaps],
                       "max_abs_gap": [float(gap) for gap in max_gaps]}, handle)
        figure = plot_fidelity_gap(result, title=f"p_k - f(x'_k), {key}")
        figure.savefig(os.path.join(out_dir, key + ".png"), dpi=110)


if __name__ == "__main__":
    main()
