r"""
The masking games: the one place that turns (token ids, feature layout, active
features) into model inputs. Every perturbation method, Progressive Inference and
every metric that masks builds its inputs here, so a comparison is fair unless
someone changes the rule on purpose.

Two rules:

- ``"delete"`` (the default): the tokens of inactive features are removed and the
  rest (fixed tokens and active features) packed to the left, positions
  renumbered; a batch of rows of different lengths is right-padded with an
  attention mask. Under deletion Progressive Inference is exact by causality: the
  prediction at the last token of feature ``k`` in a pass on a deleted input *is*
  the model's prediction on that input truncated after feature ``k``. ERASER's
  comprehensiveness and sufficiency delete too. No mask token is needed. Fixed
  text after a feature (a prompt suffix) is the one thing that breaks the
  exactness: an intermediate prediction is read before the suffix was seen
  (:class:`SuffixWarning`).
- ``"replace"``: every token of an inactive feature becomes the mask token
  ``baselines`` (the paper's ``"..."``); lengths and positions never change.
  Intermediate predictions only approximate predictions on masked inputs.

**The empty input.** Under deletion, a row whose tokens all belong to features has
nothing left when every feature is deleted. Such a row needs ``baselines``: the
empty input is then that one token (pass the BOS id; :class:`TextFeatureInput`
passes the tokenizer's BOS). Without it the methods raise before any model pass.
A row with a fixed token (BOS, an instruction prefix) keeps it, and the fully
deleted input is that fixed text.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from captum_pi._core.progressive import FeatureLayout

MASKINGS = ("delete", "replace")
DEFAULT_MASKING = "delete"


class SuffixWarning(UserWarning):
    r"""Fixed text follows a feature, so intermediate predictions are read before it
    and Progressive Inference is not exact under either masking rule."""


SUFFIX_MESSAGE = (
    "Fixed text follows the last feature. The model's own prediction is read after "
    "it, but Progressive Inference reads the prediction after each feature before "
    "it, so intermediate predictions are not predictions on masked inputs, even "
    "under masking='delete' (where PI is otherwise exact): SP-PI attributions then "
    "do not sum to f(x) - f(empty), and MP-PI's coalition values mix two games. Put "
    "fixed text before the features (template='Instruction: {}') where the model "
    "allows it."
)


def check_masking(masking: object) -> str:
    r"""Validates the name of a masking rule: ``"delete"`` or ``"replace"``."""
    if masking not in MASKINGS:
        raise ValueError(
            f"masking must be one of {MASKINGS} ('delete' removes the tokens of inactive "
            f"features, 'replace' replaces them with the mask token `baselines`), got "
            f"{masking!r}."
        )
    return str(masking)


def check_baseline(baselines: object, vocab_size: Optional[int] = None) -> Optional[int]:
    r"""Validates a token id given as ``baselines`` (None passes through)."""
    if baselines is None:
        return None
    if isinstance(baselines, Tensor):
        if baselines.numel() != 1:
            raise ValueError(
                "baselines must be a single mask token id (int); a per-token baseline "
                f"tensor of shape {tuple(baselines.shape)} is not supported."
            )
        baselines = baselines.item()
    if isinstance(baselines, bool) or not isinstance(baselines, int):
        raise ValueError(f"baselines must be a mask token id (int), got {baselines!r}.")
    if baselines < 0 or (vocab_size is not None and baselines >= vocab_size):
        raise ValueError(f"baselines={baselines} is not a token id in [0, {vocab_size}).")
    return baselines


@dataclass(frozen=True)
class MaskedInputs:
    r"""
    Model inputs of ``P`` masked copies of one or more rows, right-padded.

    Attributes:
        input_ids (Tensor): LongTensor ``[P, L]``.
        attention_mask (Tensor): LongTensor ``[P, L]``, 1 for real tokens.
        final (Tensor): LongTensor ``[P]``: position of each copy's final token,
                    where the model's own prediction is read.
        feature_ends (Tensor): LongTensor ``[P, n]``: position of the last token
                    of each feature in each copy. For an inactive feature it is
                    the last token kept before its end (under ``"delete"``; 0
                    when nothing is kept before it); only active entries are
                    meaningful.
    """

    input_ids: Tensor
    attention_mask: Tensor
    final: Tensor
    feature_ends: Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __getitem__(self, rows: slice) -> "MaskedInputs":
        ids = self.input_ids[rows]
        width = max(int(self.final[rows].max()) + 1, 1) if ids.shape[0] else 1
        return MaskedInputs(
            ids[:, :width], self.attention_mask[rows][:, :width], self.final[rows],
            self.feature_ends[rows],
        )


@dataclass(frozen=True)
class Masking:
    r"""
    A masking rule with its token: builds the model inputs of coalitions.

    Attributes:
        rule (str): ``"delete"`` or ``"replace"``.
        token (int or None): Under ``"replace"`` the mask token id (required);
                    under ``"delete"`` the token read as the empty input of rows
                    without fixed tokens (optional).
    """

    rule: str
    token: Optional[int]

    @property
    def pad_id(self) -> int:
        r"""Token id of right padding (masked out by the attention mask)."""
        return 0 if self.token is None else int(self.token)

    def check_layouts(self, layouts: Sequence[FeatureLayout], method: str) -> None:
        r"""Refuses rows whose fully deleted input would be empty when no token
        stands for the empty input, before any model pass."""
        if self.rule != "delete" or self.token is not None:
            return
        empty = [row for row, layout in enumerate(layouts) if bool((layout.token_feature >= 0).all())]
        if empty:
            raise ValueError(
                f"{method}: rows {empty[:10]} have no fixed (-1) token, so deleting every "
                "feature leaves an empty input, which a model cannot read. Mark a BOS or "
                "prefix token -1 in feature_mask (TextFeatureInput does), or pass "
                "`baselines` = the token id that stands for the empty input (e.g. the BOS "
                "id); under masking='delete' the empty input is then that one token."
            )

    def apply(self, input_ids: Tensor, layout: FeatureLayout, active: Tensor) -> MaskedInputs:
        r"""
        Masked copies of one row.

        Args:
            input_ids (Tensor): LongTensor ``[T]``; padding beyond ``layout.length``
                        is dropped.
            layout (FeatureLayout): The row's features.
            active (Tensor): BoolTensor ``[P, n_features]``: active features per copy.

        Returns:
            :class:`MaskedInputs` of ``P`` copies.
        """
        row = input_ids[: layout.length].cpu()
        active = active.cpu().bool()
        keep = _kept_tokens(layout, active)
        if self.rule == "replace":
            ids = torch.where(keep, row.expand_as(keep), torch.full_like(row, int(self.token)))
            n_copies = active.shape[0]
            return MaskedInputs(
                ids,
                torch.ones_like(ids),
                torch.full((n_copies,), layout.length - 1, dtype=torch.long),
                layout.ends.expand(n_copies, -1).clone(),
            )
        return self._delete(row, layout, keep)

    def _delete(self, row: Tensor, layout: FeatureLayout, keep: Tensor) -> MaskedInputs:
        n_copies = keep.shape[0]
        lengths = keep.sum(dim=1)
        width = max(int(lengths.max()) if n_copies else 1, 1)
        new_position = keep.long().cumsum(dim=1) - 1
        ids = torch.full((n_copies, width), self.pad_id, dtype=row.dtype)
        copy_index = torch.arange(n_copies).unsqueeze(1).expand_as(keep)
        ids[copy_index[keep], new_position[keep]] = row.expand_as(keep)[keep]
        attention_mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
        empty = lengths == 0
        if bool(empty.any()):
            if self.token is None:
                raise ValueError(
                    "masking='delete' produced an empty input (every feature deleted and "
                    "no fixed token); pass `baselines` as the token of the empty input."
                )
            ids[empty, 0] = int(self.token)
            attention_mask[empty, 0] = 1
        final = torch.clamp(lengths - 1, min=0)
        feature_ends = torch.clamp(new_position[:, layout.ends], min=0)
        return MaskedInputs(ids, attention_mask, final, feature_ends)

    def fully_masked(self, input_ids: Tensor, layout: FeatureLayout) -> MaskedInputs:
        r"""The copy of one row with every feature masked."""
        return self.apply(input_ids, layout, torch.zeros(1, layout.n_features, dtype=torch.bool))


def _kept_tokens(layout: FeatureLayout, active: Tensor) -> Tensor:
    r"""BoolTensor ``[P, length]``: fixed tokens and the tokens of active features."""
    token_feature = layout.token_feature
    keep = torch.ones(active.shape[0], layout.length, dtype=torch.bool)
    is_feature = token_feature >= 0
    keep[:, is_feature] = active[:, token_feature[is_feature]]
    return keep


def resolve_masking(
    masking: str, baselines: object, vocab_size: Optional[int], method: str
) -> Masking:
    r"""
    Validates ``masking`` and ``baselines`` at a public boundary.

    Args:
        masking (str): ``"delete"`` or ``"replace"``.
        baselines (int or None): The mask token id (required for ``"replace"``),
                    or under ``"delete"`` the token of the empty input.
        vocab_size (int or None): Vocabulary size, to check the token id.
        method (str): Name of the caller, for error messages.

    Returns:
        :class:`Masking`
    """
    rule = check_masking(masking)
    token = check_baseline(baselines, vocab_size)
    if rule == "replace" and token is None:
        raise ValueError(
            f"{method} with masking='replace' needs `baselines`: the mask token id that "
            "replaces every token of an inactive feature (the paper uses the id of "
            "'...'; captum_pi.mask_token_id(tokenizer) gives it). masking='delete' needs "
            "none."
        )
    return Masking(rule, token)


def concat_masked(pieces: Sequence[MaskedInputs], pad_id: int) -> MaskedInputs:
    r"""One right-padded batch from masked inputs of possibly different widths and
    feature counts (``feature_ends`` padded with 0)."""
    width = max(piece.input_ids.shape[1] for piece in pieces)
    n_features = max(piece.feature_ends.shape[1] for piece in pieces)

    def pad(tensor: Tensor, size: int, value: int) -> Tensor:
        return torch.nn.functional.pad(tensor, (0, size - tensor.shape[1]), value=value)

    return MaskedInputs(
        torch.cat([pad(piece.input_ids, width, pad_id) for piece in pieces]),
        torch.cat([pad(piece.attention_mask, width, 0) for piece in pieces]),
        torch.cat([piece.final for piece in pieces]),
        torch.cat([pad(piece.feature_ends, n_features, 0) for piece in pieces]),
    )


def with_fully_masked_rows(
    inputs: Tensor,
    attention_mask: Optional[Tensor],
    layouts: List[FeatureLayout],
    rows: List[int],
    masking: Masking,
) -> "tuple[Tensor, Tensor, Tensor]":
    r"""
    Appends to the batch, for each row in ``rows``, its copy with every feature
    masked, so the fully masked inputs are evaluated in the same model call.

    Returns:
        ``(input_ids, attention_mask, final)`` of ``B + len(rows)`` rows; ``final``
        is the position of each row's final token.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(inputs)
    lengths = torch.tensor([layout.length - 1 for layout in layouts], dtype=torch.long)
    if not rows:
        return inputs, attention_mask, lengths
    unmasked = MaskedInputs(inputs.cpu(), attention_mask.cpu().long(), lengths,
                            torch.zeros(len(layouts), 1, dtype=torch.long))
    empties = [masking.fully_masked(inputs[row], layouts[row]) for row in rows]
    batch = concat_masked([unmasked, *empties], masking.pad_id)
    return batch.input_ids, batch.attention_mask, batch.final
