r"""
Plausible replacement tokens for :class:`~captum_pi._core.reagent.ReAGent`.

ReAGent (Zhao & Shan, 2024) replaces part of the context with tokens a replacement
model finds plausible and reads how much the prediction changes. The paper's
replacement model is RoBERTa, a masked language model; none can be installed offline
here (no masked language model, no part-of-speech tagger model is on PyPI), so two
samplers that need nothing beyond the explained model are offered:

- :class:`LanguageModelSampler` (``"lm"``): the explained LLM's own language-model
  head, read off the hidden states of the prediction pass: the token at position
  ``t`` is replaced by a draw from the model's next-token distribution after
  ``x_1 .. x_{t-1}`` (its ``top_k`` most likely tokens, the original token
  excluded). The head of a decoder classifier is its input embedding matrix when the
  embeddings are tied (SmolLM2, Gemma 3, Qwen2, ...), which is checked.
- :class:`UniformSampler` (``"uniform"``): a token drawn uniformly from the
  vocabulary (special tokens excluded), the authors' simplest sampler.

A sampler is prepared once per explained row (:meth:`for_row`), then draws
replacements for any number of copies of it (:meth:`RowSampler.replace`); the
length of the row and every token outside the replaced positions are kept.
"""
from typing import Iterable, Optional

import torch
from torch import Tensor, nn

SAMPLERS = ("lm", "uniform")


class RowSampler:
    r"""
    Replacement candidates for every position of one row.

    Args:
        row_ids (Tensor): LongTensor ``[L]``: the row.
        candidates (Tensor): LongTensor ``[L, K]``: candidate tokens per position.
        weights (Tensor): ``[L, K]`` nonnegative sampling weights (every row has a
                    positive entry).
    """

    def __init__(self, row_ids: Tensor, candidates: Tensor, weights: Tensor) -> None:
        self.row_ids = row_ids
        self.candidates = candidates
        self.weights = weights

    def replace(self, positions: Tensor, generator: torch.Generator) -> Tensor:
        r"""
        Copies of the row with the marked positions replaced.

        Args:
            positions (Tensor): BoolTensor ``[P, L]``: positions to replace per copy.
            generator (torch.Generator): Source of the draws.

        Returns:
            LongTensor ``[P, L]``.
        """
        copies = self.row_ids.expand(positions.shape[0], -1).clone()
        copy_index, position = torch.nonzero(positions, as_tuple=True)
        if position.numel():
            choice = torch.multinomial(self.weights[position], 1, generator=generator).squeeze(1)
            copies[copy_index, position] = self.candidates[position, choice]
        return copies


class UniformSampler:
    r"""
    Replacement tokens drawn uniformly from the vocabulary.

    Args:
        vocab_size (int): Size of the vocabulary.
        excluded_ids (Iterable[int], optional): Token ids never drawn (special
                    tokens). Default: ()
    """

    needs_hidden_states = False

    def __init__(self, vocab_size: int, excluded_ids: Iterable[int] = ()) -> None:
        allowed = torch.ones(int(vocab_size), dtype=torch.bool)
        allowed[[int(i) for i in excluded_ids if 0 <= int(i) < vocab_size]] = False
        self.allowed_ids = torch.nonzero(allowed).flatten()
        if self.allowed_ids.numel() < 2:
            raise ValueError("the uniform sampler needs at least two allowed token ids.")

    def for_row(self, row_ids: Tensor, hidden_states: Optional[Tensor] = None) -> "UniformRowSampler":
        r"""
        Args:
            row_ids (Tensor): LongTensor ``[L]``.
            hidden_states (Tensor, optional): Unused. Default: None

        Returns:
            :class:`UniformRowSampler` (the original token at a position is never
            drawn).
        """
        return UniformRowSampler(row_ids.cpu(), self.allowed_ids)


class UniformRowSampler:
    r"""Uniform draws from ``allowed_ids`` for one row, redrawn where a draw equals
    the original token (the same interface as :class:`RowSampler`)."""

    def __init__(self, row_ids: Tensor, allowed_ids: Tensor) -> None:
        self.row_ids = row_ids
        self.allowed_ids = allowed_ids

    def replace(self, positions: Tensor, generator: torch.Generator) -> Tensor:
        copies = self.row_ids.expand(positions.shape[0], -1).clone()
        copy_index, position = torch.nonzero(positions, as_tuple=True)
        draws = self._draw(position.numel(), generator)
        unchanged = draws == self.row_ids[position]
        while bool(unchanged.any()):
            draws[unchanged] = self._draw(int(unchanged.sum()), generator)
            unchanged = draws == self.row_ids[position]
        copies[copy_index, position] = draws
        return copies

    def _draw(self, count: int, generator: torch.Generator) -> Tensor:
        index = torch.randint(0, self.allowed_ids.numel(), (count,), generator=generator)
        return self.allowed_ids[index]


class LanguageModelSampler:
    r"""
    Replacement tokens from the explained model's own language-model head.

    Args:
        model (nn.Module): A Hugging Face decoder-only classifier with tied input and
                    output embeddings (``config.tie_word_embeddings``), so that its
                    input embedding matrix is its language-model head.
        top_k (int, optional): Candidates per position: the ``top_k`` most likely
                    next tokens, the original token excluded, drawn in proportion
                    to their probability. Default: 50
        excluded_ids (Iterable[int], optional): Token ids never drawn (special
                    tokens). Default: ()
    """

    needs_hidden_states = True

    def __init__(self, model: nn.Module, top_k: int = 50, excluded_ids: Iterable[int] = ()) -> None:
        config = getattr(model, "config", None)
        if config is None or not getattr(config, "tie_word_embeddings", False):
            name = type(model).__name__
            raise ValueError(
                f"replacement='lm' reads the language-model head of the explained model, "
                f"which a sequence classifier only has when its input and output embeddings "
                f"are tied (config.tie_word_embeddings); {name} does not tie them. Use "
                "replacement='uniform'."
            )
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}.")
        self.embedding = model.get_input_embeddings().weight
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.top_k = top_k
        self.excluded_ids = [int(i) for i in excluded_ids]

    def for_row(self, row_ids: Tensor, hidden_states: Optional[Tensor] = None) -> RowSampler:
        r"""
        Args:
            row_ids (Tensor): LongTensor ``[L]``.
            hidden_states (Tensor): ``[L, D]`` final hidden states of the row (the
                        input of the classification head) from the prediction pass.

        Returns:
            :class:`RowSampler`. The first position has no left context and draws
            from the model's unconditional guess after it, the distribution at
            position 0.
        """
        if hidden_states is None:
            raise ValueError("LanguageModelSampler.for_row needs the row's hidden states.")
        with torch.no_grad():
            logits = hidden_states.to(self.embedding.dtype) @ self.embedding.T
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            logits = logits.float().cpu()
        # the prediction for position t is read at t - 1; position 0 reuses position 0's
        next_token = torch.cat([logits[:1], logits[:-1]])
        next_token[torch.arange(len(row_ids)), row_ids.cpu()] = float("-inf")
        if self.excluded_ids:
            next_token[:, self.excluded_ids] = float("-inf")
        top = next_token.topk(min(self.top_k, next_token.shape[1] - 1), dim=1)
        weights = torch.softmax(top.values, dim=1)
        return RowSampler(row_ids.cpu(), top.indices, weights)


def build_sampler(
    name: str, model: object, vocab_size: Optional[int], excluded_ids: Iterable[int] = (),
    top_k: int = 50,
) -> "UniformSampler | LanguageModelSampler":
    r"""
    The sampler called ``name`` (``"lm"`` or ``"uniform"``) for ``model``.

    Args:
        name (str): ``"lm"`` or ``"uniform"``.
        model (object): The explained model.
        vocab_size (int or None): Its vocabulary size (``"uniform"`` needs it).
        excluded_ids (Iterable[int], optional): Token ids never drawn. Default: ()
        top_k (int, optional): Candidates per position of ``"lm"``. Default: 50

    Returns:
        :class:`LanguageModelSampler` or :class:`UniformSampler`.
    """
    if name == "lm":
        if not isinstance(model, nn.Module) or getattr(model, "config", None) is None:
            raise ValueError(
                "replacement='lm' needs a Hugging Face model (it reads the model's "
                f"language-model head); got {type(model).__name__}. Use replacement='uniform'."
            )
        return LanguageModelSampler(model, top_k=top_k, excluded_ids=excluded_ids)
    if name == "uniform":
        if vocab_size is None:
            raise ValueError(
                "replacement='uniform' needs the vocabulary size, which a plain callable "
                "does not tell; pass vocab_size= to ReAGent."
            )
        return UniformSampler(vocab_size, excluded_ids)
    raise ValueError(f"replacement must be one of {SAMPLERS}, got {name!r}.")


def special_token_ids(model: object) -> list:
    r"""The BOS, EOS and padding ids of a Hugging Face model's config (never drawn)."""
    config = getattr(model, "config", None)
    ids = []
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, key, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        ids.extend(int(v) for v in values if v is not None)
    return sorted(set(ids))
