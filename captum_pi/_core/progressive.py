r"""
Shared machinery of Progressive Inference: reading a decoder-only classifier's
prediction at every position, describing interpretable features as token spans,
and turning logits into the explained scalar.

Data flows one way:
token ids + feature mask -> :class:`FeatureLayout` per row -> masked inputs (one
masking game, :mod:`captum_pi._core.masking`) -> :class:`PerPositionForward` ->
per-position logits -> :func:`explained_value`.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from captum_pi._core.prefix_sharing import PrefixSharingEngine, prefix_sharing_enabled

TARGET_TYPES = ("prob", "logit", "log_prob")

TargetType = Union[int, Sequence[int], Tensor, None]


class _HeadOutputCaptured(Exception):
    """Raised by the forward hook on the head to skip the model's last-token pooling."""

    def __init__(self, output: Tensor) -> None:
        super().__init__()
        self.output = output


class PerPositionForward:
    r"""
    Callable returning the class logits at every position, ``[B, T, C]``.

    Hugging Face decoder-only ``*ForSequenceClassification`` models are wrapped
    with a forward hook on their ``score`` head, which sees the hidden state of
    every position; the hook stops the forward pass there, so the model's own
    last-token pooling (which needs ``config.pad_token_id`` for batches) never
    runs. Any other callable must already map ``(input_ids, attention_mask)`` to
    per-position logits ``[B, T, C]`` and be causal.

    Rows of one call that begin with the same tokens (the prompt, the text before
    the first masked feature) share that prefix: it is computed once and its
    key-value cache extended to every row's continuation
    (:mod:`captum_pi._core.prefix_sharing`), when that saves enough positions and
    the model's cache can be reused (checked once, when the wrapper is built, by
    an equality probe). Logits at real positions equal a plain pass's up to float
    rounding; logits at padding positions are unspecified. Turn it off with
    ``share_prefixes=False`` or :func:`captum_pi.prefix_sharing`.

    The model is evaluated under ``torch.no_grad()`` in eval mode (dropout off);
    a model left in train mode is put back in train mode afterwards.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only sequence
                    classifier, or a callable ``f(input_ids, attention_mask=None)``
                    returning per-position logits ``[B, T, C]``.
        check_causal (bool, optional): For Hugging Face models, run one tiny
                    probe (8 random tokens) that verifies the prediction at a
                    position does not change when later tokens change.
                    Default: True
        share_prefixes (bool, optional): Compute prefixes shared by the rows of a
                    call once (Hugging Face models whose cache can be reused;
                    others always run plain passes). Default: True

    Attributes:
        n_calls (int): Number of model calls made so far.
        n_rows (int): Number of input rows (forward-pass equivalents) evaluated,
                    shared prefixes or not.
        n_tokens_requested (int): Positions the calls asked for, ``B * T`` each
                    (what plain batched passes compute, padding included).
        n_tokens_computed (int): Positions the model actually computed (equal to
                    :attr:`n_tokens_requested` without prefix sharing).
        n_shared_calls (int): Calls evaluated with shared prefixes.
        prefix_engine (PrefixSharingEngine or None): The engine, for Hugging Face
                    models with ``share_prefixes``; its ``reason`` says why a model
                    cannot share.

    Examples::

        >>> forward = PerPositionForward(model)
        >>> logits = forward(ids, attention_mask)       # [B, T, C]
        >>> forward.n_tokens_computed / forward.n_tokens_requested
        >>> forward.shares_prefixes                      # False: plain passes only
    """

    def __init__(
        self, forward_func: Callable, check_causal: bool = True, share_prefixes: bool = True
    ) -> None:
        if isinstance(forward_func, PerPositionForward):
            forward_func = forward_func.forward_func
        self.forward_func = forward_func
        self.n_calls = 0
        self.n_rows = 0
        self.n_tokens_requested = 0
        self.n_tokens_computed = 0
        self.n_shared_calls = 0
        self.share_prefixes = False  # the causal probe runs as a plain pass
        self.head: Optional[nn.Module] = None
        self.prefix_engine: Optional[PrefixSharingEngine] = None
        if _is_hf_model(forward_func):
            self.head = _find_classification_head(forward_func)
            if check_causal:
                _check_causal(self)
            if share_prefixes:
                self._build_engine()
        elif not callable(forward_func):
            raise TypeError(
                "forward_func must be a Hugging Face decoder-only *ForSequenceClassification "
                f"model or a callable returning [B, T, C] logits, got {type(forward_func).__name__}."
            )
        self.share_prefixes = bool(share_prefixes)

    @property
    def shares_prefixes(self) -> bool:
        r"""Whether calls may share prefixes now: ``share_prefixes`` is set,
        :func:`captum_pi.prefix_sharing` is on and the model's cache can be reused."""
        if not (self.share_prefixes and prefix_sharing_enabled() and self.head is not None):
            return False
        if self.prefix_engine is None:
            self._build_engine()
        return self.prefix_engine.shares_prefixes

    def _build_engine(self) -> None:
        with torch.no_grad(), _eval_mode(self.forward_func):
            self.prefix_engine = PrefixSharingEngine(self.forward_func, self.head, self._hooked_forward)

    @property
    def device(self) -> torch.device:
        if isinstance(self.forward_func, nn.Module):
            for parameter in self.forward_func.parameters():
                return parameter.device
        return torch.device("cpu")

    def __call__(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        input_ids = input_ids.to(self.device)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(self.device)
        self.n_calls += 1
        self.n_rows += int(input_ids.shape[0])
        requested = int(input_ids.numel())
        plan = self.prefix_engine.plan(input_ids, attention_mask) if self.shares_prefixes else None
        with torch.no_grad(), _eval_mode(self.forward_func):
            if plan is not None:
                logits = self.prefix_engine.run(input_ids, plan)
            elif self.head is None:
                logits = self.forward_func(input_ids, attention_mask=attention_mask)
            else:
                logits = self._hooked_forward(input_ids, attention_mask)
        self.n_tokens_requested += requested
        self.n_tokens_computed += requested if plan is None else plan.cost
        self.n_shared_calls += plan is not None
        if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
            raise ValueError(
                "forward_func must return per-position logits of shape [B, T, C] = "
                f"[{input_ids.shape[0]}, {input_ids.shape[1]}, C], got {tuple(logits.shape)}."
            )
        return logits.float()

    def _hooked_forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        def capture(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            raise _HeadOutputCaptured(output)

        handle = self.head.register_forward_hook(capture)
        try:
            self.forward_func(input_ids=input_ids, attention_mask=attention_mask)
        except _HeadOutputCaptured as captured:
            return captured.output
        finally:
            handle.remove()
        raise RuntimeError(
            f"{type(self.forward_func).__name__} finished without calling its `score` head."
        )


class _eval_mode:
    def __init__(self, forward_func: Callable) -> None:
        self.module = forward_func if isinstance(forward_func, nn.Module) else None
        self.was_training = False

    def __enter__(self) -> None:
        if self.module is not None:
            self.was_training = self.module.training
            self.module.eval()

    def __exit__(self, *exc: object) -> None:
        if self.module is not None and self.was_training:
            self.module.train()


def _is_hf_model(forward_func: Callable) -> bool:
    return isinstance(forward_func, nn.Module) and hasattr(forward_func, "config")


def _find_classification_head(model: nn.Module) -> nn.Module:
    name = type(model).__name__
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"{name} is an encoder-decoder model; Progressive Inference needs a "
            "decoder-only (causal) sequence classifier."
        )
    head = getattr(model, "score", None)
    if not isinstance(head, nn.Module):
        raise ValueError(
            f"{name} is not a decoder-only sequence classifier: it has no `score` head "
            "applied at every position (encoder classifiers such as BERT pool a [CLS] "
            "token, so their positions do not see a prefix of the input). Pass a "
            "*ForSequenceClassification model of a causal architecture (GPT-2, Llama, "
            "Mistral, Qwen2, Gemma3, OPT, GPT-NeoX, Phi, ...) or a callable returning "
            "[B, T, C] per-position logits."
        )
    return head


def _check_causal(forward: PerPositionForward) -> None:
    vocab_size = int(getattr(forward.forward_func.config, "vocab_size", 2) or 2)
    generator = torch.Generator().manual_seed(0)
    probe = torch.randint(0, vocab_size, (1, 8), generator=generator)
    changed = probe.clone()
    changed[0, 5:] = (probe[0, 5:] + 1) % vocab_size
    logits = forward(torch.cat([probe, changed]))
    forward.n_calls, forward.n_rows = 0, 0
    forward.n_tokens_requested = forward.n_tokens_computed = forward.n_shared_calls = 0
    if not torch.allclose(logits[0, :5], logits[1, :5], atol=1e-4, rtol=1e-3):
        raise ValueError(
            f"{type(forward.forward_func).__name__} is not causal: its prediction at a "
            "position changed when only later tokens changed, so intermediate "
            "predictions do not approximate predictions on masked inputs."
        )


@dataclass(frozen=True)
class FeatureLayout:
    r"""
    The interpretable features of one input row as contiguous token spans.

    Attributes:
        token_feature (Tensor): LongTensor ``[length]``: the feature id of each
                    non-padding token, -1 for tokens that are never masked.
        starts (Tensor): LongTensor ``[n_features]``: first token of each feature.
        ends (Tensor): LongTensor ``[n_features]``: last token of each feature,
                    where the prediction after seeing the feature is read.
        prefix_end (int or None): Last fixed (-1) token before the first feature,
                    where the prediction before any feature is read; None if the
                    first feature starts the sequence.
        length (int): Number of non-padding tokens; ``length - 1`` is the final
                    token, where the model's own prediction is read.
    """

    token_feature: Tensor
    starts: Tensor
    ends: Tensor
    prefix_end: Optional[int]
    length: int

    @property
    def n_features(self) -> int:
        return int(self.ends.numel())


def build_feature_layouts(
    inputs: Tensor,
    feature_mask: Optional[Tensor] = None,
    attention_mask: Optional[Tensor] = None,
) -> List[FeatureLayout]:
    r"""
    Validates token ids, attention mask and feature mask and describes every row's
    features as token spans.

    Args:
        inputs (Tensor): LongTensor ``[B, T]`` of token ids.
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; tokens sharing an
                    id >= 0 form one feature, -1 marks fixed tokens. Each feature is
                    one contiguous span and ids are 0, 1, ..., n-1 in order along
                    the sequence. None gives one feature per non-padding token.
                    Default: None
        attention_mask (Tensor, optional): ``[B, T]`` with 1 for real tokens and 0
                    for right padding. Default: None (no padding)

    Returns:
        list of :class:`FeatureLayout`, one per row.
    """
    _check_inputs(inputs)
    lengths = _row_lengths(inputs, attention_mask)
    if feature_mask is None:
        return [_token_layout(int(length)) for length in lengths]
    feature_mask = _check_feature_mask(feature_mask, inputs)
    if feature_mask.shape[0] == 1 and inputs.shape[0] > 1:
        feature_mask = feature_mask.expand(inputs.shape[0], -1)
    return [
        _row_layout(feature_mask[row], int(length), row)
        for row, length in enumerate(lengths)
    ]


def _check_inputs(inputs: Tensor) -> None:
    if not isinstance(inputs, Tensor) or inputs.dim() != 2:
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a LongTensor [B, T] of token ids, got {shape}.")
    if inputs.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"inputs must hold integer token ids, got dtype {inputs.dtype}.")
    if inputs.shape[1] == 0:
        raise ValueError("inputs must hold at least one token per row, got T = 0.")


def _row_lengths(inputs: Tensor, attention_mask: Optional[Tensor]) -> List[int]:
    batch, seq_len = inputs.shape
    if attention_mask is None:
        return [seq_len] * batch
    if attention_mask.shape != inputs.shape:
        raise ValueError(
            f"attention_mask must have the shape of inputs {tuple(inputs.shape)}, "
            f"got {tuple(attention_mask.shape)}."
        )
    mask = attention_mask.bool().cpu()
    lengths = mask.sum(dim=1)
    for row in range(batch):
        length = int(lengths[row])
        if length == 0:
            raise ValueError(f"row {row} of attention_mask has no real token.")
        if not bool(mask[row, :length].all()):
            raise ValueError(
                f"row {row} is not right-padded: attention_mask has a 0 before its last 1. "
                "Use right padding (tokenizer.padding_side = 'right'); left padding shifts "
                "positions and would change the intermediate predictions."
            )
    return lengths.tolist()


def _check_feature_mask(feature_mask: Tensor, inputs: Tensor) -> Tensor:
    if not isinstance(feature_mask, Tensor) or feature_mask.dim() != 2:
        raise ValueError("feature_mask must be a LongTensor [B or 1, T].")
    if feature_mask.shape[1] != inputs.shape[1] or feature_mask.shape[0] not in (
        1,
        inputs.shape[0],
    ):
        raise ValueError(
            f"feature_mask must have shape [{inputs.shape[0]} or 1, {inputs.shape[1]}], "
            f"got {tuple(feature_mask.shape)}."
        )
    if feature_mask.dtype.is_floating_point:
        raise ValueError(f"feature_mask must hold integer ids, got dtype {feature_mask.dtype}.")
    if bool((feature_mask < -1).any()):
        raise ValueError("feature_mask ids must be >= 0 for features or -1 for fixed tokens.")
    return feature_mask.long().cpu()


def _token_layout(length: int) -> FeatureLayout:
    positions = torch.arange(length)
    return FeatureLayout(positions, positions, positions, None, length)


def _row_layout(row_mask: Tensor, length: int, row: int) -> FeatureLayout:
    if bool((row_mask[length:] >= 0).any()):
        raise ValueError(
            f"row {row}: feature_mask assigns a feature to a padding token; padding must be -1."
        )
    token_feature = row_mask[:length]
    run_starts = torch.nonzero(
        torch.cat([torch.tensor([True]), token_feature[1:] != token_feature[:-1]])
    ).flatten()
    run_ends = torch.cat([run_starts[1:] - 1, torch.tensor([length - 1])])
    run_ids = token_feature[run_starts]
    is_feature_run = run_ids >= 0
    if not bool(is_feature_run.any()):
        raise ValueError(f"row {row}: feature_mask has no feature (every id is -1).")
    _check_run_ids(run_ids[is_feature_run], row)
    starts, ends = run_starts[is_feature_run], run_ends[is_feature_run]
    fixed_before = torch.nonzero(token_feature[: int(starts[0])] == -1).flatten()
    prefix_end = int(fixed_before[-1]) if fixed_before.numel() else None
    return FeatureLayout(token_feature, starts, ends, prefix_end, length)


def _check_run_ids(run_ids: Tensor, row: int) -> None:
    seen = set()
    for position, feature in enumerate(run_ids.tolist()):
        if feature in seen:
            raise ValueError(
                f"row {row}: feature {feature} is not one contiguous span; every feature "
                "must be one run of tokens."
            )
        seen.add(feature)
        if feature != position:
            raise ValueError(
                f"row {row}: feature ids must be 0, 1, ..., n-1 in order along the "
                f"sequence; found feature {feature} where feature {position} was expected."
            )


def vocab_size_of(forward: PerPositionForward) -> Optional[int]:
    config = getattr(forward.forward_func, "config", None)
    return getattr(config, "vocab_size", None)


def check_target_type(target_type: str) -> str:
    if target_type not in TARGET_TYPES:
        raise ValueError(f"target_type must be one of {TARGET_TYPES}, got {target_type!r}.")
    return target_type


def resolve_targets(target: TargetType, final_logits: Tensor) -> Tensor:
    r"""
    Returns one class index per row: ``target`` broadcast to the batch, or the
    class predicted from ``final_logits`` ``[B, C]`` when ``target`` is None.
    """
    batch, n_classes = final_logits.shape
    if target is None:
        return final_logits.argmax(dim=-1).cpu()
    targets = torch.as_tensor(target).long().flatten().cpu()
    if targets.numel() == 1:
        targets = targets.expand(batch)
    if targets.numel() != batch:
        raise ValueError(
            f"target must be an int or hold one class per row ({batch}), got {targets.numel()}."
        )
    if bool(((targets < 0) | (targets >= n_classes)).any()):
        raise ValueError(
            f"target {targets.tolist()} is out of range: the model has {n_classes} classes."
        )
    return targets.clone()


def explained_value(logits: Tensor, target: int, target_type: str) -> Tensor:
    r"""
    The scalar being explained, from logits ``[..., C]``: the softmax probability,
    the logit or the log-probability of class ``target``.
    """
    if target_type == "logit":
        return logits[..., target]
    log_probs = torch.log_softmax(logits, dim=-1)[..., target]
    return log_probs if target_type == "log_prob" else log_probs.exp()


def expand_to_tokens(
    phi_per_row: List[Tensor], layouts: List[FeatureLayout], seq_len: int
) -> Tensor:
    r"""
    Spreads per-feature attributions over tokens (Captum's FeatureAblation
    convention): every token of feature k carries ``phi_k``; fixed tokens and
    padding carry 0.
    """
    out = torch.zeros(len(layouts), seq_len, dtype=torch.float64)
    for row, (phi, layout) in enumerate(zip(phi_per_row, layouts)):
        is_feature = layout.token_feature >= 0
        positions = torch.nonzero(is_feature).flatten()
        out[row, positions] = phi.double()[layout.token_feature[is_feature]]
    return out


def feature_attributions(
    attributions: Tensor,
    feature_mask: Optional[Tensor] = None,
    attention_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""
    Reads the per-feature attribution vector out of a token-shaped attribution
    tensor in Captum's FeatureAblation convention (every token of a feature carries
    the feature's value), as returned by :class:`SinglePassProgressive`,
    :class:`MultiPassProgressive` or Captum's perturbation methods called with the
    same ``feature_mask``.

    Args:
        attributions (Tensor): ``[B, T]`` token-level attributions.
        feature_mask (Tensor, optional): The feature mask used for the attribution,
                    ``[B or 1, T]``. None means one feature per non-padding token.
                    Default: None
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None

    Returns:
        Tensor ``[B, n_max]`` where ``n_max`` is the largest number of features of
        any row; rows with fewer features are padded with NaN.

    Examples::

        >>> attr = SinglePassProgressive(model).attribute(ids, feature_mask=words)
        >>> phi = feature_attributions(attr, words)   # [B, n_words]
    """
    if attributions.dim() != 2:
        raise ValueError(f"attributions must be [B, T], got {tuple(attributions.shape)}.")
    dummy_ids = torch.zeros(attributions.shape, dtype=torch.long)
    layouts = build_feature_layouts(dummy_ids, feature_mask, attention_mask)
    n_max = max(layout.n_features for layout in layouts)
    out = torch.full((len(layouts), n_max), float("nan"), dtype=attributions.dtype)
    for row, layout in enumerate(layouts):
        out[row, : layout.n_features] = attributions[row, layout.starts.to(attributions.device)].cpu()
    return out
