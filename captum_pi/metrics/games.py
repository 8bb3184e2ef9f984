r"""
Coalition games of a masking rule, evaluated exactly: the value ``v(S)`` of every
coalition ``S`` of a row's features (:func:`coalition_values`), and the Shapley values
of a game given that way (:func:`shapley_from_game`).

``v(S)`` is the explained value at the final token of the input whose features
outside ``S`` are masked with the masking game (:mod:`captum_pi._core.masking`). Under
replacement that takes ``2^n`` passes. Under deletion, when no fixed token follows a
feature, ``2^(n-1)`` passes suffice (one more without a prefix token): by causality
the intermediate predictions of the passes on the coalitions that contain the last
feature are the final-token predictions of every other coalition
(:func:`_half_cost_passes`). The progressive game MP-PI samples
(:func:`_progressive_game_logits`) reads each coalition at the last token of its last
feature instead.

Games are the exact references of :mod:`captum_pi.metrics.shapley`, and plug into
other estimators (shapiq's approximators take a function of a coalition matrix).
"""
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_pi._core.masking import DEFAULT_MASKING, MaskedInputs, Masking
from captum_pi._core.progressive import FeatureLayout, PerPositionForward, TargetType, resolve_targets
from captum_pi.metrics._masked_values import (
    ForwardFunc,
    MaskedValueSetup,
    explained_value_array,
    logits_at_positions,
    masked_value_setup,
    progress,
)

__all__ = ["CoalitionValuesResult", "coalition_values", "shapley_from_game"]

MAX_GAME_FEATURES = 16


@dataclass
class CoalitionValuesResult:
    r"""
    Every coalition's value, per example.

    Attributes:
        games (list of np.ndarray): Per example ``[2^n]`` float64: ``games[b][s]``
                    is ``v(S)`` for ``S`` the bits of ``s`` (feature ``i`` is bit ``i``;
                    ``0`` is the empty coalition, ``2^n - 1`` the full one).
        n_samples (list of int): Per example, the model input rows it took.
        targets (Tensor): LongTensor ``[B]``, the class explained.
        n_calls (int): Model calls made.
        n_rows (int): Input rows evaluated.
    """

    games: List[np.ndarray]
    n_samples: List[int]
    targets: Tensor
    n_calls: int
    n_rows: int


def coalition_values(
    forward_func: ForwardFunc,
    inputs: Tensor,
    target: TargetType = None,
    feature_mask: Optional[Tensor] = None,
    baselines: Optional[int] = None,
    attention_mask: Optional[Tensor] = None,
    target_type: str = "prob",
    max_features: int = MAX_GAME_FEATURES,
    perturbations_per_eval: int = 32,
    show_progress: bool = False,
    masking: str = DEFAULT_MASKING,
) -> CoalitionValuesResult:
    r"""
    The value ``v(S)`` of every coalition of every example's features under a masking
    game, evaluated in batches (``2^(n-1)`` rows per example under deletion without
    fixed text after a feature, ``2^n`` otherwise).

    Args:
        forward_func (Callable, nn.Module or PerPositionForward): See
                    :func:`captum_pi.metrics.activation_study`.
        inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
        target (int or Tensor, optional): Class explained; None uses the predicted
                    class on the unmasked input. Default: None
        feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``. Default: None
        baselines (int, optional): Under ``masking="replace"`` the mask token id,
                    required; under ``"delete"`` only needed for rows without a
                    fixed token, as the token of their empty input. Default: None
        attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        max_features (int, optional): Largest ``n`` accepted. Default: 16
        perturbations_per_eval (int, optional): Masked inputs per model call.
                    Default: 32
        show_progress (bool, optional): Progress bar over rows. Default: False
        masking (str, optional): ``"delete"`` or ``"replace"``. Default: "delete"

    Returns:
        :class:`CoalitionValuesResult`

    Examples::

        >>> games = coalition_values(model, ids, feature_mask=sentences).games
        >>> shapley_from_game(games[0])     # exact Shapley values of the first row
    """
    setup = masked_value_setup(
        forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
        perturbations_per_eval, "coalition_values", masking,
    )
    largest = max(layout.n_features for layout in setup.layouts)
    if largest > max_features:
        raise ValueError(
            f"coalition_values evaluates every coalition; got a row with {largest} features > "
            f"max_features={max_features}."
        )
    exact = [True] * len(setup.layouts)
    full_logits, logits, passes = _exact_coalition_logits(setup, exact, perturbations_per_eval, show_progress)
    targets = resolve_targets(target, full_logits)
    games = [
        explained_value_array(block, int(row_target), target_type)
        for block, row_target in zip(logits, targets)
    ]
    n_calls, n_rows = setup.counts()
    return CoalitionValuesResult(games, passes, targets, n_calls, n_rows)


def _progressive_game_logits(
    per_position: PerPositionForward,
    ids: Tensor,
    layout: FeatureLayout,
    masking: Masking,
    perturbations_per_eval: int,
) -> Tensor:
    r"""``[2^n, C]`` logits of ``v_PI`` for every coalition (bits as in
    :func:`_all_coalitions`), read at the last token of each coalition's last
    feature, or at the final token for the empty and the full coalition."""
    n = layout.n_features
    coalitions = _all_coalitions(n)
    ranks = torch.arange(1, n + 1)
    blocks = []
    for start in range(0, coalitions.shape[0], perturbations_per_eval):
        active = coalitions[start : start + perturbations_per_eval]
        masked = masking.apply(ids, layout, active)
        logits = per_position(masked.input_ids, masked.attention_mask).cpu()
        last_feature = (active * ranks).argmax(dim=1)
        copies = torch.arange(active.shape[0])
        position = masked.feature_ends[copies, last_feature]
        anchors = ~active.any(dim=1) | active.all(dim=1)
        position[anchors] = masked.final[anchors]
        blocks.append(logits[copies, position])
    return torch.cat(blocks)


def _exact_coalition_logits(
    setup: MaskedValueSetup, exact: List[bool], perturbations_per_eval: int, show_progress: bool
) -> Tuple[Tensor, List[Tensor], List[int]]:
    r"""
    Final-token logits of all ``2^n`` coalitions of the exact rows and of the
    unmasked input of the others, in one batched sweep.

    Exact rows pay ``2^n`` passes (the full coalition is the unmasked input),
    except under deletion when no fixed token follows a feature: the
    intermediate predictions of the ``2^(n-1)`` passes on the coalitions that
    contain the last feature are then the final-token predictions of every
    nonempty coalition (:func:`_half_cost_passes`), and the empty coalition is
    read at the last prefix token, or from one more pass when there is none.

    Returns:
        ``(full_logits [B, C], blocks, passes)`` where ``blocks[row]`` is
        ``[2^n, C]`` for exact rows (bits as in :func:`_all_coalitions`) and
        ``[1, C]`` (the unmasked input) for the others, and ``passes[row]`` the
        model input rows the row cost.
    """
    plans = [_coalition_plan(setup.masking, layout, is_exact) for layout, is_exact in zip(setup.layouts, exact)]
    bar = progress(
        desc="exact Shapley coalitions", total=sum(len(plan[0]) for plan in plans),
        disable=not show_progress,
    )
    masked = (
        setup.masking.apply(row, layout, active)
        for row, layout, (active, _, _) in zip(setup.rows, setup.layouts, plans)
    )
    reads = ((block, positions(block)) for block, (_, positions, _) in zip(masked, plans))
    read = logits_at_positions(setup.per_position, reads, setup.masking.pad_id, perturbations_per_eval, bar)
    bar.close()
    blocks = [assemble(logits) for logits, (_, _, assemble) in zip(read, plans)]
    return torch.stack([block[-1] for block in blocks]), blocks, [len(plan[0]) for plan in plans]


def _coalition_plan(masking: Masking, layout: FeatureLayout, is_exact: bool) -> Tuple[Tensor, Callable, Callable]:
    r"""What to evaluate for one row: ``(active [P, n], positions_of(masked) ->
    [P, k], assemble(logits [P, k, C]) -> [2^n or 1, C])``."""
    n = layout.n_features
    if not is_exact:
        return torch.ones(1, n, dtype=torch.bool), _final_position, lambda logits: logits[:, 0]
    if masking.rule == "delete" and no_fixed_token_after_a_feature(layout):
        return _half_cost_passes(layout)
    return _all_coalitions(n), _final_position, lambda logits: logits[:, 0]


def _final_position(masked: MaskedInputs) -> Tensor:
    return masked.final.unsqueeze(1)


def no_fixed_token_after_a_feature(layout: FeatureLayout) -> bool:
    r"""True when every token from the first feature's on belongs to a feature (no
    fixed text between or after the features). Under deletion the read after
    feature ``k`` of a pass on ``A`` is then, by causality, ``v(A ∩ {0..k})``, so
    the exact game takes ``2^(n-1)`` passes (:func:`_half_cost_passes`)."""
    return bool((layout.token_feature[int(layout.starts[0]):] >= 0).all())


def _half_cost_passes(layout: FeatureLayout) -> Tuple[Tensor, Callable, Callable]:
    r"""
    The exact deletion game of a row in ``2^(n-1)`` passes (one more without a
    prefix token). A pass on coalition ``A`` (containing the last feature) reads,
    at the last token of each active feature ``k``, the model's prediction on the
    input with every feature outside ``A`` deleted and everything after ``k``
    cut off: by causality that is ``v(A ∩ {0..k})``. Every nonempty coalition
    ``S`` is ``A ∩ {0..max S}`` for ``A = S ∪ {n-1}``. The empty coalition is the
    prefix alone: read at the last prefix token of the first pass, or from a pass
    on the empty input when the row has no prefix.
    """
    n = layout.n_features
    codes = torch.arange(2 ** (n - 1)) | (1 << (n - 1))
    if layout.prefix_end is None:
        codes = torch.cat([codes, torch.zeros(1, dtype=torch.long)])
    active = (codes.unsqueeze(1) >> torch.arange(n).unsqueeze(0)) & 1 == 1
    prefix = 0 if layout.prefix_end is None else layout.prefix_end

    def positions(masked: MaskedInputs) -> Tensor:
        at_prefix = torch.full((len(masked), 1), prefix, dtype=torch.long)
        return torch.cat([masked.feature_ends, masked.final.unsqueeze(1), at_prefix], dim=1)

    def assemble(logits: Tensor) -> Tensor:
        game = torch.empty(2 ** n, logits.shape[-1], dtype=logits.dtype)
        for feature in range(n):
            selected = active[:, feature]
            coalition = codes[selected] & ((1 << (feature + 1)) - 1)
            game[coalition] = logits[selected, feature]
        if layout.prefix_end is None:
            game[0] = logits[-1, n]  # the pass on the empty input, at its final token
        else:
            game[0] = logits[0, n + 1]
        return game

    return active, positions, assemble


def _all_coalitions(n: int) -> Tensor:
    r"""BoolTensor ``[2^n, n]``; row ``s`` holds the bits of ``s`` (feature ``i`` is
    bit ``i``), so the last row is the full coalition."""
    codes = torch.arange(2 ** n).unsqueeze(1)
    return (codes >> torch.arange(n).unsqueeze(0)) & 1 == 1


def shapley_from_game(game: np.ndarray) -> np.ndarray:
    r"""
    Exact Shapley values of a game given by every coalition's value,
    ``phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! (v(S + i) - v(S))``.

    Args:
        game (np.ndarray): ``[2^n]``; ``game[s] = v(S)`` with ``S`` the bits of ``s``
                    (feature ``i`` is bit ``i``), as :func:`coalition_values` returns.

    Returns:
        np.ndarray ``[n]``.
    """
    n = int(round(math.log2(game.size)))
    if game.ndim != 1 or 2 ** n != game.size:
        raise ValueError(f"game must hold 2^n values, got shape {game.shape}.")
    codes = np.arange(2 ** n)
    sizes = np.array([bin(code).count("1") for code in codes])
    weights = np.array([
        math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)
    ])
    phi = np.zeros(n)
    for feature in range(n):
        bit = 1 << feature
        without = codes[(codes & bit) == 0]
        phi[feature] = np.sum(weights[sizes[without]] * (game[without | bit] - game[without]))
    return phi
