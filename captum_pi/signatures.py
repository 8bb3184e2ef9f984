r"""
Identities of models, tokenizers, data and settings: hashes that name cache files
(de-quantized models, features, heads) and that trained heads and adapters carry, so
that a stale file is refused or retrained rather than silently used.
"""
import hashlib
import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
from torch import nn


def fingerprint(payload: Dict[str, Any]) -> str:
    r"""
    SHA-256 hex digest of a JSON-serialisable description (data, settings,
    model id), used to name cache files.

    Args:
        payload (dict): Anything :func:`json.dumps` accepts (tuples become lists).

    Returns:
        str: 64 hexadecimal characters.
    """
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Cannot fingerprint a value of type {type(value).__name__}.")


def model_signature(model: nn.Module) -> str:
    r"""
    A cheap identity of a model's weights: a hash of its class, hidden size,
    depth and the first rows of its input embedding.

    Args:
        model (nn.Module): A Hugging Face model.

    Returns:
        str: 16 hexadecimal characters.
    """
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
        digest.update(str(getattr(config, key, None)).encode())
    embedding = model.get_input_embeddings().weight[:16].detach().float().cpu().contiguous()
    digest.update(embedding.numpy().tobytes())
    return digest.hexdigest()[:16]


def tokenizer_signature(tokenizer: Any) -> str:
    r"""
    A hash of a tokenizer's vocabulary, special tokens and class.

    Args:
        tokenizer (PreTrainedTokenizerBase): The tokenizer.

    Returns:
        str: 16 hexadecimal characters.
    """
    payload = {
        "class": type(tokenizer).__name__,
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
    }
    return fingerprint(payload)[:16]


def slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-." else "-" for c in text)
    return keep.strip("-")[:60] or "model"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]

