r"""
Every coalition's value of test reviews under a masking game, saved for estimator
studies (benchmarks/estimators.py): one ``.npz`` per review with the game
(``[2^n]``, bit ``i`` = feature ``i``), ``n``, the label and the review index.

Under deletion a review with n sentences costs 2^(n-1) SmolLM2 rows
(captum_pi.metrics.coalition_values); each table is written as soon as it is done,
so an interrupted run resumes.

Under replacement (``--masking replace``) every coalition costs a row (2^n), and the
table also holds ``reads`` (``[2^n, n]``): the prediction at the last token of every
feature in the row of each coalition. That is what MP-PI reads from a pass, and under
replacement it is not a game value (PI's premise is only approximate there), so the
estimator study must replay it rather than the game.

    python benchmarks/game_tables.py --model smollm2 --level sentence --limit 20 --min-features 5 --max-features 10

``--model exactness`` writes the games of the tests' exactness model instead (random
running-sum classifiers, 7 one-token features after a neutral start token), which
need no LLM: ``python benchmarks/game_tables.py --model exactness --limit 8``.
"""
import argparse
import os
import sys
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MODELS, load_bundle, sample_reviews  # noqa: E402

from captum_pi.metrics import coalition_values  # noqa: E402
from captum_pi.metrics._masked_values import (  # noqa: E402
    explained_value_array, logits_at_positions, masked_value_setup, progress,
)
from captum_pi.metrics.games import no_fixed_token_after_a_feature  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def table_dir(model: str, task: str, level: str, masking: str) -> str:
    return os.path.join(HERE, "cache", "games", f"{model}-{task}-{level}-{masking}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=(*MODELS, "exactness"))
    parser.add_argument("--task", default="binary", choices=["binary", "3class"])
    parser.add_argument("--level", default="sentence", choices=["word", "sentence"])
    parser.add_argument("--masking", default="delete", choices=["delete", "replace"])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--min-features", type=int, default=5)
    parser.add_argument("--max-features", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the review sample")
    args = parser.parse_args()
    if args.max_features > 14:
        parser.error("a table holds 2^n values and costs 2^(n-1) rows; use --max-features <= 14.")
    if args.model == "exactness":
        write_exactness_games(args.limit, args.masking)
        return
    bundle = load_bundle(args.model, args.task)
    out = table_dir(args.model, args.task, args.level, args.masking)
    os.makedirs(out, exist_ok=True)
    done = 0
    bar = tqdm(total=args.limit, desc="game tables")
    for index, text, label in sample_reviews(args.task, args.seed):
        if done == args.limit:
            break
        inp = TextFeatureInput(text, bundle.tokenizer, level=args.level, template=bundle.prefix + "{}",
                               masking=args.masking)
        n = inp.n_itp_features
        if not args.min_features <= n <= args.max_features:
            continue
        path = os.path.join(out, f"{index}.npz")
        if not os.path.exists(path):
            if args.masking == "replace":
                table = replacement_table(bundle.model, inp.input_ids, inp.feature_mask,
                                          inp.baselines_for("replace"), label, inp.attention_mask)
            else:
                result = coalition_values(
                    bundle.model, inp.input_ids, target=label, feature_mask=inp.feature_mask,
                    baselines=inp.baselines_for(args.masking), masking=args.masking, perturbations_per_eval=16,
                )
                table = {"game": result.games[0], "rows": result.n_rows}
            np.savez(path + ".tmp.npz", n=n, label=label, index=index, masking=args.masking, **table)
            os.replace(path + ".tmp.npz", path)
        done += 1
        bar.update(1)
    bar.close()


def replacement_table(model, input_ids: torch.Tensor, feature_mask: torch.Tensor, mask_token: int, label: int,
                      attention_mask: Optional[torch.Tensor] = None, perturbations_per_eval: int = 16) -> dict:
    r"""
    Every coalition of one review under replacement, one row each: ``game`` (``[2^n]``,
    the probability of ``label`` at the final token) and ``reads`` (``[2^n, n]``, the
    probability at the last token of each feature). By causality ``reads[s, k]``
    depends only on the features of ``s`` up to ``k``. Needs the last feature to end
    the input (no fixed text after it), so that ``reads[s, n - 1]`` is ``game[s]``.
    """
    setup = masked_value_setup(model, input_ids, feature_mask, attention_mask, mask_token, "prob",
                               perturbations_per_eval, "game_tables", "replace")
    layout = setup.layouts[0]
    if not no_fixed_token_after_a_feature(layout):
        raise ValueError("game_tables --masking replace needs inputs whose last feature ends the text.")
    n = layout.n_features
    active = (torch.arange(2 ** n).unsqueeze(1) >> torch.arange(n)) & 1 == 1
    masked = setup.masking.apply(setup.rows[0], layout, active)
    positions = torch.cat([masked.feature_ends, masked.final.unsqueeze(1)], dim=1)
    bar = progress(desc="coalitions", total=len(masked), disable=True)
    (logits,) = logits_at_positions(setup.per_position, [(masked, positions)], setup.masking.pad_id,
                                    perturbations_per_eval, bar)
    values = explained_value_array(logits, label, "prob")
    return {"game": values[:, n], "reads": values[:, :n], "rows": len(masked)}


def write_exactness_games(count: int, masking: str, n: int = 7) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from toy_models import MASK_ID, RunningSumClassifier

    out = table_dir("exactness", "3class", "token", masking)
    os.makedirs(out, exist_ok=True)
    for index in range(count):
        model = RunningSumClassifier(vocab_size=32, seed=index)
        features = torch.randint(1, 32, (1, n), generator=torch.Generator().manual_seed(index))
        ids = torch.cat([torch.tensor([[MASK_ID]]), features], dim=1)  # the start token embeds to 0
        feature_mask = torch.tensor([[-1] + list(range(n))])
        if masking == "replace":
            table = replacement_table(model, ids, feature_mask, MASK_ID, label=1)
        else:
            result = coalition_values(model, ids, target=1, feature_mask=feature_mask, baselines=MASK_ID,
                                      masking=masking)
            table = {"game": result.games[0], "rows": result.n_rows}
        np.savez(os.path.join(out, f"{index}.npz"), n=n, label=1, index=index, masking=masking, **table)


if __name__ == "__main__":
    main()
