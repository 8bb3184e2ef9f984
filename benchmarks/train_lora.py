r"""
LoRA fine-tuning of the offline LLM classifiers on the drug reviews
(captum_pi.training), then their test accuracy: the models of the paper's kind.

Trains in the background-friendly way: checkpoints every few steps under
benchmarks/cache/lora/<model>-<task>/ and resumes there; the adapter of the best
validation epoch is written to benchmarks/cache/lora/<model>-<task>/adapter.pt (and,
with --ship, to captum_pi/assets/), the report to benchmarks/results/lora/.

    python benchmarks/train_lora.py --model smollm2 --task binary --epochs 3
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

from captum_pi import heads, models  # noqa: E402
from captum_pi.data import load_drug_reviews  # noqa: E402
from captum_pi.lora import save_adapter  # noqa: E402
from captum_pi.training import LoraSettings, fine_tune_lora, validation_split  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_LABELS = {"binary": 2, "3class": 3}
LOADERS = {"smollm2": models.load_smollm2_classifier, "gemma3": models.load_gemma3_classifier}


def data_fingerprint(texts, labels) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels):
        digest.update(text.encode("utf-8") + b"\0" + str(int(label)).encode() + b"\n")
    return digest.hexdigest()[:16]


def accuracy_report(predictions, labels) -> dict:
    majority = float(np.max(np.bincount(labels)) / len(labels))
    return {**heads.accuracy_report(predictions, labels), "majority_baseline": majority}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=sorted(LOADERS))
    parser.add_argument("--task", default="binary", choices=sorted(NUM_LABELS))
    parser.add_argument("--epochs", type=int, default=LoraSettings.epochs)
    parser.add_argument("--learning-rate", type=float, default=LoraSettings.learning_rate)
    parser.add_argument("--max-tokens", type=int, default=LoraSettings.max_tokens)
    parser.add_argument("--ship", action="store_true", help="also write the adapter into captum_pi/assets/")
    parser.add_argument("--target-modules", nargs="+", default=list(LoraSettings.target_modules),
                        help="projections that get adapters (default: the attention projections)")
    parser.add_argument("--class-weighted", action="store_true",
                        help="weigh each class's loss inversely to its frequency")
    parser.add_argument("--warm-start", nargs="?", const="train-part", choices=["train-part", "shipped"],
                        help="start the score head from a frozen-feature head: 'train-part' (the default when "
                             "the flag is given) fits it on the training part of the split only, so the "
                             "validation texts stay unseen; 'shipped' takes the shipped SmolLM2 binary head, "
                             "which was fitted on the whole training split")
    args = parser.parse_args()
    key = f"{args.model}-{args.task}" + {None: "", "train-part": "-warm", "shipped": "-warmshipped"}[args.warm_start]
    if args.class_weighted:
        key += "-weighted"
    if tuple(args.target_modules) != LoraSettings.target_modules:
        key += "-" + "-".join(name.replace("_proj", "") for name in args.target_modules)
    run_dir = os.path.join(HERE, "cache", "lora", key)
    train = load_drug_reviews("train", args.task)
    test = load_drug_reviews("test", args.task)
    if args.warm_start == "shipped" and (args.model, args.task) != ("smollm2", "binary"):
        sys.exit("--warm-start shipped needs the shipped head: --model smollm2 --task binary")
    settings = LoraSettings(epochs=args.epochs, learning_rate=args.learning_rate, max_tokens=args.max_tokens,
                            warm_start=bool(args.warm_start), target_modules=tuple(args.target_modules),
                            class_weighted=args.class_weighted)
    head = models.DEFAULT_HEAD_PATH if args.warm_start == "shipped" else None
    bundle = LOADERS[args.model](num_labels=NUM_LABELS[args.task], head=head)
    bundle.label_names = tuple(train.label_names)
    if args.warm_start == "train-part":
        rows, _ = validation_split(train.labels, settings.validation_fraction, settings.seed)
        heads.train_head(bundle, [train.texts[i] for i in rows], [train.labels[i] for i in rows],
                          train.label_names)
    started = time.perf_counter()
    adapter = fine_tune_lora(bundle, train.texts, train.labels, train.label_names, settings,
                             checkpoint_dir=run_dir, data_fingerprint=data_fingerprint(train.texts, train.labels))
    adapter_path = save_adapter(adapter, os.path.join(run_dir, "adapter.pt"))
    trained = LOADERS[args.model](num_labels=NUM_LABELS[args.task], adapter=adapter_path)
    probabilities = trained.predict_proba(test.texts, batch_size=8, progress=True)
    predictions = probabilities.argmax(-1).tolist()
    report = accuracy_report(predictions, test.labels)
    adapter["metrics"]["test"] = report
    adapter["test_predictions"] = {"indices": list(range(8)), "probabilities": probabilities[:8].tolist()}
    save_adapter(adapter, adapter_path)
    if args.ship:
        save_adapter(adapter, models.LORA_ASSETS / f"{args.model}-{args.task}_lora.pt")
    write_report(key, args, adapter, report, time.perf_counter() - started)


def write_report(key: str, args: argparse.Namespace, adapter: dict, report: dict, seconds: float) -> None:
    out_dir = os.path.join(HERE, "results", "lora")
    os.makedirs(out_dir, exist_ok=True)
    curve = adapter["curve"]
    validations = [entry for entry in curve if "validation_accuracy" in entry]
    lines = [
        f"# LoRA fine-tuning: {key}", "",
        f"Command: `python benchmarks/train_lora.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine()}", "",
        f"Settings: `{json.dumps(adapter['settings'])}`", "",
        f"Training time (this CPU, the resumed parts included): {adapter['metrics']['training_seconds'] / 60:.1f} min; "
        f"this invocation {seconds / 60:.1f} min. Training / validation texts: "
        f"{adapter['metrics']['n_train']} / {adapter['metrics']['n_validation']}.", "",
        "| epoch | validation loss | validation accuracy |", "|---|---|---|",
    ]
    lines += [f"| {e['epoch']} | {e['validation_loss']:.4f} | {e['validation_accuracy']:.4f} |" for e in validations]
    lines += ["", f"Best epoch: {adapter['metrics']['best_epoch']}. Test split ({report['n']} reviews): accuracy "
              f"{report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}, majority baseline "
              f"{report['majority_baseline']:.4f}."]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out_dir, key + ".md"), "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
