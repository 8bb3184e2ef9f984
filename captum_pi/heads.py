r"""
Frozen-feature classification heads: a logistic regression on the final hidden
states of a frozen LLM (the input of its ``score`` module), fitted, cached, saved,
loaded and installed as ``score``. These are the first-edition benchmark classifiers;
the fine-tuned ones come from :mod:`captum_pi.training`.

* :func:`train_head` fits (or loads from the cache) a head for a
  :class:`~captum_pi.models.ClassifierBundle` and installs it.
* :func:`save_head`, :func:`load_head` and :func:`install_head` handle head files,
  e.g. ``captum_pi/assets/smollm2_drugreview_head.pt``.
"""
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from captum_pi.encoding import as_text_list, model_device, progress_batches
from captum_pi.gguf_loading import cache_dir
from captum_pi.signatures import fingerprint, model_signature, slug, text_key

logger = logging.getLogger(__name__)

HEAD_FORMAT_VERSION = 1

#: Regularisation strengths (inverse, as scikit-learn's ``C``) searched by
#: cross-validation in :func:`train_head`.
DEFAULT_CS: Tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 0, 9))


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
        device = model_device(model)
        model(**{k: v.to(device) for k, v in enc.items()})
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{type(model).__name__} did not call its `score` head.")
    return captured[-1].float().cpu()


@torch.no_grad()
def extract_features(
    bundle: Any,
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
    texts = as_text_list(texts)
    if positions < 1:
        raise ValueError(f"positions must be >= 1, got {positions}.")
    store: Dict[str, Tuple[Tensor, Tensor]] = {}
    cache_file = None
    if cache:
        key = fingerprint(
            {"model": bundle.model_id, "signature": model_signature(bundle.model),
             "prefix": bundle.prefix, "positions": positions}
        )[:16]
        cache_file = cache_dir() / "features" / f"{slug(bundle.model_id)}-{key}.pt"
        if cache_file.is_file():
            store = torch.load(cache_file, map_location="cpu", weights_only=True)
    todo = sorted({t for t in texts if text_key(t) not in store}, key=len)
    n_prefix = len(bundle.prefix_ids)
    for batch in progress_batches(todo, batch_size, progress, "extracting features"):
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
            store[text_key(text)] = (chunk.clone(), valid)
    if cache_file is not None and todo:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + f".tmp{os.getpid()}")
        torch.save(store, tmp)
        os.replace(tmp, cache_file)
    hidden_size = int(bundle.model.score.in_features)
    if not texts:
        return torch.zeros(0, positions, hidden_size), torch.zeros(0, positions, dtype=torch.bool)
    feats = torch.stack([store[text_key(t)][0] for t in texts])
    valid = torch.stack([store[text_key(t)][1] for t in texts])
    return feats, valid


def head_fingerprint(
    bundle: Any,
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
    bundle: Any,
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
    texts = as_text_list(texts)
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
    path = cache_dir() / "heads" / f"{slug(bundle.model_id)}-{key[:16]}.pt"
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
        install_into_bundle(bundle, head)
    return head


def install_into_bundle(bundle: Any, head: Dict[str, Any]) -> None:
    r"""
    Installs a head into a :class:`~captum_pi.models.ClassifierBundle`: its
    ``score``, label names and ``head_info``.

    Args:
        bundle (ClassifierBundle): The classifier.
        head (dict): A head of :func:`train_head` or :func:`load_head`.

    Raises:
        ValueError: If the head was trained with another prompt prefix.
    """
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
    bundle: Any,
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

