r"""Where the classifier comes from (the embedded default, a Hugging Face model
directory, or a ``.gguf`` base model with a head file): what is known before
loading it, and loading it."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from captum_pi._cli import UserError

#: How many files of a Hugging Face tokenizer must be in a ``--model`` directory: any one.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


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
