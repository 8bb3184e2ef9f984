r"""Toy models and inputs shared by the tests of :mod:`captum_pi.metrics`
(tests/test_metrics_*.py)."""
import math

import torch
from torch import Tensor, nn

BOS = 1


class AdditiveLogitModel(nn.Module):
    r"""Two classes; at every position the logit of class 1 minus that of class 0 is
    the running sum of per-token scores (the mask token and BOS score 0), so
    ``p(1 | x_S) = sigmoid(sum_{i in S} s_i)``. A pairwise term ``interaction`` is
    added once both tokens ``pair`` have been read."""

    def __init__(self, scores: dict, interaction: float = 0.0, pair: tuple = (0, 0)) -> None:
        super().__init__()
        table = torch.zeros(64, dtype=torch.float64)
        for token, score in scores.items():
            table[token] = score
        self.table = table
        self.interaction = interaction
        self.pair = pair

    def forward(self, input_ids: Tensor, attention_mask: Tensor = None) -> Tensor:
        scores = self.table[input_ids]
        if attention_mask is not None:
            scores = scores * attention_mask
        running = scores.cumsum(dim=1)
        seen_first = (input_ids == self.pair[0]).cumsum(1).clamp(max=1)
        seen_second = (input_ids == self.pair[1]).cumsum(1).clamp(max=1)
        running = running + self.interaction * seen_first * seen_second
        return torch.stack([torch.zeros_like(running), running], dim=-1)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def trapezoid_area(points: list) -> float:
    step = 1.0 / (len(points) - 1)
    return sum((a + b) / 2 * step for a, b in zip(points[:-1], points[1:]))


# Five one-token features after a fixed BOS token; token 5 + i carries score S[i].
S = [2.0, -1.0, 0.5, -2.5, 1.5]
IDS = torch.tensor([[BOS, 5, 6, 7, 8, 9]])
FEATURES = torch.tensor([[-1, 0, 1, 2, 3, 4]])
ADDITIVE = AdditiveLogitModel({5 + i: s for i, s in enumerate(S)})

WORDS = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4]])
WORD_IDS = torch.tensor([[BOS, 9, 3, 17, 22, 8, 30, 4, 11, 13]])
