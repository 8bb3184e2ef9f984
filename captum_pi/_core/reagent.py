r"""
ReAGent (Zhao & Shan, 2024, "ReAGent: A Model-agnostic Feature Attribution Method for
Generative Language Models") for decoder-only classifiers.

ReAGent keeps a score per feature, in logit space, and repeats one step: replace a
random ratio ``r`` of the features by plausible tokens, read the prediction ``p^(r)``
of the explained class, and with ``delta = p^(o) - p^(r)`` (``p^(o)`` on the original
input) add ``logit((1 + delta) / 2)`` to the score of every replaced feature and
``logit((1 - delta) / 2)`` to every kept one: replacing an important feature should
change the prediction more. A probe stops when its ``rational_size`` top-scored
features alone, the others replaced, keep the explained class among the model's
``stop_top_k`` best. Several independent probes run side by side; the attribution
is the softmax of the scores (a distribution over features), averaged over the
probes that stopped (over all when none did).

What differs from the generative original, and why:

- **Target.** The explained quantity is the probability of a class at the final
  token, not of the next token.
- **Stopping.** The authors stop when the target is among the top 5 of a 50,000-token
  vocabulary; a classifier has 2 or 3 classes, where top 5 always holds. The default
  here is top 1: the rational must keep the explained class the predicted one.
- **Rational size.** The authors keep 5 tokens; features here may be a handful of
  sentences, so the default keeps ``min(5, max(1, n // 3))`` features.
- **Replaced features.** The authors draw each token into the replaced set with
  probability ``r``; here exactly ``max(1, round(r n))`` features are drawn per
  step, so no model call is spent on an input that was not changed.
- **Replacement.** The paper replaces tokens by RoBERTa's guesses; no masked language
  model installs offline. By default ReAGent here plays the package's masking game
  like every perturbation method (``masking="delete"``: replaced features are deleted;
  ``"replace"``: they become the "..." token), which served best in
  ``benchmarks/results/reagent/README.md`` (each game's variant is the best ReAGent in
  its own game). ``replacement="lm"`` draws plausible tokens from the explained LLM's
  own language-model head instead, the closest to the paper (the better of the two
  samplers there), and ``replacement="uniform"`` random tokens
  (:mod:`captum_pi._core.token_samplers`).
- **Budget.** The authors cap steps (3000 per probe) but not calls; here
  ``n_samples`` caps the model rows per explained row, ``2 n`` by default like
  Kernel SHAP, LIME and MP-PI, so its cost can be set like theirs.

Defaults from the authors' code (``casszhao/ReAGent``): replacing ratio 0.3, 5 probes,
rational size 5, 3000 steps at most.
"""
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

import torch
from captum._utils.progress import progress
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_pi._core.masking import DEFAULT_MASKING, MaskedInputs, Masking, resolve_masking
from captum_pi._core.progressive import (
    FeatureLayout,
    PerPositionForward,
    TargetType,
    build_feature_layouts,
    expand_to_tokens,
    resolve_targets,
    vocab_size_of,
)
from captum_pi._core.token_samplers import SAMPLERS, build_sampler, special_token_ids

#: Keeps ``logit((1 +- delta) / 2)`` finite when a replacement flips a certain prediction.
_EPS = 1e-6


@dataclass(frozen=True)
class ReAGentRun:
    r"""
    What ReAGent did on one row.

    Attributes:
        rows (int): Model rows evaluated beyond the prediction pass.
        steps (Tensor): LongTensor ``[n_probes]``: updates per probe.
        stopped (Tensor): BoolTensor ``[n_probes]``: probes that met the stopping
                    condition (the others ran out of budget or steps).
    """

    rows: int
    steps: Tensor
    stopped: Tensor


class ReAGent(PerturbationAttribution):
    r"""
    ReAGent, the recursive attribution generator of Zhao & Shan (2024), for a
    decoder-only classifier, on token, word or sentence features. See the module
    docstring for the algorithm and how it was adapted from generation to
    classification.

    Cost: at most ``n_samples`` (default ``2 n``) model rows per row beyond the
    prediction pass, which is always made (it gives ``p^(o)``). A probe step costs one
    row, plus one for the stopping check; probes that stop early leave budget unspent.

    Args:
        forward_func (Callable or nn.Module): A Hugging Face decoder-only
                    ``*ForSequenceClassification`` model or a callable
                    ``f(input_ids, attention_mask=None)`` returning per-position
                    logits ``[B, T, C]`` (see :class:`captum_pi.PerPositionForward`).
                    ``replacement="lm"`` needs a Hugging Face model with tied
                    embeddings.
        vocab_size (int, optional): Vocabulary size for ``replacement="uniform"``;
                    None reads it from the model's config. Default: None
        excluded_token_ids (Iterable[int], optional): Token ids never drawn as
                    replacements; None excludes the BOS, EOS and padding ids of the
                    model's config. Default: None

    Attributes:
        last_runs (list of ReAGentRun): One per row of the last ``attribute`` call.

    Examples::

        >>> reagent = ReAGent(model)
        >>> attr = reagent.attribute(ids, feature_mask=words, seed=0)   # deletion game, [B, T]
        >>> attr = reagent.attribute(ids, feature_mask=words, replacement="lm", seed=0)  # LM tokens
        >>> reagent.last_runs[0].steps, reagent.last_runs[0].stopped
    """

    def __init__(
        self,
        forward_func: Callable,
        vocab_size: Optional[int] = None,
        excluded_token_ids: Optional[Iterable[int]] = None,
    ) -> None:
        PerturbationAttribution.__init__(self, forward_func)
        self.per_position = PerPositionForward(forward_func)
        self.vocab_size = vocab_size if vocab_size is not None else vocab_size_of(self.per_position)
        self.excluded_token_ids = (
            special_token_ids(forward_func) if excluded_token_ids is None else list(excluded_token_ids)
        )
        self.last_runs: List[ReAGentRun] = []

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        feature_mask: Optional[Tensor] = None,
        baselines: Optional[int] = None,
        attention_mask: Optional[Tensor] = None,
        target_type: str = "prob",
        masking: str = DEFAULT_MASKING,
        replacement: Optional[str] = None,
        n_samples: Optional[int] = None,
        n_probes: int = 5,
        replacing_ratio: float = 0.3,
        rational_size: Optional[int] = None,
        stop_top_k: Optional[int] = 1,
        max_steps: int = 3000,
        lm_top_k: int = 50,
        perturbations_per_eval: int = 16,
        seed: Optional[int] = None,
        show_progress: bool = False,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): LongTensor ``[B, T]`` of token ids, right-padded.
            target (int or Tensor, optional): Class explained, an int or a
                        LongTensor ``[B]``. None explains the predicted class.
                        Default: None
            feature_mask (Tensor, optional): LongTensor ``[B or 1, T]``; ids 0..n-1
                        in order, each one contiguous span; -1 for tokens that are
                        never replaced (BOS, template, padding). None makes every
                        non-padding token a feature. Default: None
            baselines (int, optional): The mask token under ``masking="replace"``;
                        under ``"delete"`` the empty input's token, needed only for
                        rows without a fixed token. Unused with ``replacement``.
                        Default: None
            attention_mask (Tensor, optional): ``[B, T]`` right-padding mask.
                        Default: None
            target_type (str, optional): Must be ``"prob"``: the update reads a
                        change of probability (in ``[-1, 1]``). Default: "prob"
            masking (str, optional): The masking game replaced features play:
                        ``"delete"`` or ``"replace"`` (see
                        :mod:`captum_pi._core.masking`). Default: "delete"
            replacement (str, optional): ``"lm"`` replaces the tokens of replaced
                        features by draws from the explained model's language-model
                        head (needs a Hugging Face model with tied embeddings),
                        ``"uniform"`` by random tokens; either overrides
                        ``masking``. None plays the masking game. Default: None
            n_samples (int, optional): Model rows per row beyond the prediction
                        pass, at most. None: ``2 n``. Default: None
            n_probes (int, optional): Independent probes averaged. Default: 5
            replacing_ratio (float, optional): Share of the features replaced per
                        step, in (0, 1]. Default: 0.3
            rational_size (int, optional): Features kept by the stopping check;
                        None: ``min(5, max(1, n // 3))``; at most ``n - 1``.
                        Default: None
            stop_top_k (int, optional): A probe stops when, with only its rational
                        kept, the explained class is among the model's
                        ``stop_top_k`` most likely; None never checks (every row
                        of the budget is an update). Default: 1
            max_steps (int, optional): Updates per probe, at most. Default: 3000
            lm_top_k (int, optional): Candidates per position of
                        ``replacement="lm"``. Default: 50
            perturbations_per_eval (int, optional): Model rows per call.
                        Default: 16
            seed (int, optional): Seed of the draws, set anew for each row. None
                        draws a fresh seed. Default: None
            show_progress (bool, optional): A progress bar over model rows.
                        Default: False

        Returns:
            Tensor ``[B, T]`` (float32): every token of feature ``k`` carries its
            importance (nonnegative, summing to 1 over the row's features); fixed
            tokens and padding carry 0.
        """
        if target_type != "prob":
            raise ValueError(
                f"ReAGent explains target_type='prob' only (its update reads a change of "
                f"probability, which lies in [-1, 1]); got {target_type!r}."
            )
        _check_options(n_samples, n_probes, replacing_ratio, rational_size, stop_top_k,
                       max_steps, perturbations_per_eval)
        layouts = build_feature_layouts(inputs, feature_mask, attention_mask)
        game, sampler = None, None
        if replacement is None:
            game = resolve_masking(masking, baselines, self.vocab_size, "ReAGent")
            game.check_layouts(layouts, "ReAGent")
        elif replacement in SAMPLERS:
            sampler = build_sampler(replacement, self.forward_func, self.vocab_size,
                                    self.excluded_token_ids, lm_top_k)
        else:
            raise ValueError(f"replacement must be None or one of {SAMPLERS}, got {replacement!r}.")
        final_logits, hidden = self._prediction_pass(inputs, attention_mask, layouts,
                                                     sampler is not None and sampler.needs_hidden_states)
        targets = resolve_targets(target, final_logits)
        p_original = torch.softmax(final_logits, dim=-1)[torch.arange(len(layouts)), targets]
        budgets = [2 * layout.n_features if n_samples is None else n_samples for layout in layouts]
        bar = progress(desc="ReAGent rows", total=sum(budgets), disable=not show_progress)
        self.last_runs = []
        phis: List[Tensor] = []
        for row, layout in enumerate(layouts):
            row_ids = inputs[row, : layout.length].cpu()
            if game is not None:
                build = _GameInputs(row_ids, layout, game)
            else:
                row_hidden = None if hidden is None else hidden[row, : layout.length]
                build = _SampledInputs(row_ids, layout, sampler.for_row(row_ids, row_hidden))
            probe = _Probes(
                self.per_position, build, layout.n_features, int(targets[row]), float(p_original[row]),
                n_probes, replacing_ratio, _rational_size(rational_size, layout.n_features),
                stop_top_k, perturbations_per_eval, _generator(seed),
            )
            phi, run = probe.run(budgets[row], max_steps, bar)
            phis.append(phi)
            self.last_runs.append(run)
        bar.close()
        return expand_to_tokens(phis, layouts, inputs.shape[1]).float()

    def _prediction_pass(self, inputs: Tensor, attention_mask: Optional[Tensor],
                         layouts: List[FeatureLayout], with_hidden: bool):
        r"""Final-token logits ``[B, C]`` of the unmasked rows and, for the
        language-model sampler, the hidden states the head reads ``[B, T, D]``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(inputs)
        final = torch.tensor([layout.length - 1 for layout in layouts])
        rows = torch.arange(len(layouts))
        if not with_hidden:
            logits = self.per_position(inputs, attention_mask).cpu()
            return logits[rows, final], None
        model = self.forward_func
        device = self.per_position.device
        with torch.no_grad():
            hidden = model.base_model(
                input_ids=inputs.to(device), attention_mask=attention_mask.to(device), use_cache=False,
            ).last_hidden_state
            logits = self.per_position.head(hidden).float().cpu()
        return logits[rows, final], hidden

    def attribute_future(self) -> None:
        raise NotImplementedError("ReAGent does not support attribute_future.")

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    def has_convergence_delta(self) -> bool:
        return False


class _SampledInputs:
    r"""Copies of one row with the tokens of replaced features drawn by a sampler."""

    def __init__(self, row_ids: Tensor, layout: FeatureLayout, row_sampler: object) -> None:
        self.layout = layout
        self.row_sampler = row_sampler
        self.is_feature = layout.token_feature >= 0
        self.token_feature = layout.token_feature.clamp(min=0)

    def __call__(self, replaced: Tensor, generator: torch.Generator) -> MaskedInputs:
        positions = replaced[:, self.token_feature] & self.is_feature
        ids = self.row_sampler.replace(positions, generator)
        copies = ids.shape[0]
        return MaskedInputs(ids, torch.ones_like(ids),
                            torch.full((copies,), self.layout.length - 1, dtype=torch.long),
                            self.layout.ends.expand(copies, -1).clone())


class _GameInputs:
    r"""Copies of one row with replaced features masked by a masking game."""

    def __init__(self, row_ids: Tensor, layout: FeatureLayout, game: Masking) -> None:
        self.row_ids = row_ids
        self.layout = layout
        self.game = game

    def __call__(self, replaced: Tensor, generator: torch.Generator) -> MaskedInputs:
        return self.game.apply(self.row_ids, self.layout, ~replaced)


class _Probes:
    r"""The probes of one row: scores in logit space, updated step by step."""

    def __init__(self, per_position: PerPositionForward, build: Callable, n_features: int,
                 target: int, p_original: float, n_probes: int, replacing_ratio: float,
                 rational_size: int, stop_top_k: Optional[int], perturbations_per_eval: int,
                 generator: torch.Generator) -> None:
        self.per_position = per_position
        self.build = build
        self.n_features = n_features
        self.target = target
        self.p_original = p_original
        self.n_replaced = min(n_features, max(1, round(replacing_ratio * n_features)))
        self.rational_size = rational_size
        self.stop_top_k = stop_top_k
        self.perturbations_per_eval = perturbations_per_eval
        self.generator = generator
        self.scores = torch.rand(n_probes, n_features, generator=generator, dtype=torch.float64)
        self.steps = torch.zeros(n_probes, dtype=torch.long)
        self.stopped = torch.zeros(n_probes, dtype=torch.bool)
        self.rows = 0

    def run(self, budget: int, max_steps: int, bar: object):
        r"""Steps until every probe stopped, reached ``max_steps`` or the budget of
        model rows is spent; returns ``(phi [n], ReAGentRun)``."""
        while True:
            active = torch.nonzero(~self.stopped & (self.steps < max_steps)).flatten()
            left = budget - self.rows
            if active.numel() == 0 or left <= 0:
                break
            check = self.stop_top_k is not None and left >= 2 * active.numel()
            if not check:
                active = active[:left]
            self._update(active)
            if check:
                self._check_stop(active)
            bar.update(active.numel() * (2 if check else 1))
        distributions = torch.softmax(self.scores, dim=1)
        chosen = self.stopped if bool(self.stopped.any()) else torch.ones_like(self.stopped)
        phi = distributions[chosen].mean(dim=0)
        return phi, ReAGentRun(self.rows, self.steps.clone(), self.stopped.clone())

    def _update(self, probes: Tensor) -> None:
        replaced = self._random_subsets(probes.numel())
        delta = self.p_original - self._target_probs(self.build(replaced, self.generator))
        signed = torch.where(replaced, delta.unsqueeze(1), -delta.unsqueeze(1))
        self.scores[probes] += torch.logit((0.5 + 0.5 * signed).clamp(_EPS, 1 - _EPS))
        self.steps[probes] += 1

    def _check_stop(self, probes: Tensor) -> None:
        rational = self.scores[probes].topk(self.rational_size, dim=1).indices
        kept = torch.zeros(probes.numel(), self.n_features, dtype=torch.bool)
        kept.scatter_(1, rational, True)
        logits = self._final_logits(self.build(~kept, self.generator))
        best = logits.topk(min(self.stop_top_k, logits.shape[1]), dim=1).indices
        self.stopped[probes] |= (best == self.target).any(dim=1)

    def _random_subsets(self, count: int) -> Tensor:
        order = torch.rand(count, self.n_features, generator=self.generator).argsort(dim=1)
        replaced = torch.zeros(count, self.n_features, dtype=torch.bool)
        replaced.scatter_(1, order[:, : self.n_replaced], True)
        return replaced

    def _target_probs(self, masked: MaskedInputs) -> Tensor:
        return torch.softmax(self._final_logits(masked), dim=1)[:, self.target].double()

    def _final_logits(self, masked: MaskedInputs) -> Tensor:
        pieces = []
        for start in range(0, len(masked), self.perturbations_per_eval):
            chunk = masked[start: start + self.perturbations_per_eval]
            logits = self.per_position(chunk.input_ids, chunk.attention_mask).cpu()
            pieces.append(logits[torch.arange(len(chunk)), chunk.final])
        self.rows += len(masked)
        return torch.cat(pieces)


def _rational_size(rational_size: Optional[int], n_features: int) -> int:
    size = min(5, max(1, n_features // 3)) if rational_size is None else rational_size
    return max(0, min(size, n_features - 1))


def _generator(seed: Optional[int]) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def _check_options(n_samples: Optional[int], n_probes: int, replacing_ratio: float,
                   rational_size: Optional[int], stop_top_k: Optional[int], max_steps: int,
                   perturbations_per_eval: int) -> None:
    def positive_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    checks = [
        (n_samples is None or positive_int(n_samples), "n_samples must be a positive int or None"),
        (positive_int(n_probes), "n_probes must be a positive int"),
        (isinstance(replacing_ratio, (int, float)) and 0 < replacing_ratio <= 1,
         "replacing_ratio must lie in (0, 1]"),
        (rational_size is None or (isinstance(rational_size, int) and rational_size >= 0),
         "rational_size must be a nonnegative int or None"),
        (stop_top_k is None or positive_int(stop_top_k), "stop_top_k must be a positive int or None"),
        (positive_int(max_steps), "max_steps must be a positive int"),
        (positive_int(perturbations_per_eval), "perturbations_per_eval must be a positive int"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message + ".")
