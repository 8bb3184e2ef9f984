r"""
Our masking games as shapiq games: :class:`TextGame` turns one text explanation (a
classifier, token ids, a feature mask, a masking game, a target) into a
:class:`shapiq.Game`, so every shapiq approximator (SPEX, ProxySPEX, the regression
and sampling estimators, :class:`shapiq.ExactComputer`) runs on an LLM classifier
and returns shapiq's own :class:`~shapiq.InteractionValues`.

The value of a coalition ``S`` is the explained value (``target_type``: the target
class's probability by default, as in :mod:`captum_pi.metrics`) at the final token
of the input whose features outside ``S`` are masked by the masking game of
:mod:`captum_pi._core.masking`; the game is not normalised, so ``v(empty)`` is the
prediction on the fully masked input and shapiq's ``baseline_value`` is that value.

**Passes.** Every evaluation is a *pass*: one model input row, the input masked to a
coalition ``A``, read at the last token of each feature (and at the final and the
last prefix token). Under the deletion game with no fixed text after a feature, the
read after feature ``k`` of a pass on ``A`` *is* ``v(A ∩ {0..k})`` (causality; see
:mod:`captum_pi._core.masking`), so

- :meth:`PassGame.value_function` runs only the passes that are needed: a requested
  coalition that is the prefix of another requested one comes free
  (:func:`plan_passes`; enumerating all ``2^n`` coalitions costs ``2^(n-1)`` rows,
  as :func:`captum_pi.metrics.coalition_values` does);
- :meth:`PassGame.reveal` hands Progressive Inference every coalition a pass
  reveals (:mod:`captum_pi.interactions.progressive`).

Otherwise (``masking="replace"``, or a suffix) each coalition costs its own pass and
the intermediate reads are only Progressive Inference's approximations. Every value
is computed once and cached; ``n_rows`` counts the model input rows spent.

:class:`TableGame` is the same game over a table of every coalition's value (from
:func:`captum_pi.metrics.coalition_values`), counting the rows a model would have
needed: estimators can be compared at equal model cost without a model.
"""
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from captum_pi._core.masking import DEFAULT_MASKING
from captum_pi._core.multi_pass import _empty_read_at_prefix
from captum_pi._core.progressive import TargetType, resolve_targets
from captum_pi.metrics._masked_values import (
    explained_value_array,
    logits_at_positions,
    masked_value_setup,
    progress,
)
from captum_pi.metrics.games import no_fixed_token_after_a_feature

SHAPIQ_INSTALL = 'pip install "captum-pi[shapiq]"'


def require_shapiq() -> object:
    r"""The shapiq module, or an ImportError that says how to install it."""
    try:
        import shapiq
    except ImportError as error:
        raise ImportError(
            "captum_pi.interactions needs shapiq (its Game, approximators and "
            f"InteractionValues): {SHAPIQ_INSTALL} (or pip install 'shapiq>=1.4.1,<1.5'; "
            "ProxySPEX also needs lightgbm)."
        ) from error
    return shapiq


shapiq = require_shapiq()


def plan_passes(coalitions: np.ndarray) -> np.ndarray:
    r"""
    The fewest passes whose prefixes reveal every coalition of ``coalitions`` under
    the deletion game: a coalition ``S`` is read from a pass on ``A`` when
    ``A ∩ {0..max S} = S``. Taking the coalitions by decreasing last feature, each
    one that no pass taken so far reveals becomes a pass; so the passes are the
    requested coalitions that are no other requested coalition's prefix. The empty
    coalition, read after no feature, is a pass of its own (the games read it at the
    last prefix token of the unmasked pass when there is one).

    Args:
        coalitions (np.ndarray): BoolArray ``[m, n]`` of distinct coalitions.

    Returns:
        BoolArray ``[P, n]``, ``P <= m``.

    Examples::

        >>> plan_passes(np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]], dtype=bool))
        array([[ True, False,  True], [False,  True, False]])
    """
    coalitions = np.asarray(coalitions, dtype=bool)
    n = coalitions.shape[1]
    last = np.where(coalitions.any(axis=1), n - 1 - np.argmax(coalitions[:, ::-1], axis=1), -1)
    revealed = set()
    passes = []
    for row in np.argsort(-last, kind="stable"):
        if coalitions[row].tobytes() in revealed:
            continue
        passes.append(coalitions[row])
        revealed.update(prefix.tobytes() for prefix in _prefixes(coalitions[row]))
    return np.stack(passes) if passes else np.zeros((0, n), dtype=bool)


def _prefixes(active: np.ndarray) -> List[np.ndarray]:
    r"""``A ∩ {0..k}`` for every active feature ``k`` of one pass."""
    upto = np.arange(active.size)
    return [active & (upto <= k) for k in np.flatnonzero(active)]


class PassGame(shapiq.Game):
    r"""
    A shapiq game whose values come from passes (see the module documentation);
    subclasses say how a batch of passes is evaluated (:meth:`_pass_values`).

    Attributes:
        exact_prefixes (bool): Whether the read after feature ``k`` of a pass is the
                    exact value of the pass's coalition cut after ``k`` (deletion
                    game, no fixed text after a feature).
        empty_value (float): ``v(empty)``.
        full_value (float): ``v(N)``, the prediction on the unmasked input.
        full_ends (np.ndarray): ``[n]`` reads after each feature of the unmasked
                    pass (``v({0..k})`` when ``exact_prefixes``).
        anchor_rows (int): Rows of the unmasked and the fully masked pass (1 when
                    the fully masked input is the prefix of the unmasked one).
        n_rows (int): Model input rows evaluated so far, the anchors included.
    """

    def __init__(
        self, anchor_values: np.ndarray, exact_prefixes: bool, empty_at_prefix: bool,
        player_names: Optional[Sequence[str]] = None,
    ) -> None:
        n = anchor_values.shape[1] - 2
        names = list(player_names) if player_names is not None else None
        if names is not None and len(set(names)) != len(names):
            names = None  # shapiq looks players up by name; duplicate texts cannot be
        super().__init__(n, normalize=False, player_names=names)
        self.exact_prefixes = bool(exact_prefixes)
        self.full_value = float(anchor_values[0, n])
        self.empty_value = float(anchor_values[0, n + 1] if empty_at_prefix else anchor_values[1, n])
        self.full_ends = anchor_values[0, :n].copy()
        self.anchor_rows = 1 if empty_at_prefix else 2
        self.n_rows = self.anchor_rows
        self._cache: Dict[bytes, float] = {}
        self._store(np.ones((1, n), dtype=bool), anchor_values[:1])
        self._cache[np.zeros(n, dtype=bool).tobytes()] = self.empty_value

    def _pass_values(self, passes: np.ndarray) -> np.ndarray:
        r"""``[P, n + 2]`` explained values of passes ``[P, n]``: the read after each
        feature, at the final token and at the last prefix token."""
        raise NotImplementedError

    def _store(self, passes: np.ndarray, values: np.ndarray) -> None:
        n = self.n_players
        for active, row in zip(passes, values):
            self._cache[active.tobytes()] = float(row[n])
            if self.exact_prefixes:
                for feature, prefix in zip(np.flatnonzero(active), _prefixes(active)):
                    self._cache.setdefault(prefix.tobytes(), float(row[feature]))

    def _run(self, passes: np.ndarray) -> np.ndarray:
        values = self._pass_values(passes)
        self.n_rows += len(passes)
        self._store(passes, values)
        return values

    def reveal(self, passes: np.ndarray) -> np.ndarray:
        r"""
        The reads after every feature of each pass, ``[P, n]`` (entries of inactive
        features are meaningless): under ``exact_prefixes`` the values
        ``v(A ∩ {0..k})``, and a pass whose coalition is already known costs no
        row; otherwise Progressive Inference's intermediate predictions, each pass
        run.

        Args:
            passes (np.ndarray): BoolArray ``[P, n]`` of input coalitions.

        Returns:
            np.ndarray ``[P, n]``.
        """
        passes = np.asarray(passes, dtype=bool)
        ends = np.full(passes.shape, np.nan)
        if not len(passes):
            return ends
        if not self.exact_prefixes:
            unique, inverse = np.unique(passes, axis=0, return_inverse=True)
            return self._run(unique)[inverse.reshape(-1), : self.n_players]
        fresh = [row for row, active in enumerate(passes) if active.tobytes() not in self._cache]
        if fresh:
            _, first = np.unique(passes[fresh], axis=0, return_index=True)
            self._run(passes[fresh][np.sort(first)])
        for row, active in enumerate(passes):
            for feature, prefix in zip(np.flatnonzero(active), _prefixes(active)):
                ends[row, feature] = self._cache[prefix.tobytes()]
        return ends

    def value_function(self, coalitions: np.ndarray) -> np.ndarray:
        r"""
        ``v(S)`` of every coalition ``[m, n]`` (shapiq's interface), from the cache
        or from the fewest passes that give the missing ones.

        Returns:
            np.ndarray ``[m]`` float64.
        """
        coalitions = np.asarray(coalitions, dtype=bool)
        keys = [coalition.tobytes() for coalition in coalitions]
        missing = {key: coalition for key, coalition in zip(keys, coalitions) if key not in self._cache}
        if missing:
            wanted = np.stack(list(missing.values()))
            self._run(plan_passes(wanted) if self.exact_prefixes else wanted)
        return np.array([self._cache[key] for key in keys], dtype=np.float64)


class TextGame(PassGame):
    r"""
    One text explanation as a :class:`shapiq.Game` with our masking rules: the value
    of a coalition is the classifier's explained value on the input masked to it
    (:meth:`captum_pi._core.masking.Masking.apply`), in batched passes, every value
    cached and every model row counted. Creating the game runs the unmasked input
    and the fully masked one (one model call; under deletion with a fixed prefix the
    fully masked input is that prefix, read from the unmasked pass) to fix the
    target.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model, a
                    :class:`~captum_pi.PerPositionForward`, or a causal callable
                    returning per-position logits ``[B, T, C]``.
        inputs (Tensor): LongTensor ``[1, T]`` of token ids (one row).
        target (int, optional): Class explained; None uses the class predicted on
                    the unmasked input. Default: None
        feature_mask (Tensor, optional): LongTensor ``[1, T]`` in Captum's
                    convention (ids 0..n-1 in order, -1 fixed). None makes every
                    token a feature. Default: None
        baselines (int, optional): The mask token under ``masking="replace"``
                    (required); under ``"delete"`` the token of the empty input of a
                    row without fixed tokens. Default: None
        attention_mask (Tensor, optional): ``[1, T]`` right-padding mask.
                    Default: None
        target_type (str, optional): ``"prob"``, ``"logit"`` or ``"log_prob"``.
                    Default: "prob"
        masking (str, optional): ``"delete"`` or ``"replace"``. Default: "delete"
        perturbations_per_eval (int, optional): Passes per model call. Default: 16
        player_names (list of str, optional): Names of the features for shapiq
                    (dropped when two are equal). Default: None

    Attributes:
        target (int): The class explained.
        target_type (str): What is explained.
        masking (Masking): The masking game.
        features (TextFeatureInput or None): The input, when built by
                    :meth:`from_input`.
        n_rows (int): Model input rows evaluated so far.
        n_calls (int): Model calls made so far.

    Examples::

        >>> import shapiq
        >>> inp = TextFeatureInput(review, bundle.tokenizer, level="sentence",
        >>>                        template=bundle.prefix + "{}")
        >>> game = TextGame.from_input(bundle.model, inp, target=1)
        >>> exact = shapiq.ExactComputer(game)("FSII", 2)   # 2^(n-1) rows under deletion
        >>> spex = shapiq.SPEX(n=game.n_players, index="FSII", max_order=2).approximate(300, game)
        >>> game.n_rows                                     # rows spent by all of them
    """

    def __init__(
        self,
        forward_func: Callable,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        target_type: str = "prob",
        masking: str = DEFAULT_MASKING,
        perturbations_per_eval: int = 16,
        player_names: Optional[Sequence[str]] = None,
    ) -> None:
        if not isinstance(inputs, Tensor) or inputs.dim() != 2 or inputs.shape[0] != 1:
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"TextGame explains one row: inputs must be a LongTensor [1, T], got {shape}.")
        setup = masked_value_setup(
            forward_func, inputs, feature_mask, attention_mask, baselines, target_type,
            perturbations_per_eval, "TextGame", masking,
        )
        self._setup_state = setup
        self.layout = setup.layouts[0]
        self.masking = setup.masking
        self.target_type = target_type
        self.perturbations_per_eval = perturbations_per_eval
        self.features = None
        empty_at_prefix = _empty_read_at_prefix(self.masking, self.layout)
        n = self.layout.n_features
        anchors = np.ones((1 if empty_at_prefix else 2, n), dtype=bool)
        anchors[1:] = False
        logits = self._pass_logits(anchors)
        self.target = int(resolve_targets(target, logits[:1, n])[0])
        exact = self.masking.rule == "delete" and no_fixed_token_after_a_feature(self.layout)
        anchor_values = explained_value_array(logits, self.target, target_type)
        super().__init__(anchor_values, exact, empty_at_prefix, player_names)

    @classmethod
    def from_input(
        cls,
        forward_func: Callable,
        inp: object,
        target: TargetType = None,
        target_type: str = "prob",
        masking: Optional[str] = None,
        perturbations_per_eval: int = 16,
    ) -> "TextGame":
        r"""
        The game of a :class:`~captum_pi.text.TextFeatureInput`: its token ids,
        features and masking rule (or ``masking``), with its mask or empty token;
        its feature texts name the players.

        Args:
            forward_func (Callable or nn.Module): The classifier.
            inp (TextFeatureInput): The text and its features.
            target (int, optional): Class explained. Default: None (predicted)
            target_type (str, optional): Default: "prob"
            masking (str, optional): Overrides the input's rule. Default: None
            perturbations_per_eval (int, optional): Default: 16

        Returns:
            :class:`TextGame`
        """
        rule = inp.masking if masking is None else masking
        game = cls(
            forward_func, inp.input_ids, target, inp.feature_mask, inp.baselines_for(rule),
            inp.attention_mask, target_type, rule, perturbations_per_eval, inp.values,
        )
        game.features = inp
        return game

    @property
    def n_calls(self) -> int:
        return self._setup_state.counts()[0]

    def _pass_logits(self, passes: np.ndarray) -> Tensor:
        r"""``[P, n + 2, C]`` logits of passes: after each feature, at the final and
        at the last prefix token (position 0 when there is no prefix)."""
        masked = self.masking.apply(self._setup_state.rows[0], self.layout, torch.from_numpy(passes))
        prefix = 0 if self.layout.prefix_end is None else self.layout.prefix_end
        positions = torch.cat(
            [masked.feature_ends, masked.final[:, None], torch.full((len(masked), 1), prefix)], dim=1
        )
        bar = progress(total=len(masked), disable=True)
        return logits_at_positions(
            self._setup_state.per_position, [(masked, positions)], self.masking.pad_id,
            self.perturbations_per_eval, bar,
        )[0]

    def _pass_values(self, passes: np.ndarray) -> np.ndarray:
        return explained_value_array(self._pass_logits(passes), self.target, self.target_type)


class TableGame(PassGame):
    r"""
    A game given by every coalition's value, seen through passes as a causal model
    would be under the deletion game: the read after feature ``k`` of a pass on
    ``A`` is ``table[A ∩ {0..k}]``. Costs no model call; ``n_rows`` counts the rows
    the model would have needed, so estimators compare at equal model cost.

    Args:
        table (np.ndarray): ``[2^n]``; ``table[s] = v(S)`` with ``S`` the bits of
                    ``s`` (feature ``i`` is bit ``i``), as
                    :func:`captum_pi.metrics.coalition_values` returns.
        empty_at_prefix (bool, optional): Whether ``v(empty)`` is read from the
                    unmasked pass (a row with a fixed prefix) rather than from a
                    pass of its own. Default: True
        player_names (list of str, optional): Default: None

    Examples::

        >>> table = coalition_values(model, ids, feature_mask=sentences).games[0]
        >>> game = TableGame(table)
        >>> shapiq.ProxySPEX(n=game.n_players, index="FSII", max_order=2).approximate(64, game)
        >>> game.n_rows                                     # what it would have cost
    """

    def __init__(
        self, table: np.ndarray, empty_at_prefix: bool = True, player_names: Optional[Sequence[str]] = None
    ) -> None:
        table = np.asarray(table, dtype=np.float64)
        n = int(round(np.log2(table.size))) if table.size else 0
        if table.ndim != 1 or n < 1 or 2 ** n != table.size:
            raise ValueError(f"table must hold 2^n values (n >= 1), got shape {table.shape}.")
        self.table = table
        anchors = np.ones((1 if empty_at_prefix else 2, n), dtype=bool)
        anchors[1:] = False
        super().__init__(self._pass_values(anchors), True, empty_at_prefix, player_names)

    def _pass_values(self, passes: np.ndarray) -> np.ndarray:
        bits = 1 << np.arange(passes.shape[1])
        codes = np.cumsum(passes * bits, axis=1)
        return np.column_stack(
            [self.table[codes], self.table[codes[:, -1]], np.full(len(passes), self.table[0])]
        )
