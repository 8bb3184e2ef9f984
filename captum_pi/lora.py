r"""
LoRA adapter files of the fine-tuned classifiers: what :mod:`captum_pi.training`
writes and the loaders of :mod:`captum_pi.models` apply.

An adapter file (``torch.save`` of a dict, a few MB) holds the LoRA matrices of the
decoder, the trained ``score`` head, and what is needed to check that they fit the
base model and to rebuild its input: the base model's signature
(:func:`captum_pi.signatures.model_signature`), the LoRA settings, the prompt prefix, the
label names, and the fingerprint of the training data and recipe. Applying it merges
the LoRA matrices into the de-quantized base weights (peft's ``merge_and_unload``), so
the result is a plain Hugging Face ``*ForSequenceClassification`` model, which
Progressive Inference reads like any other.
"""
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Union

import torch
from torch import nn

ADAPTER_FORMAT_VERSION = 1
PEFT_INSTALL = "pip install peft"

AdapterLike = Union[str, os.PathLike, Dict[str, Any]]


def require_peft() -> Any:
    r"""The ``peft`` module, or an ImportError with the install command."""
    try:
        import peft
    except ImportError as error:
        raise ImportError(
            f"LoRA adapters need the package 'peft', which is not installed. Install it with: "
            f"{PEFT_INSTALL} (or pip install -e '.[models]')"
        ) from error
    return peft


def lora_config(settings: Dict[str, Any]) -> Any:
    r"""peft's ``LoraConfig`` for a sequence classifier from the recorded settings
    (``rank``, ``alpha``, ``dropout``, ``target_modules``)."""
    peft = require_peft()
    return peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=int(settings["rank"]),
        lora_alpha=int(settings["alpha"]),
        lora_dropout=float(settings["dropout"]),
        target_modules=list(settings["target_modules"]),
        modules_to_save=["score"],
    )


def _match_score_bias(model: nn.Module, lora_state: Dict[str, Any]) -> None:
    r"""A head trained from a warm start (a frozen-feature head with a bias) needs a
    ``score`` with a bias to load into; Hugging Face builds it without one."""
    has_bias = any(name.endswith("score.bias") for name in lora_state)
    score = model.score
    if has_bias and score.bias is None:
        biased = nn.Linear(score.in_features, score.out_features, bias=True)
        biased.to(device=score.weight.device, dtype=score.weight.dtype)
        model.score = biased


def save_adapter(adapter: Dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    r"""
    Writes an adapter dict (atomically: a temporary file, then a rename).

    Args:
        adapter (dict): As built by :func:`captum_pi.training.fine_tune_lora`.
        path (str or PathLike): Destination file.

    Returns:
        Path: The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save({**adapter, "format": ADAPTER_FORMAT_VERSION}, temporary)
    os.replace(temporary, path)
    return path


def load_adapter(adapter: AdapterLike) -> Dict[str, Any]:
    r"""
    Reads an adapter file (or passes an adapter dict through) and checks its format.

    Args:
        adapter (str, PathLike or dict): The file, or an adapter dict.

    Returns:
        dict: The adapter.
    """
    if isinstance(adapter, dict):
        state = adapter
    else:
        path = Path(adapter)
        if not path.is_file():
            raise FileNotFoundError(f"LoRA adapter file {path} does not exist.")
        state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != ADAPTER_FORMAT_VERSION:
        raise ValueError(
            f"not a captum-pi LoRA adapter of format {ADAPTER_FORMAT_VERSION} "
            f"(found format {state.get('format') if isinstance(state, dict) else type(state).__name__})."
        )
    missing = [key for key in ("settings", "lora_state", "label_names", "base_signature") if key not in state]
    if missing:
        raise ValueError(f"LoRA adapter is missing {missing}.")
    return state


def apply_adapter(model: nn.Module, adapter: AdapterLike, base_signature: str) -> nn.Module:
    r"""
    Merges an adapter into a base sequence classifier.

    Args:
        model (nn.Module): The de-quantized base ``*ForSequenceClassification`` model,
                    with as many classes as the adapter has labels.
        adapter (str, PathLike or dict): The adapter.
        base_signature (str): :func:`captum_pi.signatures.model_signature` of ``model``,
                    compared with the adapter's: an adapter trained on another base
                    model is refused.

    Returns:
        nn.Module: The merged plain model, in eval mode.
    """
    state = load_adapter(adapter)
    if state["base_signature"] != base_signature:
        raise ValueError(
            f"the LoRA adapter was trained on a base model with signature "
            f"{state['base_signature']}, not on this one ({base_signature}); retrain it "
            "(python benchmarks/train_lora.py) or load the base model it was made for."
        )
    n_labels = len(state["label_names"])
    if int(model.config.num_labels) != n_labels:
        raise ValueError(f"the adapter has {n_labels} classes, the model {model.config.num_labels}.")
    peft = require_peft()
    _match_score_bias(model, state["lora_state"])
    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5 a deprecated question while wrapping; the
        # merged model is not affected, and a user explaining a text should not see it
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        wrapped = peft.get_peft_model(model, lora_config(state["settings"]))
        peft.set_peft_model_state_dict(wrapped, state["lora_state"])
        merged = wrapped.merge_and_unload()
    return merged.eval()
