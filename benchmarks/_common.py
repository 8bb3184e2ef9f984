r"""Shared pieces of the benchmark scripts: models by name, the test sample, counting."""
import contextlib
import os
import platform
from typing import Iterator, List, Tuple

import numpy as np
import torch

from captum_pi.data import load_drug_reviews

MODELS = ("smollm2", "gemma3", "gpt2")
TASK_CLASSES = {"binary": 2, "3class": 3}


def load_bundle(model_name: str, task: str):
    r"""A trained classifier bundle (model, tokenizer, prefix, label names) by name;
    heads and the from-scratch GPT-2 are cached by ``captum_pi.models``."""
    from captum_pi import models

    num_labels = TASK_CLASSES[task]
    if model_name == "smollm2" and task == "binary":
        return models.load_default_classifier()  # the head shipped in the package
    if model_name == "smollm2":
        return models.load_smollm2_classifier(num_labels=num_labels, head="drugreview")
    if model_name == "gemma3":
        return models.load_gemma3_classifier(num_labels=num_labels, head="drugreview")
    if model_name == "gpt2":
        train = load_drug_reviews("train", task)
        return models.train_gpt2_classifier(train.texts, train.labels, train.label_names)
    raise ValueError(f"unknown model {model_name!r}; expected one of {MODELS}.")


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


def machine() -> str:
    import captum
    import transformers

    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"transformers {transformers.__version__}, captum {captum.__version__}, "
            f"Python {platform.python_version()}")
