r"""
The fine-tuning recipe of the benchmark classifiers, readable top to bottom: LoRA
adapters (peft) on a decoder-only LLM, trained together with its ``score`` head as a
sequence classifier, the way the paper trained its larger models (its Appendix B.1:
LoRA rank 16, alpha 32, dropout 0.1; Adam, batch 16, learning rate 5e-5, 10 epochs).

Where this CPU does not allow the paper's settings, :class:`LoraSettings` says so in
its defaults: fewer epochs with a larger learning rate (LoRA's usual 2e-4), and texts
cut to ``max_tokens`` tokens. A validation split carved from the training data picks
the best epoch (early stopping); the test split is never seen.

Training checkpoints after every ``checkpoint_every`` optimizer steps into a
directory and resumes from it, so an interrupted run loses little, and a finished
run continues when ``epochs`` is raised; the checkpoint is refused when the base
model, the data or any other setting differ (their fingerprint).
The result is an adapter dict (see :mod:`captum_pi.lora`) with the training curve.
"""
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from captum_pi.progress import tqdm

from captum_pi.lora import ADAPTER_FORMAT_VERSION, lora_config, require_peft

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class LoraSettings:
    r"""
    The recipe's settings (the paper's where the CPU allows).

    Attributes:
        rank (int): LoRA rank. Default: 16 (paper)
        alpha (int): LoRA alpha. Default: 32 (paper)
        dropout (float): LoRA dropout. Default: 0.1 (paper)
        target_modules (tuple of str): Projections that get adapters. Default: the
                    attention projections (Llama / Gemma names).
        learning_rate (float): AdamW learning rate. Default: 2e-4 (paper: 5e-5 for
                    10 epochs; fewer epochs here)
        epochs (int): Passes over the training split. Default: 3 (paper: 10)
        batch_size (int): Texts per optimizer step. Default: 16 (paper)
        micro_batch_size (int): Texts per forward pass (gradients are accumulated).
                    Default: 4
        max_tokens (int): Tokens kept per text, prompt included. Default: 256
        validation_fraction (float): Share of the training texts held out, per class,
                    for choosing the best epoch. Default: 0.15
        weight_decay (float): AdamW weight decay. Default: 0.0
        checkpoint_every (int): Optimizer steps between checkpoints. Default: 5
        seed (int): Seed of the split, the initialisation and the batch order.
                    Default: 0
        class_weighted (bool): Weigh the cross-entropy of each class inversely to
                    its frequency in the training part (as the frozen heads'
                    ``class_weight="balanced"``). Default: False
        warm_start (bool): Whether to keep the ``score`` head the bundle came with
                    (e.g. a frozen-feature head); otherwise it is drawn afresh from
                    ``seed``. The initial head is part of the run's fingerprint.
                    Default: False
    """

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: Tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    learning_rate: float = 2e-4
    epochs: int = 3
    batch_size: int = 16
    micro_batch_size: int = 4
    max_tokens: int = 256
    validation_fraction: float = 0.15
    weight_decay: float = 0.0
    checkpoint_every: int = 5
    seed: int = 0
    class_weighted: bool = False
    warm_start: bool = False

    def as_dict(self) -> Dict[str, Any]:
        values = dataclasses.asdict(self)
        values["target_modules"] = list(self.target_modules)
        return values


def validation_split(labels: Sequence[int], fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    r"""
    Stratified split of the training indices: ``(train, validation)``, with
    ``round(fraction * count)`` texts of every class held out (at least one).
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    held_out: List[int] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held_out += members[: max(1, int(round(fraction * members.size)))].tolist()
    held = set(held_out)
    return [i for i in range(labels.size) if i not in held], sorted(held_out)


def fine_tune_lora(
    bundle: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    settings: LoraSettings = LoraSettings(),
    checkpoint_dir: Optional[os.PathLike] = None,
    data_fingerprint: str = "",
    show_progress: bool = True,
) -> Dict[str, Any]:
    r"""
    Fine-tunes LoRA adapters and the ``score`` head of ``bundle.model`` on
    ``(texts, labels)``.

    Args:
        bundle (ClassifierBundle): The base classifier (its model is trained in
                    place; load a fresh one to use the base model again).
        texts (Sequence[str]): Training texts (the validation split is carved
                    from them).
        labels (Sequence[int]): Their classes.
        label_names (Sequence[str]): Class names, by index.
        settings (LoraSettings, optional): The recipe. Default: LoraSettings()
        checkpoint_dir (PathLike, optional): Where to checkpoint and resume.
                    Default: None (no checkpoints)
        data_fingerprint (str, optional): Identity of the training data, stored
                    in the adapter and checked on resume. Default: ""
        show_progress (bool, optional): Progress bar over optimizer steps.
                    Default: True

    Returns:
        dict: The adapter (best validation epoch), with ``curve`` (per step:
        training loss; per epoch: validation loss and accuracy) and ``metrics``.

    Examples::

        >>> from captum_pi.models import load_smollm2_classifier
        >>> bundle = load_smollm2_classifier(num_labels=2)
        >>> adapter = fine_tune_lora(bundle, data.texts, data.labels, data.label_names,
        ...                          checkpoint_dir="runs/smollm2")
    """
    from captum_pi.signatures import model_signature

    _check_training_data(texts, labels, label_names, bundle)
    peft = require_peft()
    torch.manual_seed(settings.seed)
    if not settings.warm_start:
        _initialise_head(bundle.model)
    base_signature = model_signature(bundle.model)
    run_fingerprint = _run_fingerprint(base_signature, _head_signature(bundle.model), data_fingerprint, settings,
                                       bundle.prefix, label_names)
    model = peft.get_peft_model(bundle.model, lora_config(settings.as_dict()))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    train_rows, validation_rows = validation_split(labels, settings.validation_fraction, settings.seed)
    steps_per_epoch = math.ceil(len(train_rows) / settings.batch_size)
    class_weights = _class_weights([labels[i] for i in train_rows], len(label_names)) if settings.class_weighted else None
    state = _resume(checkpoint_dir, run_fingerprint, model, optimizer, peft)
    bar = tqdm(total=settings.epochs * steps_per_epoch, initial=state["step"], desc="LoRA steps",
               disable=not show_progress, unit="step")
    started = time.perf_counter() - state["seconds"]
    while state["step"] < settings.epochs * steps_per_epoch:
        epoch, step_in_epoch = divmod(state["step"], steps_per_epoch)
        order = np.random.default_rng(settings.seed + epoch).permutation(train_rows)
        batch = order[step_in_epoch * settings.batch_size : (step_in_epoch + 1) * settings.batch_size]
        loss = _optimizer_step(model, optimizer, bundle, texts, labels, batch, settings, class_weights)
        state["step"] += 1
        state["curve"].append({"step": state["step"], "epoch": epoch + 1, "train_loss": loss})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if state["step"] % steps_per_epoch == 0:
            _validate(model, bundle, texts, labels, validation_rows, settings, state, peft, epoch + 1)
        state["seconds"] = time.perf_counter() - started
        if checkpoint_dir is not None and (
            state["step"] % settings.checkpoint_every == 0 or state["step"] % steps_per_epoch == 0
        ):
            _checkpoint(checkpoint_dir, run_fingerprint, model, optimizer, state, peft)
    bar.close()
    best = state["best"]
    return {
        "format": ADAPTER_FORMAT_VERSION,
        "base_signature": base_signature,
        "base_model_id": getattr(bundle, "model_id", ""),
        "settings": settings.as_dict(),
        "fingerprint": run_fingerprint,
        "data_fingerprint": data_fingerprint,
        "prefix": bundle.prefix,
        "label_names": list(label_names),
        "lora_state": best["lora_state"],
        "curve": state["curve"],
        "metrics": {"best_epoch": best["epoch"], "validation_accuracy": best["accuracy"],
                    "validation_loss": best["loss"], "training_seconds": state["seconds"],
                    "n_train": len(train_rows), "n_validation": len(validation_rows)},
    }


def _run_fingerprint(
    base_signature: str, head_signature: str, data_fingerprint: str, settings: LoraSettings, prefix: str,
    label_names: Sequence[str],
) -> str:
    r"""Identity of a training run. The number of epochs is left out: the schedule has
    no decay, so the first epochs of a longer run are those of a shorter one, and
    raising ``epochs`` continues a finished run from its checkpoint."""
    from captum_pi.signatures import fingerprint

    recipe = {key: value for key, value in settings.as_dict().items() if key != "epochs"}
    return fingerprint({"base": base_signature, "head": head_signature, "data": data_fingerprint,
                        "settings": recipe, "prefix": prefix, "labels": list(label_names)})


def _initialise_head(model: nn.Module) -> None:
    r"""A cold start draws the ``score`` head from the (seeded) global generator, as
    transformers initialises it, so that a resumed run starts from the same head."""
    std = float(getattr(model.config, "initializer_range", 0.02))
    with torch.no_grad():
        model.score.weight.normal_(0.0, std)
        if getattr(model.score, "bias", None) is not None:
            model.score.bias.zero_()


def _head_signature(model: nn.Module) -> str:
    r"""Hash of the initial ``score`` head, so that runs warm-started from different
    heads (or from none) never share a checkpoint."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in model.score.state_dict().values():
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_training_data(texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str], bundle: Any) -> None:
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"texts and labels must be non-empty and of one length, got {len(texts)} and {len(labels)}.")
    n_classes = int(bundle.model.config.num_labels)
    if len(label_names) != n_classes or not all(0 <= int(label) < n_classes for label in labels):
        raise ValueError(
            f"the model has {n_classes} classes; got {len(label_names)} label names and labels "
            f"in {sorted(set(int(label) for label in labels))}."
        )


def _encode(bundle: Any, texts: Sequence[str], settings: LoraSettings) -> Dict[str, torch.Tensor]:
    from captum_pi.encoding import encode_texts

    return encode_texts(bundle.tokenizer, list(texts), bundle.prefix, max_length=settings.max_tokens)


def _class_weights(labels: Sequence[int], n_classes: int) -> torch.Tensor:
    r"""``n / (C * count_c)`` per class: every class weighs as much in the loss."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return torch.tensor(len(labels) / (n_classes * np.maximum(counts, 1.0)), dtype=torch.float32)


def _optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, bundle: Any, texts: Sequence[str],
    labels: Sequence[int], batch: np.ndarray, settings: LoraSettings, class_weights: Optional[torch.Tensor] = None,
) -> float:
    r"""One optimizer step over ``batch`` (gradients accumulated over micro-batches);
    returns the mean (class-weighted) cross-entropy of the batch."""
    model.train()
    optimizer.zero_grad()
    total = 0.0
    for start in range(0, len(batch), settings.micro_batch_size):
        rows = batch[start : start + settings.micro_batch_size]
        encoded = _encode(bundle, [texts[i] for i in rows], settings)
        logits = model(**encoded).logits
        target = torch.tensor([int(labels[i]) for i in rows])
        loss = nn.functional.cross_entropy(logits.float(), target, weight=class_weights, reduction="sum") / len(batch)
        loss.backward()
        total += float(loss.detach())
    optimizer.step()
    model.eval()
    return total


@torch.no_grad()
def _validate(
    model: nn.Module, bundle: Any, texts: Sequence[str], labels: Sequence[int], rows: Sequence[int],
    settings: LoraSettings, state: Dict[str, Any], peft: Any, epoch: int,
) -> None:
    r"""Validation loss and accuracy at the end of an epoch; keeps the best adapter."""
    model.eval()
    losses, correct = [], 0
    for start in range(0, len(rows), settings.micro_batch_size):
        chunk = rows[start : start + settings.micro_batch_size]
        logits = model(**_encode(bundle, [texts[i] for i in chunk], settings)).logits.float()
        target = torch.tensor([int(labels[i]) for i in chunk])
        losses.append(float(nn.functional.cross_entropy(logits, target, reduction="sum")))
        correct += int((logits.argmax(-1) == target).sum())
    loss, accuracy = sum(losses) / len(rows), correct / len(rows)
    state["curve"].append({"step": state["step"], "epoch": epoch, "validation_loss": loss,
                           "validation_accuracy": accuracy})
    best = state["best"]
    if best is None or (accuracy, -loss) > (best["accuracy"], -best["loss"]):
        state["best"] = {"epoch": epoch, "accuracy": accuracy, "loss": loss,
                         "lora_state": _copy_state(peft.get_peft_model_state_dict(model))}


def _copy_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {name: tensor.detach().clone().cpu() for name, tensor in state.items()}


def _checkpoint(
    directory: os.PathLike, run_fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
    state: Dict[str, Any], peft: Any,
) -> None:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": run_fingerprint,
        "lora_state": _copy_state(peft.get_peft_model_state_dict(model)),
        "optimizer": optimizer.state_dict(),
        "state": state,
        "rng": torch.get_rng_state(),
    }
    temporary = path / (CHECKPOINT_FILE + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path / CHECKPOINT_FILE)


def _resume(
    directory: Optional[os.PathLike], run_fingerprint: str, model: nn.Module,
    optimizer: torch.optim.Optimizer, peft: Any,
) -> Dict[str, Any]:
    r"""The training state from the checkpoint, loaded into ``model`` and
    ``optimizer``; a fresh state without one. A checkpoint of another run (base
    model, data or settings) is refused rather than silently mixed in."""
    fresh = {"step": 0, "curve": [], "best": None, "seconds": 0.0}
    if directory is None or not (Path(directory) / CHECKPOINT_FILE).is_file():
        return fresh
    payload = torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    if payload.get("fingerprint") != run_fingerprint:
        raise ValueError(
            f"{Path(directory) / CHECKPOINT_FILE} belongs to another training run (base model, data "
            "or settings differ); remove it or choose another checkpoint directory."
        )
    peft.set_peft_model_state_dict(model, payload["lora_state"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"])
    return payload["state"]
