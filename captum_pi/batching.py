r"""
Many inputs in one call: the checks of a batched call's arguments (a list of inputs,
one target per input, the batch size; an error names the entry at fault), the
grouping of inputs into batches that can share one call, and the padded tensors of
a batch (:func:`pad_views`), the form every method and metric takes.
"""
import numbers
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr._utils.interpretable_input import InterpretableInput
from torch import Tensor

from captum_pi.attribution_result import resolve_target
from captum_pi.text import TextFeatureInput

Target = Union[int, str, None]
Targets = Union[Target, Sequence[Target], Tensor, np.ndarray]


def pad_views(views: Sequence[TextFeatureInput], pad_id: int) -> Tuple[Tensor, Tensor, Tensor]:
    r"""
    The inputs of one batched call: token ids right-padded with ``pad_id``, the
    attention mask (1 real, 0 padding) and the feature masks padded with -1, each
    ``[B, T_max]``.
    """
    longest = max(int(view.input_ids.shape[1]) for view in views)
    ids = torch.full((len(views), longest), int(pad_id), dtype=torch.long)
    attention_mask = torch.zeros((len(views), longest), dtype=torch.long)
    feature_mask = torch.full((len(views), longest), -1, dtype=torch.long)
    for row, view in enumerate(views):
        length = int(view.input_ids.shape[1])
        ids[row, :length] = view.input_ids[0]
        attention_mask[row, :length] = 1
        feature_mask[row, :length] = view.feature_mask[0]
    return ids, attention_mask, feature_mask


def _batches(
    views: Sequence[TextFeatureInput], batch_size: int, key: Any = lambda view: view.baselines
) -> Iterator[List[int]]:
    r"""Consecutive row indices, at most ``batch_size`` at a time; a batch never
    mixes views of different ``key`` (a batched call takes one ``baselines`` and
    one ``masking``)."""
    rows: List[int] = []
    for row, view in enumerate(views):
        if rows and (len(rows) == batch_size or key(view) != key(views[rows[0]])):
            yield rows
            rows = []
        rows.append(row)
    if rows:
        yield rows


def _check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")


def _input_list(inputs: Iterable[InterpretableInput]) -> List[InterpretableInput]:
    if isinstance(inputs, (str, InterpretableInput)) or not isinstance(inputs, Iterable):
        raise TypeError(
            f"inputs must be a list of inputs, got {type(inputs).__name__}; explain one "
            "input with attribute(inp), many texts with "
            "attribute_batch(TextFeatureInput.from_texts(texts, tokenizer))."
        )
    return list(inputs)


def _targets_per_input(target: Targets, n_inputs: int) -> List[Target]:
    r"""``target`` as one entry per input: a single target repeated, or the given
    list (or 1-D tensor or array) checked for its length and entry types."""
    if isinstance(target, (Tensor, np.ndarray)):
        if target.ndim > 1:
            raise ValueError(
                f"target must be one value or 1-D (one per input), got shape {tuple(target.shape)}."
            )
        target = target.tolist()
    if not isinstance(target, (list, tuple)):
        return [_check_target_entry(target, "target")] * n_inputs
    if len(target) != n_inputs:
        raise ValueError(
            f"target holds {len(target)} entries for {n_inputs} inputs; pass one target "
            "for all inputs, or one per input."
        )
    return [_check_target_entry(entry, f"target[{index}]") for index, entry in enumerate(target)]


def _check_target_entry(target: object, name: str) -> Target:
    if target is None or isinstance(target, str):
        return target
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return int(target)
    raise TypeError(f"{name} must be a class index, a label name or None, got {target!r}.")


def _resolve_given_targets(targets: Sequence[Target], labels: Sequence[str]) -> List[Optional[int]]:
    r"""Class indices of the given targets (None stays None: the predicted class);
    an error names the entry at fault, or just ``target`` when all are the same."""
    same = len(set(map(repr, targets))) <= 1
    return [
        None if target is None
        else _with_index("target" if same else f"target[{index}]", resolve_target, target, labels, 0)
        for index, target in enumerate(targets)
    ]


def _with_index(where: str, function: Any, *args: Any) -> Any:
    r"""Calls ``function``; a ValueError or TypeError it raises names ``where``
    (``inputs[3]: ...``), so the entry at fault of a long list can be found."""
    try:
        return function(*args)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{where}: {error}") from error
