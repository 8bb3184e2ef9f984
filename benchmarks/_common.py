r"""Shared pieces of the benchmark scripts: models by name, the test sample, counting,
a memoising per-position forward."""
import contextlib
import os
import platform
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from captum_pi.data import load_drug_reviews

#: "smollm2" and "gemma3" carry frozen-feature heads (logistic regressions on last-token
#: states); "-lora" are the LoRA fine-tuned classifiers shipped in captum_pi/assets
#: (benchmarks/train_lora.py --ship), the binary SmolLM2 one being the package default.
MODELS = ("smollm2", "smollm2-lora", "gemma3", "gemma3-lora")
TASK_CLASSES = {"binary": 2, "3class": 3}


def check_bundle(model_name: str, task: str) -> Optional[Path]:
    r"""Checks, without loading anything, that :func:`load_bundle` can load
    ``(model_name, task)``: returns the LoRA adapter it will read (None for the
    frozen-feature heads), raises ValueError for an unknown model or task or an
    adapter that is not shipped (yet)."""
    from captum_pi import models

    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; expected one of {MODELS}.")
    if task not in TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; expected one of {tuple(TASK_CLASSES)}.")
    if not model_name.endswith("-lora"):
        return None
    if model_name == "smollm2-lora" and task == "binary":
        return models.DEFAULT_ADAPTER_PATH
    base = model_name[: -len("-lora")]
    adapter = models.LORA_ASSETS / f"{base}-{task}_lora.pt"
    if not adapter.is_file():
        raise ValueError(f"no shipped adapter {adapter.name}; train it with "
                         f"python benchmarks/train_lora.py --model {base} --task {task} --warm-start --ship")
    return adapter


def load_bundle(model_name: str, task: str):
    r"""A trained classifier bundle (model, tokenizer, prefix, label names) by name;
    frozen-feature heads are cached by ``captum_pi.heads``."""
    from captum_pi import models

    adapter = check_bundle(model_name, task)
    num_labels = TASK_CLASSES[task]
    if model_name == "smollm2-lora" and task == "binary":
        return models.load_default_classifier()  # the LoRA adapter shipped in the package
    if adapter is not None:
        loader = models.load_smollm2_classifier if model_name == "smollm2-lora" else models.load_gemma3_classifier
        return loader(num_labels=num_labels, adapter=adapter)
    if model_name == "smollm2" and task == "binary":
        return models.load_smollm2_classifier(head=models.DEFAULT_HEAD_PATH)  # the shipped frozen head
    loader = models.load_smollm2_classifier if model_name == "smollm2" else models.load_gemma3_classifier
    return loader(num_labels=num_labels, head="drugreview")


def sample_reviews(task: str, seed: int) -> List[Tuple[int, str, int]]:
    r"""Test reviews as (index in the test split, text, label), in a seeded random order."""
    test = load_drug_reviews("test", task)
    order = np.random.default_rng(seed).permutation(len(test.texts))
    return [(int(i), test.texts[i], int(test.labels[i])) for i in order]


class RowCounter:
    r"""Counts the rows that reach a model's ``score`` head in forward passes."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self._handle = model.score.register_forward_pre_hook(self._count)

    def remove(self) -> None:
        r"""Stops counting (removes the hook)."""
        self._handle.remove()

    def _count(self, _module: torch.nn.Module, args: tuple) -> None:
        self.rows += int(args[0].shape[0])

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict]:
        result = {"rows": 0}
        start = self.rows
        yield result
        result["rows"] = self.rows - start


class CachedPerPosition:
    r"""
    A memoising per-position forward: ``f(input_ids, attention_mask=None) -> [B, T, C]``
    class logits at every position of a Hugging Face decoder-only classifier (through
    :class:`captum_pi.PerPositionForward`), each distinct row evaluated once.

    A row is its real tokens: its token ids up to its attention mask (rows must be
    right-padded). Because attention is causal, the logits of a row's first ``k``
    positions are the logits of its ``k``-token prefix, so every prefix of a computed
    row is registered too, and a later request for a row that is a prefix of a
    computed one (under deletion: every coalition without the last feature) is
    answered from the cache. The cache is prefix-closed, so registering a row stops
    at its longest prefix already present. Rows missing from the cache are computed
    in batches of ``chunk``, longest first, skipping those that are prefixes of
    another row of the same request. Padded positions of the output are 0.

    Values from the cache differ from a direct call only by float noise (~1e-6: a
    row evaluated alone, in another batch or with other padding).

    Attributes:
        rows_requested (int): Rows asked for (the cost a user without the cache pays).
        rows_computed (int): Rows the model evaluated.
        config: The model's config (methods read ``num_labels`` and ``vocab_size``).
    """

    def __init__(self, model: torch.nn.Module, chunk: int = 32) -> None:
        from captum_pi import PerPositionForward

        self.per_position = PerPositionForward(model)
        self.config = getattr(model, "config", None)
        self.chunk = chunk
        self.rows_requested = 0
        self.rows_computed = 0
        self._cache: Dict[Tuple[int, ...], Tuple[torch.Tensor, int]] = {}

    def clear(self) -> None:
        r"""Empties the cache (between reviews); the counters keep running."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict]:
        r"""Rows requested and computed within the block."""
        result = {"rows": 0, "computed": 0}
        requested, computed = self.rows_requested, self.rows_computed
        yield result
        result["rows"] = self.rows_requested - requested
        result["computed"] = self.rows_computed - computed

    def __call__(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        ids = input_ids.detach().cpu()
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask.detach().cpu().long()
        lengths = mask.sum(dim=1)
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        if not bool(((positions < lengths.unsqueeze(1)).long() == mask).all()):
            raise ValueError("CachedPerPosition needs right-padded rows (attention mask 1...1 0...0).")
        rows = [tuple(ids[row, : int(length)].tolist()) for row, length in enumerate(lengths)]
        self.rows_requested += len(rows)
        self._compute([row for row in dict.fromkeys(rows) if row not in self._cache])
        first = self._cache[rows[0]][0] if rows and rows[0] else None
        n_classes = first.shape[-1] if first is not None else int(self.config.num_labels)
        out = torch.zeros(ids.shape[0], ids.shape[1], n_classes)
        for index, row in enumerate(rows):
            if row:
                logits, length = self._cache[row]
                out[index, :length] = logits[:length]
        return out.to(input_ids.device)

    def _compute(self, missing: List[Tuple[int, ...]]) -> None:
        selected: List[Tuple[int, ...]] = []
        covered = set()
        for row in sorted(missing, key=len, reverse=True):
            if row and row not in covered:
                selected.append(row)
                covered.update(row[:k] for k in range(1, len(row) + 1))
        for start in range(0, len(selected), self.chunk):
            batch = selected[start: start + self.chunk]
            width = len(batch[0])
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for index, row in enumerate(batch):
                ids[index, : len(row)] = torch.tensor(row)
                mask[index, : len(row)] = 1
            logits = self.per_position(ids, mask).cpu()
            self.rows_computed += len(batch)
            for index, row in enumerate(batch):
                self._register(row, logits[index, : len(row)].clone())

    def _register(self, row: Tuple[int, ...], logits: torch.Tensor) -> None:
        for k in range(len(row), 0, -1):
            prefix = row[:k]
            if prefix in self._cache:
                break  # the cache is prefix-closed: shorter prefixes are there too
            self._cache[prefix] = (logits, k)


def machine() -> str:
    import captum
    import transformers

    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"transformers {transformers.__version__}, captum {captum.__version__}, "
            f"Python {platform.python_version()}")
