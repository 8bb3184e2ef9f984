r"""
Means over examples with a Student-t confidence interval: the summary every metric
result reports (the paper's Tables 5 and 6).
"""
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
from scipy import stats
from torch import Tensor

__all__ = ["ConfidenceInterval", "mean_confidence_interval"]


@dataclass(frozen=True)
class ConfidenceInterval:
    r"""
    A mean over examples with a Student-t confidence interval.

    Attributes:
        mean (float): Mean of the finite values.
        half_width (float): Half-width of the interval, ``t_{(1+c)/2, m-1} s / sqrt(m)``;
                    NaN when fewer than 2 finite values.
        confidence (float): Confidence level ``c``.
        n_examples (int): Number ``m`` of finite values used (NaN values are dropped).
    """

    mean: float
    half_width: float
    confidence: float
    n_examples: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.half_width:.4f}"


def mean_confidence_interval(
    values: Union[Sequence[float], np.ndarray, Tensor], confidence: float = 0.95
) -> ConfidenceInterval:
    r"""
    Mean of per-example scores with a two-sided Student-t confidence interval, as in
    the paper's Tables 5 and 6. NaN values (e.g. a Spearman correlation of a
    constant attribution) are dropped and the count of the rest is reported.

    Args:
        values (array-like): One score per example.
        confidence (float, optional): Confidence level in (0, 1). Default: 0.95

    Returns:
        :class:`ConfidenceInterval`

    Examples::

        >>> result = activation_study(model, ids, attr, feature_mask=words, baselines=3)
        >>> mean_confidence_interval(result.areas)   # same as result.summary()
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    array = np.asarray(
        values.detach().cpu().numpy() if isinstance(values, Tensor) else values, dtype=np.float64
    ).ravel()
    finite = array[~np.isnan(array)]
    if finite.size == 0:
        return ConfidenceInterval(float("nan"), float("nan"), confidence, 0)
    mean = float(finite.mean())
    if finite.size < 2:
        return ConfidenceInterval(mean, float("nan"), confidence, 1)
    t_quantile = stats.t.ppf((1.0 + confidence) / 2.0, finite.size - 1)
    half_width = float(t_quantile * stats.sem(finite))
    return ConfidenceInterval(mean, half_width, confidence, int(finite.size))
