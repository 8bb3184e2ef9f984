r"""
(Re)trains the drug review classifiers of captum_pi and prints their train and
test accuracy, so the numbers in the docs can be reproduced from one command:

    HF_HUB_OFFLINE=1 python benchmarks/train_heads.py

* SmolLM2-135M-Instruct and Gemma-3-270M: a logistic-regression ``score`` head
  on frozen last-token features, binary (negative/positive) and 3-class.

(The GPT-2 trained from scratch of the first edition was dropped: it scored 0.738
against a majority baseline of 0.723; see benchmarks/results/lora/README.md.)

Heads and features are cached (``$CAPTUM_PI_CACHE`` or
``~/.cache/captum_pi``), so a second run only evaluates. The first run takes
about 15-25 minutes on 2 CPU cores (feature extraction of 979 reviews per LLM).
``--write-default`` also rewrites the shipped SmolLM2 binary head
``captum_pi/assets/smollm2_drugreview_head.pt``; ``--prefix-study`` compares
the candidate prompt prefixes instead (about 12 minutes).

Heads use class-balanced logistic regression by default (``--class-weight none``
for plain weighting); the regularisation strength is chosen by 5-fold CV.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from captum_pi.data import load_drug_reviews  # noqa: E402
from captum_pi.heads import evaluate_head, extract_features, save_head, train_head  # noqa: E402
from captum_pi.models import DEFAULT_HEAD_PATH, load_gemma3_classifier, load_smollm2_classifier  # noqa: E402

LOADERS = {"smollm2": load_smollm2_classifier, "gemma3": load_gemma3_classifier}

#: Candidate SmolLM2 prefixes compared by ``--prefix-study`` (the chosen one is
#: captum_pi.models.SMOLLM2_PROMPT_PREFIX, "plain").
PREFIX_CANDIDATES = {
    "none": "",
    "plain": "Patient review of a medication (positive or negative):\n",
    "chat-question": (
        "<|im_start|>user\nIs the following drug review positive or negative?\n\n"
    ),
    "chat-system": (
        "<|im_start|>system\nYou classify the sentiment of drug reviews written by "
        "patients.<|im_end|>\n<|im_start|>user\nReview:\n"
    ),
}
COMMAND = "HF_HUB_OFFLINE=1 python benchmarks/train_heads.py --write-default"


def run_llm(name, tasks, args, rows):
    start = time.perf_counter()
    bundle = LOADERS[name](num_labels=2)
    load_s = time.perf_counter() - start
    print(f"[{name}] loaded in {load_s:.1f} s; prefix={bundle.prefix!r}", flush=True)
    for task in tasks:
        train = load_drug_reviews("train", task)
        test = load_drug_reviews("test", task)
        start = time.perf_counter()
        head = train_head(
            bundle, train.texts, train.labels, train.label_names, positions=args.positions,
            class_weight=args.class_weight, batch_size=args.batch_size,
        )
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate_head(bundle, test.texts, test.labels, batch_size=args.batch_size)
        eval_s = time.perf_counter() - start
        train_result = evaluate_head(bundle, train.texts, train.labels, progress=False)
        check_pooled_output(bundle, test.texts[:4])
        rows.append((name, task, train_result["accuracy"], result["accuracy"],
                     result["balanced_accuracy"], head["metrics"]["C"], train_s, eval_s))
        print_row(rows[-1])
        if args.write_default and name == "smollm2" and task == "binary":
            head["metrics"].update(
                test_accuracy=result["accuracy"],
                test_balanced_accuracy=result["balanced_accuracy"],
                n_test=result["n"],
                command=COMMAND,
            )
            save_head(head, DEFAULT_HEAD_PATH)
            print(f"wrote {DEFAULT_HEAD_PATH} ({DEFAULT_HEAD_PATH.stat().st_size} bytes)")


@torch.no_grad()
def check_pooled_output(bundle, texts):
    r"""The model's own pooled output must give the head's prediction."""
    model_pred = bundle.predict(texts)
    feats, _ = extract_features(bundle, texts, progress=False)
    feats_pred = bundle.model.score(feats[:, -1]).argmax(-1).tolist()
    if model_pred != feats_pred:
        raise RuntimeError(f"pooled predictions {model_pred} != feature predictions {feats_pred}")


def prefix_study(args):
    r"""Repeated 5-fold CV on the train split (selection) and test accuracy
    (reported only) of the SmolLM2 binary head for each candidate prefix."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bundle = load_smollm2_classifier(num_labels=2)
    train = load_drug_reviews("train", "binary")
    test = load_drug_reviews("test", "binary")
    print("| prefix | CV acc | CV bal. acc | test acc | test bal. acc |")
    for name, prefix in PREFIX_CANDIDATES.items():
        bundle.prefix = prefix
        feats, _ = extract_features(bundle, train.texts, batch_size=args.batch_size)
        x, y = feats[:, -1].numpy(), np.asarray(train.labels)
        best = None
        for c in np.logspace(-4, 0, 9):
            scores = []
            for seed in range(3):
                pipe = make_pipeline(StandardScaler(), LogisticRegression(
                    C=c, max_iter=5000, class_weight=args.class_weight))
                result = cross_validate(
                    pipe, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                    scoring=["accuracy", "balanced_accuracy"])
                scores.append((result["test_accuracy"].mean(),
                               result["test_balanced_accuracy"].mean()))
            mean = np.mean(scores, axis=0)
            if best is None or mean[0] > best[0]:
                best = mean
        train_head(bundle, train.texts, train.labels, train.label_names,
                   class_weight=args.class_weight, progress=False)
        result = evaluate_head(bundle, test.texts, test.labels, batch_size=args.batch_size)
        print(f"| {name} | {best[0]:.3f} | {best[1]:.3f} | {result['accuracy']:.3f} | "
              f"{result['balanced_accuracy']:.3f} |", flush=True)


def print_row(row):
    name, task, train_acc, test_acc, bal, c, train_s, eval_s = row
    print(f"| {name:12s} | {task:6s} | {train_acc:.3f} | {test_acc:.3f} | {bal:.3f} | "
          f"{c:.2g} | {train_s:7.1f} | {eval_s:6.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--models", default="smollm2,gemma3",
                        help="comma-separated subset of smollm2,gemma3")
    parser.add_argument("--tasks", default="binary,3class")
    parser.add_argument("--positions", type=int, default=1,
                        help="train the LLM heads on the last N tokens of each review")
    parser.add_argument("--class-weight", default="balanced", choices=["none", "balanced"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--prefix-study", action="store_true",
                        help="only compare the candidate SmolLM2 prompt prefixes")
    parser.add_argument("--write-default", action="store_true",
                        help="rewrite captum_pi/assets/smollm2_drugreview_head.pt")
    args = parser.parse_args()
    args.class_weight = None if args.class_weight == "none" else args.class_weight
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(names) - set(LOADERS))
    if unknown:
        parser.error(f"unknown models {unknown}; expected smollm2, gemma3")
    if args.prefix_study:
        prefix_study(args)
        return
    rows = []
    print("| model        | task   | train | test  | test bal. | C | train s | eval s |")
    print("|--------------|--------|-------|-------|-----------|---|---------|--------|")
    for name in names:
        run_llm(name, tasks, args, rows)
    print("\nsummary")
    for row in rows:
        print_row(row)


if __name__ == "__main__":
    main()
