r"""
Prefix sharing: a model call on rows that begin with the same tokens runs each
shared beginning (a *trunk*) once and extends its key-value cache to the rest of
every row (its *continuation*), batched.

The perturbed inputs of one explanation agree on every token before their first
masked feature: the prompt prefix always, under Feature Ablation half of the text
on average. Causal attention makes the hidden states of those positions identical
across rows, so a decoder can compute them once, keep their keys and values
(Hugging Face's :class:`~transformers.DynamicCache`) and run only the continuations.
:class:`~captum_pi.PerPositionForward`, the one callable through which every
perturbation method and metric of the package reads the model, evaluates every
call this way when it pays (:class:`PrefixSharingEngine`).

How a call is evaluated:

1. **Plan** (:func:`plan_sharing`). The rows are sorted lexicographically; the
   common prefixes of neighbours describe the batch's trie. Groups are runs of
   sorted rows, each with one trunk: the longest prefix every row of the group
   either starts with or is itself a prefix of (so a row equal to a prefix is read
   off the trunk). Starting from one group, groups are split greedily at the trie's
   branchings while that lowers the number of positions the two passes compute,
   ``G * P + R * C`` (``G`` trunks of width ``P``, ``R`` continuations of width
   ``C``, padding included), against ``B * T`` for one plain pass. A call that
   saves too little (fewer than ``min_shared_tokens`` per row, or less than
   ``min_saved_fraction`` of the plain pass) runs as a plain pass.
2. **Trunk pass**: the ``G`` trunks, right-padded, through the decoder
   (``model.base_model``) with a cache.
3. **Continuation pass**: the cache rows gathered for each row's group
   (:meth:`~transformers.Cache.batch_select_indices`), the continuations
   right-padded after them; the attention mask hides the padding of shorter
   trunks, and position ids continue each row's trunk.
4. **Head**: the hidden states of a trunk's positions are those of every row of
   its group; they are gathered beside the continuations' into ``[B, T, D]`` and
   the ``score`` head runs once on all ``B`` rows, as in a plain pass.

Neither pass has more rows than the call (``G <= B``, ``R <= B``), so memory stays
bounded by ``perturbations_per_eval``; the cache of the continuation pass holds
``R`` copies of the trunks' keys and values. Logits at real positions equal a plain
pass's up to float rounding (about 1e-7 on float32 models); logits at padding
positions are unspecified (no method reads them).

When it falls back to plain passes: callables that are not Hugging Face models;
models whose decoder takes no ``cache`` / ``past_key_values`` argument, or has
layers other than full or sliding-window attention (recurrent, chunked or hybrid
caches); models that fail the equality probe run when the engine is built (a
small batch with two trunks of different lengths, compared with a plain pass).
Those say so once with a :class:`PrefixSharingWarning` and in
:attr:`PrefixSharingEngine.reason`. Sliding-window models (Gemma 3, Mistral with
``sliding_window``) share only calls whose two passes fit in the window, where
the window cuts nothing; longer calls run plain.

The switch: ``PerPositionForward(model, share_prefixes=False)`` for one wrapper,
:func:`prefix_sharing` for every wrapper (a function and a context manager).
"""
import inspect
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

#: A call whose rows share fewer tokens than this, per row, runs as a plain pass.
MIN_SHARED_TOKENS = 8
#: A call that saves less than this fraction of a plain pass's positions runs plain.
MIN_SAVED_FRACTION = 0.1
#: Cache layer kinds the engine extends (attention over every position, or over a
#: window the call fits in).
SUPPORTED_LAYER_TYPES = ("full_attention", "sliding_attention")

_STATE = {"enabled": True}
#: Divergence of a row that is a prefix of the next sorted row: it constrains no trunk.
_PREFIX = np.iinfo(np.int64).max


class PrefixSharingWarning(UserWarning):
    r"""A Hugging Face model's cache cannot be reused, so every call runs as plain
    passes (correct, without the saving)."""


class prefix_sharing:
    r"""
    Turns prefix sharing on or off for every :class:`~captum_pi.PerPositionForward`,
    hence for every attribution method and metric of the package. Like
    :func:`torch.set_grad_enabled`, it works as a function (the setting stays) and
    as a context manager (the previous setting is restored on exit).

    Attributions do not change (logits differ from plain passes by float rounding
    only); the switch exists to measure the saving and to rule the engine out.

    Args:
        enabled (bool): True to share prefixes (the default setting), False for
                    plain batched passes.

    Examples::

        >>> import captum_pi
        >>> with captum_pi.prefix_sharing(False):
        >>>     attr = captum_pi.TokenKernelShap(model).attribute(ids, feature_mask=words)
        >>> captum_pi.prefix_sharing(False)   # off from now on
    """

    def __init__(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"prefix_sharing(enabled) takes a bool, got {enabled!r}.")
        self.previous = _STATE["enabled"]
        _STATE["enabled"] = enabled

    def __enter__(self) -> "prefix_sharing":
        return self

    def __exit__(self, *exc: object) -> None:
        _STATE["enabled"] = self.previous


def prefix_sharing_enabled() -> bool:
    r"""Whether prefix sharing is on (see :func:`prefix_sharing`)."""
    return _STATE["enabled"]


@dataclass(frozen=True)
class SharingPlan:
    r"""
    How one model call is split into a trunk pass and a continuation pass.

    Attributes:
        group (Tensor): LongTensor ``[B]``: the trunk of each row.
        trunk_source (Tensor): LongTensor ``[G]``: a row whose first
                    ``trunk_length`` tokens are the trunk.
        trunk_length (Tensor): LongTensor ``[G]``: tokens of each trunk (>= 1).
        lengths (Tensor): LongTensor ``[B]``: real tokens of each row. A row
                    shorter than its trunk is a prefix of it.
    """

    group: Tensor
    trunk_source: Tensor
    trunk_length: Tensor
    lengths: Tensor

    @property
    def row_trunk_length(self) -> Tensor:
        r"""LongTensor ``[B]``: positions of each row read from its trunk."""
        return torch.minimum(self.trunk_length[self.group], self.lengths)

    @property
    def continuation_rows(self) -> Tensor:
        r"""LongTensor ``[R]``: rows with tokens beyond their trunk."""
        return torch.nonzero(self.lengths > self.trunk_length[self.group]).flatten()

    @property
    def trunk_width(self) -> int:
        return int(self.trunk_length.max())

    @property
    def continuation_width(self) -> int:
        return int((self.lengths - self.trunk_length[self.group]).clamp(min=0).max())

    @property
    def cost(self) -> int:
        r"""Positions the two passes compute, padding included."""
        return (
            len(self.trunk_length) * self.trunk_width
            + len(self.continuation_rows) * self.continuation_width
        )


def plan_sharing(
    input_ids: Tensor,
    lengths: Tensor,
    window: Optional[int] = None,
    min_shared_tokens: int = MIN_SHARED_TOKENS,
    min_saved_fraction: float = MIN_SAVED_FRACTION,
) -> Optional[SharingPlan]:
    r"""
    Groups the rows of one call by shared prefix (see the module documentation).

    Args:
        input_ids (Tensor): LongTensor ``[B, T]``, right-padded.
        lengths (Tensor): LongTensor ``[B]``: real tokens of each row (>= 1).
        window (int, optional): Sliding window of the model: plans whose two
                    passes do not fit in it are not made. Default: None
        min_shared_tokens (int, optional): Least saving per row beyond the first,
                    in positions. Default: 8
        min_saved_fraction (float, optional): Least saving, as a fraction of the
                    plain pass's ``B * T`` positions. Default: 0.1

    Returns:
        :class:`SharingPlan`, or None when a plain pass is as good.

    Examples::

        >>> prompt = torch.arange(1, 21)
        >>> ids = torch.stack([torch.cat([prompt, torch.tensor([30, 31])]),
        >>>                    torch.cat([prompt, torch.tensor([32, 33])])])
        >>> plan = plan_sharing(ids, torch.tensor([22, 22]))
        >>> plan.trunk_length, plan.cost   # one trunk of 20 tokens: 20 + 2 * 2 < 44
        >>> # (tensor([20]), 24)
    """
    batch, width = input_ids.shape
    if batch < 2:
        return None
    ids = input_ids.detach().cpu().numpy()
    row_lengths = lengths.detach().cpu().numpy().astype(np.int64)
    order = np.array(
        sorted(range(batch), key=lambda row: ids[row, : row_lengths[row]].tolist()), dtype=np.int64
    )
    sorted_ids, sorted_lengths = ids[order], row_lengths[order]
    divergence = _neighbour_divergence(sorted_ids, sorted_lengths)
    best = _greedy_grouping(divergence, sorted_lengths, window)
    if best is None:
        return None
    cost, starts, depths = best
    plain = batch * width
    saved = plain - cost
    if saved <= 0 or saved < max(min_shared_tokens * (batch - 1), min_saved_fraction * plain):
        return None
    return _plan_from_groups(order, sorted_lengths, starts, depths)


def _neighbour_divergence(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    r"""``[B - 1]``: where sorted row ``k`` and row ``k + 1`` first differ; a
    sentinel larger than any length when row ``k`` is a prefix of row ``k + 1``
    (then it constrains no trunk)."""
    width = ids.shape[1]
    common = np.minimum(lengths[:-1], lengths[1:])
    differs = (ids[:-1] != ids[1:]) | (np.arange(width)[None, :] >= common[:, None])
    first = np.where(differs.any(axis=1), differs.argmax(axis=1), common)
    return np.where(first == lengths[:-1], _PREFIX, first).astype(np.int64)


def _group_depths(divergence: np.ndarray, lengths: np.ndarray, starts: List[int]) -> np.ndarray:
    r"""Trunk length of each group of sorted rows ``[start, next start)``: the first
    divergence inside it, or the length of its last (longest) row when every row is
    a prefix of the next."""
    ends = starts[1:] + [len(lengths)]
    depths = []
    for start, end in zip(starts, ends):
        inside = divergence[start : end - 1]
        chain = not inside.size or inside.min() == _PREFIX
        depths.append(int(lengths[end - 1]) if chain else int(inside.min()))
    return np.array(depths, dtype=np.int64)


def _grouping_cost(
    lengths: np.ndarray, starts: List[int], depths: np.ndarray, window: Optional[int]
) -> Optional[Tuple[int, np.ndarray]]:
    r"""Least ``G * P + R * C`` over caps on the trunk lengths (a shorter trunk
    narrows the trunk pass and widens the continuations), with the capped depths;
    None when no cap fits the window or a trunk would be empty."""
    if int(depths.min()) < 1:
        return None
    sizes = np.diff(starts + [len(lengths)])
    row_depth = np.repeat(depths, sizes)
    best = None
    for cap in np.unique(depths):
        trunk = np.minimum(row_depth, cap)
        beyond = lengths - trunk
        trunk_width, continuation_width = int(trunk.max()), int(beyond.max())
        if window is not None and trunk_width + continuation_width > window:
            continue
        cost = len(starts) * trunk_width + int((beyond > 0).sum()) * continuation_width
        if best is None or cost < best[0]:
            best = (cost, np.minimum(depths, cap))
    return best


def _greedy_grouping(
    divergence: np.ndarray, lengths: np.ndarray, window: Optional[int]
) -> Optional[Tuple[int, List[int], np.ndarray]]:
    r"""Splits groups at the trie's branchings (the first divergence inside a
    group) while the cost falls; returns ``(cost, group starts, trunk lengths)``."""
    starts = [0]
    current = _grouping_cost(lengths, starts, _group_depths(divergence, lengths, starts), window)
    while True:
        best = None
        for index, start in enumerate(starts):
            end = starts[index + 1] if index + 1 < len(starts) else len(lengths)
            inside = divergence[start : end - 1]
            if not inside.size or inside.min() == _PREFIX:
                continue  # a chain of prefixes: nothing to split
            cuts = [start + 1 + int(k) for k in np.nonzero(inside == inside.min())[0]]
            trial = sorted(starts + cuts)
            result = _grouping_cost(lengths, trial, _group_depths(divergence, lengths, trial), window)
            if result is not None and (best is None or result[0] < best[0][0]):
                best = (result, trial)
        if best is None or (current is not None and best[0][0] >= current[0]):
            break
        current, starts = best
    if current is None:
        return None
    return current[0], starts, current[1]


def _plan_from_groups(
    order: np.ndarray, sorted_lengths: np.ndarray, starts: List[int], depths: np.ndarray
) -> SharingPlan:
    sizes = np.diff(starts + [len(order)])
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.repeat(np.arange(len(starts)), sizes)
    ends = starts[1:] + [len(order)]
    # the longest row of a group holds its trunk (its first `depth` tokens)
    sources = [order[start + int(np.argmax(sorted_lengths[start:end]))] for start, end in zip(starts, ends)]
    lengths = np.empty(len(order), dtype=np.int64)
    lengths[order] = sorted_lengths
    return SharingPlan(
        torch.from_numpy(group), torch.tensor(sources, dtype=torch.long),
        torch.from_numpy(depths.copy()), torch.from_numpy(lengths),
    )


def right_padded_lengths(attention_mask: Tensor) -> Optional[Tensor]:
    r"""Real tokens of each row ``[B]`` (on the CPU) when every row is right-padded
    and has at least one token; else None."""
    mask = attention_mask.detach().cpu().bool()
    lengths = mask.sum(dim=1)
    expected = torch.arange(mask.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    if bool((lengths == 0).any()) or not torch.equal(mask, expected):
        return None
    return lengths


class PrefixSharingEngine:
    r"""
    Evaluates per-position class logits of a Hugging Face decoder-only
    ``*ForSequenceClassification`` model with shared prefixes computed once (see
    the module documentation). :class:`~captum_pi.PerPositionForward` builds one
    and asks it for a plan on every call.

    Building it inspects the model's config and runs the equality probe; a model
    that cannot share issues one :class:`PrefixSharingWarning` and keeps
    :attr:`shares_prefixes` False.

    Args:
        model (nn.Module): The classifier; its decoder is ``model.base_model``.
        head (nn.Module): The head applied at every position (``model.score``).
        plain (Callable): ``plain(input_ids, attention_mask) -> [B, T, C]``: the
                    plain pass the probe compares with.
        min_shared_tokens (int, optional): See :func:`plan_sharing`. Default: 8
        min_saved_fraction (float, optional): See :func:`plan_sharing`. Default: 0.1

    Attributes:
        shares_prefixes (bool): Whether calls may share prefixes.
        reason (str or None): Why not, when :attr:`shares_prefixes` is False.
        window (int or None): The model's sliding window, if any.

    Examples::

        >>> engine = PrefixSharingEngine(model, model.score, plain=PerPositionForward(model))
        >>> plan = engine.plan(ids, attention_mask)   # None: run a plain pass
        >>> logits = engine.run(ids, plan)            # [B, T, C]
    """

    def __init__(
        self,
        model: nn.Module,
        head: nn.Module,
        plain: Callable[[Tensor, Tensor], Tensor],
        min_shared_tokens: int = MIN_SHARED_TOKENS,
        min_saved_fraction: float = MIN_SAVED_FRACTION,
    ) -> None:
        self.model = model
        self.head = head
        self.min_shared_tokens = min_shared_tokens
        self.min_saved_fraction = min_saved_fraction
        self.decoder = getattr(model, "base_model", None)
        self.cache_argument = _cache_argument(self.decoder)
        config = _text_config(model)
        self.window = _sliding_window(config)
        self.reason = _obstacle(model, self.decoder, self.cache_argument, config)
        if self.reason is None:
            self.reason = self._probe(plain)
        if self.reason is not None:
            warnings.warn(
                f"Prefix sharing is off for {type(model).__name__}: {self.reason}. Every call "
                "runs as plain batched passes (correct, without the saving).",
                PrefixSharingWarning,
                stacklevel=4,
            )

    @property
    def shares_prefixes(self) -> bool:
        return self.reason is None

    def plan(self, input_ids: Tensor, attention_mask: Tensor) -> Optional[SharingPlan]:
        r"""
        Args:
            input_ids (Tensor): LongTensor ``[B, T]``.
            attention_mask (Tensor): ``[B, T]``.

        Returns:
            :class:`SharingPlan`, or None for a plain pass (the model cannot share,
            the rows are not right-padded, or too little is shared).
        """
        if not self.shares_prefixes:
            return None
        lengths = right_padded_lengths(attention_mask)
        if lengths is None:
            return None
        return plan_sharing(
            input_ids, lengths, self.window, self.min_shared_tokens, self.min_saved_fraction
        )

    def run(self, input_ids: Tensor, plan: SharingPlan) -> Tensor:
        r"""
        Per-position logits ``[B, T, C]`` of the rows, computed as ``plan`` says
        (call under :func:`torch.no_grad` with the model in eval mode).
        """
        device = input_ids.device
        group = plan.group.to(device)
        trunk_length = plan.trunk_length.to(device)
        trunk_width = plan.trunk_width
        trunk_ids = input_ids[plan.trunk_source.to(device), :trunk_width]
        trunk_mask = (torch.arange(trunk_width, device=device).unsqueeze(0) < trunk_length.unsqueeze(1)).long()
        outputs = self.decoder(input_ids=trunk_ids, attention_mask=trunk_mask, use_cache=True)
        trunk_hidden = outputs.last_hidden_state
        rows = plan.continuation_rows.to(device)
        continuation_hidden = trunk_hidden.new_zeros(0, 1, trunk_hidden.shape[-1])
        if rows.numel():
            cache = _checked_cache(outputs)
            continuation_hidden = self._continue(
                input_ids, plan, rows, group, trunk_length, trunk_mask, cache
            )
        hidden = _assemble(trunk_hidden, continuation_hidden, plan, input_ids.shape[1])
        return self.head(hidden)

    def _continue(
        self, input_ids: Tensor, plan: SharingPlan, rows: Tensor, group: Tensor,
        trunk_length: Tensor, trunk_mask: Tensor, cache: object,
    ) -> Tensor:
        r"""Hidden states ``[R, C, D]`` of the continuation rows, extending the cache."""
        device = input_ids.device
        lengths = plan.lengths.to(device)[rows].unsqueeze(1)
        start = trunk_length[group[rows]].unsqueeze(1)
        source = start + torch.arange(plan.continuation_width, device=device).unsqueeze(0)
        real = source < lengths
        ids = input_ids[rows.unsqueeze(1), source.clamp(max=input_ids.shape[1] - 1)]
        # positions continue each row's trunk; padding repeats the last real one
        position_ids = torch.where(real, source, lengths - 1)
        cache.batch_select_indices(group[rows])
        attention_mask = torch.cat([trunk_mask[group[rows]], real.long()], dim=1)
        outputs = self.decoder(
            input_ids=ids, attention_mask=attention_mask, position_ids=position_ids,
            use_cache=True, **{self.cache_argument: cache},
        )
        return outputs.last_hidden_state

    def _probe(self, plain: Callable[[Tensor, Tensor], Tensor]) -> Optional[str]:
        r"""Compares :meth:`run` with ``plain`` on a batch with two trunks of
        different lengths, a row equal to a trunk and a row shorter than its trunk;
        returns why sharing is off, or None."""
        try:
            ids, mask, plan = _probe_batch(self.model, self.window)
            device = next(self.model.parameters()).device
            ids, mask = ids.to(device), mask.to(device)
            reference = plain(ids, mask).float()
            with torch.no_grad():
                shared = self.run(ids, plan).float()
        except Exception as error:  # any failure means: do not share
            return f"the equality probe failed ({type(error).__name__}: {error})"
        real = mask.bool()
        gap = float((shared[real] - reference[real]).abs().max())
        scale = float(reference[real].abs().max())
        if not gap <= 1e-4 + 1e-3 * scale:
            return (
                f"logits extended from a cached prefix differed from a plain pass by {gap:.2e} "
                "in the equality probe"
            )
        return None


def _text_config(model: nn.Module) -> object:
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def _cache_argument(decoder: Optional[nn.Module]) -> Optional[str]:
    r"""The name under which the decoder takes a cache (``"cache"`` in recent
    transformers, ``"past_key_values"`` before), or None."""
    if not isinstance(decoder, nn.Module):
        return None
    try:
        parameters = inspect.signature(decoder.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    return None


def _sliding_window(config: object) -> Optional[int]:
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return int(window) if "sliding_attention" in layer_types else None
    return int(window) if getattr(config, "use_sliding_window", True) else None


def _obstacle(
    model: nn.Module, decoder: Optional[nn.Module], cache_argument: Optional[str], config: object
) -> Optional[str]:
    r"""Why the config or the signature rules prefix sharing out, or None."""
    if not isinstance(decoder, nn.Module) or decoder is model:
        return "it has no separate decoder (`model.base_model`) to run with a cache"
    if cache_argument is None:
        return f"its decoder {type(decoder).__name__}.forward takes no `cache` / `past_key_values`"
    layer_types = getattr(config, "layer_types", None) or ()
    other = sorted(set(layer_types) - set(SUPPORTED_LAYER_TYPES))
    if other:
        return f"it has layers of kinds {other} (a hybrid cache), not only {SUPPORTED_LAYER_TYPES}"
    if getattr(config, "attention_chunk_size", None):
        return "it uses chunked attention"
    return None


def _checked_cache(outputs: object) -> object:
    from transformers.cache_utils import Cache, DynamicLayer, DynamicSlidingWindowLayer

    cache = getattr(outputs, "cache", None)
    if cache is None:
        cache = getattr(outputs, "past_key_values", None)
    if not isinstance(cache, Cache):
        raise TypeError(f"the decoder returned no Cache object (got {type(cache).__name__})")
    kinds = {type(layer) for layer in cache.layers}
    if not kinds <= {DynamicLayer, DynamicSlidingWindowLayer}:
        raise TypeError(f"cache layers {sorted(k.__name__ for k in kinds)} cannot be extended")
    return cache


def _assemble(trunk_hidden: Tensor, continuation_hidden: Tensor, plan: SharingPlan, width: int) -> Tensor:
    r"""Hidden states ``[B, width, D]``: a row's positions before the end of its
    trunk from the trunk pass, the rest from its continuation (padding positions
    take any neighbouring state)."""
    device = trunk_hidden.device
    n_trunks, trunk_width, dim = trunk_hidden.shape
    continuation_width = continuation_hidden.shape[1]
    group = plan.group.to(device).unsqueeze(1)
    trunk_length = plan.trunk_length.to(device)[group]
    positions = torch.arange(width, device=device).unsqueeze(0)
    slot = torch.full((len(plan.group),), -1, dtype=torch.long, device=device)
    rows = plan.continuation_rows.to(device)
    slot[rows] = torch.arange(len(rows), device=device)
    slot = slot.unsqueeze(1)
    from_trunk = group * trunk_width + positions.clamp(max=trunk_width - 1)
    from_continuation = (
        n_trunks * trunk_width + slot.clamp(min=0) * continuation_width
        + (positions - trunk_length).clamp(0, continuation_width - 1)
    )
    index = torch.where((positions < trunk_length) | (slot < 0), from_trunk, from_continuation)
    flat = torch.cat([trunk_hidden.reshape(-1, dim), continuation_hidden.reshape(-1, dim)])
    return flat[index]


def _probe_batch(model: nn.Module, window: Optional[int]) -> Tuple[Tensor, Tensor, SharingPlan]:
    r"""Five random rows and a forced plan: trunk A (``L - 4`` tokens) for a long
    row, a row branching off it and a row equal to it; trunk B (``L - 3`` tokens)
    for a row and a row shorter than the trunk. The two passes fit a sliding
    window."""
    length = 12 if window is None else min(12, window - 1)
    if length < 6:
        raise ValueError(f"the sliding window ({window}) is too short to share anything")
    vocab_size = int(getattr(_text_config(model), "vocab_size", 2) or 2)
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, vocab_size, (length,), generator=generator)
    second = torch.randint(0, vocab_size, (length - 1,), generator=generator)
    branch = (first[length - 4 : length - 1] + 1) % vocab_size
    rows = [first, torch.cat([first[: length - 4], branch]), first[: length - 4], second, second[: length - 5]]
    lengths = torch.tensor([len(row) for row in rows])
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()
    plan = SharingPlan(
        group=torch.tensor([0, 0, 0, 1, 1]), trunk_source=torch.tensor([0, 3]),
        trunk_length=torch.tensor([length - 4, length - 3]), lengths=lengths,
    )
    return ids, mask, plan
