r"""
Matplotlib views of the faithfulness metrics of :mod:`captum_pi.metrics`: mean
activation-study curves per method (the paper's Figures 8 and 9) and the gap of
Progressive Inference's intermediate predictions against relative position.

matplotlib is imported when a plot is drawn, so the metrics work without it.
"""
from typing import TYPE_CHECKING, Mapping, Optional, Union

import numpy as np

__all__ = ["plot_activation_curves", "plot_fidelity_gap"]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from captum_pi.metrics.fidelity import FidelityResult
    from captum_pi.metrics.studies import ActivationStudyResult

_STUDY_LABELS = {
    "activation": "Activation study (higher is better)",
    "inverse_activation": "Inverse activation study (lower is better)",
}


def method_color(index: int) -> tuple:
    r"""
    The colour of the ``index``-th method in a plot of many methods: the 20 colours of
    matplotlib's ``tab20``, the ten dark ones first, then the ten light ones, so a dozen
    methods never share a colour (the default cycle repeats after ten).

    Args:
        index (int): The method's position in the plot.

    Returns:
        tuple: An RGB colour.
    """
    from matplotlib import colormaps

    return colormaps["tab20"].colors[(2 * index) % 20 + (index // 10) % 2]


def _axes(ax: Optional["Axes"], figsize: tuple) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_activation_curves(
    results: Mapping[str, "ActivationStudyResult"],
    ax: Optional["Axes"] = None,
    n_points: int = 101,
    confidence: float = 0.95,
    title: Optional[str] = None,
) -> "Figure":
    r"""
    Mean activation (or inverse activation) curve of several attribution methods
    on the same examples, as in the paper's Figures 8 and 9: the explained
    probability against the fraction of features added, one line per method,
    labelled with its mean area and confidence interval.

    Args:
        results (Mapping[str, ActivationStudyResult]): Method name to the result of
                    :func:`captum_pi.metrics.activation_study` (or its inverse) on one
                    set of examples; all of one study.
        ax (matplotlib.axes.Axes, optional): Axes to draw on; None creates a
                    figure. Default: None
        n_points (int, optional): Grid of fractions the curves are averaged on
                    (see :meth:`ActivationStudyResult.mean_curve`). Default: 101
        confidence (float, optional): Level of the interval in the labels.
                    Default: 0.95
        title (str, optional): Title; None names the study. Default: None

    Returns:
        matplotlib.figure.Figure

    Examples::

        >>> studies = {name: activation_study(model, ids, attr, feature_mask=words, baselines=3)
        ...            for name, attr in attributions.items()}
        >>> plot_activation_curves(studies).savefig("activation.png")
    """
    if not results:
        raise ValueError("results must map at least one method name to a study result.")
    studies = {result.study for result in results.values()}
    if len(studies) != 1:
        raise ValueError(
            f"results must all come from one study, got {sorted(studies)}; plot the activation "
            "and inverse activation studies on separate axes."
        )
    ax = _axes(ax, (5.5, 4.0))
    for index, (name, result) in enumerate(results.items()):
        grid, mean = result.mean_curve(n_points)
        ax.plot(grid, mean, color=method_color(index),
                linestyle=("-", "--")[index % 2], label=f"{name} (AUC {result.summary(confidence)})")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("fraction of features added")
    ax.set_ylabel("model output on the explained class")
    ax.set_title(title if title is not None else _STUDY_LABELS[studies.pop()])
    ax.legend(fontsize="small")
    return ax.figure


def plot_fidelity_gap(
    results: Union["FidelityResult", Mapping[str, "FidelityResult"]],
    ax: Optional["Axes"] = None,
    n_bins: int = 10,
    show_points: bool = True,
    title: Optional[str] = None,
) -> "Figure":
    r"""
    Absolute gap ``|p_k - f(x'_k)|`` between Progressive Inference's intermediate
    predictions and the model's predictions on the matching masked inputs, against
    the relative position ``k / n`` of the feature: one dot per (example, feature)
    and the mean per bin of relative position as a line. One line per model when a
    mapping is given.

    Args:
        results (FidelityResult or Mapping[str, FidelityResult]): Result(s) of
                    :func:`captum_pi.metrics.progressive_fidelity`.
        ax (matplotlib.axes.Axes, optional): Axes to draw on; None creates a
                    figure. Default: None
        n_bins (int, optional): Bins of relative position for the mean line.
                    Default: 10
        show_points (bool, optional): Draw every (example, feature) gap.
                    Default: True
        title (str, optional): Title. Default: None

    Returns:
        matplotlib.figure.Figure

    Examples::

        >>> plot_fidelity_gap(progressive_fidelity(model, ids, feature_mask=words, baselines=3))
    """
    if not isinstance(results, Mapping):
        results = {"": results}
    if not results:
        raise ValueError("results must hold at least one FidelityResult.")
    ax = _axes(ax, (5.5, 4.0))
    for name, result in results.items():
        centers, mean, _count = result.gap_by_relative_position(n_bins)
        label = f"{name}: " if name else ""
        line, = ax.plot(centers, mean, marker="o", label=f"{label}mean |gap| per bin")
        if show_points:
            ax.scatter(
                np.concatenate(result.relative_positions), np.abs(np.concatenate(result.gaps)),
                s=8, alpha=0.3, color=line.get_color(),
            )
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("relative position of the feature, k / n")
    ax.set_ylabel("|p_k - f(x'_k)|")
    ax.set_title(title if title is not None else "Fidelity of intermediate predictions")
    ax.legend(fontsize="small")
    return ax.figure
