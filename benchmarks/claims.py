r"""
The paper's claims of Tables 2 and 3 against Benchmark 1's per-review results
(benchmarks/faithfulness.py): for each claim, study (AS, IAS) and (model, task,
level, masking game), the best rival by mean AUC, our method's relative change of
AUC against it (the paper's measure) with a paired 95 % confidence interval over
the reviews, and a verdict read from that interval.

The paper (Kariyappa et al., 2024, section 4.2): SP-PI gives the best attributions
among methods costing at most one pass "for most datasets"; MP-PI the best among
all, "up to a 10.3 % improvement in AUC" in the activation study (AS, higher is
better) and "up to 57.5 % reduction in AUC" in the inverse activation study (IAS,
lower is better). The relative change is ``(ours - rival) / rival`` of the mean
AUCs, so the claimed side is > 0 for AS and < 0 for IAS, as the paper writes them.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np

from captum_pi.metrics import mean_confidence_interval
from captum_pi.registry import METHODS

#: The paper's claims: (our method, the methods it is said to beat, a short name,
#: what the paper reports); the last one is the head-to-head with Kernel SHAP at the
#: same 2n budget.
CLAIMS: Tuple[Tuple[str, Tuple[str, ...], str, str], ...] = (
    ("sp-pi", ("a-last", "gae", "input-x-gradient", "lrp"), "SP-PI vs cost <= 1",
     "best at cost <= 1 (most datasets)"),
    ("mp-pi", ("kernel-shap", "integrated-gradients", "lime", "feature-ablation", "shapley-value-sampling"),
     "MP-PI vs cost ~2n", "best at ~2n passes: up to +10.3 % AS, -57.5 % IAS"),
    ("mp-pi", ("kernel-shap",), "MP-PI vs Kernel SHAP", "beats Kernel SHAP at the same 2n budget"),
)

#: Per study: the key of the per-review results, and whether a lower AUC is better.
STUDIES = (("AS", "as_auc", False), ("IAS", "ias_auc", True))

#: The largest relative changes the paper reports for MP-PI (section 4.2).
PAPER_EXTREMES = {"AS": 0.103, "IAS": -0.575}

VERDICTS = ("holds", "not significant", "reversed")


def verdict(low: float, high: float, lower_is_better: bool = False) -> str:
    r"""
    The verdict on a claim "ours is better" from a confidence interval of the paired
    difference ``ours - rival`` (or of the relative change, which has its sign).

    Args:
        low (float): Lower end of the interval.
        high (float): Upper end of the interval.
        lower_is_better (bool, optional): True for the inverse activation study,
                    where the claimed side is below 0. Default: False

    Returns:
        ``"holds"`` (the interval lies entirely on the claimed side of 0),
        ``"reversed"`` (entirely on the other side) or ``"not significant"`` (it
        contains 0, or is undefined: fewer than two reviews).

    Examples::

        >>> verdict(0.01, 0.05)
        'holds'
        >>> verdict(0.01, 0.05, lower_is_better=True)
        'reversed'
    """
    if np.isnan(low) or np.isnan(high):
        return "not significant"
    if lower_is_better:
        low, high = -high, -low
    if low > 0:
        return "holds"
    if high < 0:
        return "reversed"
    return "not significant"


def claim_rows(results: Dict[str, List[dict]]) -> List[dict]:
    r"""
    For each claim (of those whose methods were run) and study, the best rival by
    mean AUC and our method's paired comparison with it.

    Args:
        results (dict): Method name -> per-review results (``as_auc``, ``ias_auc``),
                    the same reviews in the same order for every method.

    Returns:
        list of dict: ``claim`` (short name), ``paper`` (what the paper reports),
        ``method``, ``study``, ``best_rival``, ``ours`` and ``rival``
        (mean AUCs), ``relative_change`` = ``(ours - rival) / rival`` and its 95 %
        CI half-width ``relative_ci`` (the paired CI of the difference over the
        rival's mean, taken as fixed), ``difference`` (mean per-review ``ours -
        rival``) with ``difference_ci``, ``n`` (reviews) and ``verdict``.
    """
    rows = []
    for ours, rivals, claim, paper in CLAIMS:
        rivals = [name for name in rivals if name in results]
        if ours not in results or not rivals:
            continue
        for study, key, lower_is_better in STUDIES:
            row = _claim_row(results, ours, rivals, study, key, lower_is_better)
            rows.append({"claim": claim, "paper": paper, **row})
    return rows


def _claim_row(results: Dict[str, List[dict]], ours: str, rivals: Sequence[str], study: str, key: str,
               lower_is_better: bool) -> dict:
    better = -1.0 if lower_is_better else 1.0
    means = {name: float(np.mean([example[key] for example in results[name]])) for name in rivals}
    best = max(rivals, key=lambda name: better * means[name])
    ours_values = np.array([example[key] for example in results[ours]])
    rival_values = np.array([example[key] for example in results[best]])
    if ours_values.shape != rival_values.shape:
        raise ValueError(f"{ours} and {best} were evaluated on different reviews "
                         f"({ours_values.size} against {rival_values.size}); a paired CI needs the same ones.")
    difference = mean_confidence_interval(ours_values - rival_values)
    scale = abs(means[best]) if means[best] != 0 else float("nan")
    return {
        "method": METHODS[ours].title, "study": study, "best_rival": METHODS[best].title,
        "ours": float(ours_values.mean()), "rival": means[best],
        "relative_change": difference.mean / scale, "relative_ci": difference.half_width / scale,
        "difference": difference.mean, "difference_ci": difference.half_width,
        "n": difference.n_examples,
        "verdict": verdict(difference.low, difference.high, lower_is_better),
    }


def write_summary(claims: Dict[str, List[dict]], header: str, path: str) -> str:
    r"""
    ``summary.md``: every claim beside its verdict, one row per claim, study and
    (model, task, level, game).

    Args:
        claims (dict): ``"<model>-<task>-<level>-<game>"`` -> :func:`claim_rows`.
        header (str): Markdown put above the table (title, command, machine).
        path (str): The file written.

    Returns:
        str: The Markdown written.
    """
    lines = [header, "",
             "Relative change: (ours - best rival) / best rival of the mean AUC over the same n reviews, "
             "the paper's measure; the claimed side is > 0 for AS (higher is better) and < 0 for IAS "
             "(lower is better). 95 % CI: the paired Student-t interval of the per-review difference, "
             "over the rival's mean. Verdict: *holds* when the CI lies entirely on the claimed side, "
             "*reversed* when entirely on the other, *not significant* when it contains 0.", "",
             "| model-task-level-game | n | claim (paper) | study | best rival | ours | rival | "
             "relative change (95 % CI) | paired difference | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, rows in claims.items():
        for row in rows:
            claimed = "< 0" if row["study"] == "IAS" else "> 0"
            lines.append(
                f"| {key} | {row['n']} | {row['claim']}: {row['paper']} | {row['study']} (claimed {claimed}) | "
                f"{row['best_rival']} | {row['ours']:.3f} | {row['rival']:.3f} | "
                f"{100 * row['relative_change']:+.1f} % ± {100 * row['relative_ci']:.1f} % | "
                f"{row['difference']:+.3f} ± {row['difference_ci']:.3f} | **{row['verdict']}** |")
    counts = {name: sum(row["verdict"] == name for rows in claims.values() for row in rows) for name in VERDICTS}
    lines += ["", "Verdicts: " + ", ".join(f"{count} {name}" for name, count in counts.items()) + "."]
    text = "\n".join(lines)
    with open(path, "w") as handle:
        handle.write(text + "\n")
    return text


def plot_forest(claims: Dict[str, List[dict]], path: str) -> None:
    r"""
    ``summary.png``: a forest plot of the relative changes with their paired 95 %
    CIs, one row per claim and (model, task, level, game), AS on the left and IAS on
    the right; the claimed side is shaded, the paper's largest reported change is a
    dashed line, and each point is coloured by its verdict.

    Args:
        claims (dict): As in :func:`write_summary`.
        path (str): The image written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"holds": "tab:green", "not significant": "0.45", "reversed": "tab:red"}
    labels = [f"{row['claim']} | {key} (n={row['n']})"
              for key, rows in claims.items() for row in rows if row["study"] == "AS"]
    figure, axes = plt.subplots(1, 2, figsize=(13, 2.0 + 0.32 * max(len(labels), 1)), sharey=True)
    for ax, (study, _, lower_is_better) in zip(axes, STUDIES):
        rows = [row for key_rows in claims.values() for row in key_rows if row["study"] == study]
        positions = np.arange(len(rows))
        for position, row in zip(positions, rows):
            ax.errorbar(100 * row["relative_change"], position, xerr=100 * np.nan_to_num(row["relative_ci"]),
                        fmt="o", color=colours[row["verdict"]], capsize=3, markersize=4)
            ax.annotate(row["best_rival"], (100 * row["relative_change"], position), xytext=(0, 4),
                        textcoords="offset points", fontsize=6, ha="center", color="0.3")
        paper = 100 * PAPER_EXTREMES[study]
        low, high = ax.get_xlim() if rows else (paper, -paper)
        low, high = min(low, paper, 0.0), max(high, paper, 0.0)
        low, high = low - 0.08 * (high - low), high + 0.08 * (high - low)  # room for the lines and labels
        ax.axvspan(low if lower_is_better else 0.0, 0.0 if lower_is_better else high, color="tab:green", alpha=0.07)
        ax.set_xlim(low, high)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.axvline(paper, color="tab:blue", linestyle="--", linewidth=0.8, label=f"paper, MP-PI: up to {paper:+.1f} %")
        ax.set_xlabel(f"relative change of {study} AUC vs best rival (%)")
        ax.set_title(f"{study} ({'lower' if lower_is_better else 'higher'} is better; claimed side shaded)",
                     fontsize=10)
        ax.legend(fontsize=7, loc="best")
    axes[0].set_yticks(np.arange(len(labels)), labels, fontsize=7)
    axes[0].set_ylim(max(len(labels), 1) - 0.5, -0.5)  # first claim on top; one empty row when none
    figure.suptitle("Paper's claims: relative change of AUC against the best rival, paired 95 % CI; "
                    "green: holds, grey: not significant, red: reversed", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

