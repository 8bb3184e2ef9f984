r"""
The claims, each against the results that test it, with a verdict.

**The paper's** (Tables 2 and 3), against Benchmark 1's per-review results
(benchmarks/faithfulness.py): for each claim, study (AS, IAS) and (model, task,
level, masking game), the best rival by mean AUC, our method's relative change of
AUC against it (the paper's measure) with a paired 95 % confidence interval over
the reviews, and a verdict read from that interval (:func:`claim_rows`).

The paper (Kariyappa et al., 2024, section 4.2): SP-PI gives the best attributions
among methods costing at most one pass "for most datasets"; MP-PI the best among
all, "up to a 10.3 % improvement in AUC" in the activation study (AS, higher is
better) and "up to 57.5 % reduction in AUC" in the inverse activation study (IAS,
lower is better). The relative change is ``(ours - rival) / rival`` of the mean
AUCs, so the claimed side is > 0 for AS and < 0 for IAS, as the paper writes them.

**Ours**: MP-PI is the best Shapley estimator per model call, against Benchmark 2's
records (benchmarks/estimators.py; :func:`estimator_claim_rows`), and PI is exact
under deletion, against the fidelity study (benchmarks/fidelity.py;
:func:`exactness_rows`).
"""
from typing import Dict, List, Optional, Sequence, Tuple

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

#: Our claim of Benchmark 2, and the estimators it is not compared with (MP-PI's own variants).
ESTIMATOR_CLAIM = "MP-PI vs every estimator at the same budget"
OURS_PREFIX = "MP-PI"

#: The largest |p_k - f(x'_k)| that float32 rounding explains: above it, PI is not exact.
EXACTNESS_TOLERANCE = 1e-5


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
    return {
        "method": METHODS[ours].title, "study": study, "best_rival": METHODS[best].title,
        "ours": float(ours_values.mean()), "rival": means[best],
        **_paired_comparison(ours_values - rival_values, means[best], lower_is_better),
    }


def _paired_comparison(differences: Sequence[float], rival_mean: float, lower_is_better: bool) -> dict:
    r"""The paired 95 % CI of per-review differences ``ours - rival``, as a difference
    and relative to the rival's mean (taken as fixed), with its verdict."""
    difference = mean_confidence_interval(differences)
    scale = abs(rival_mean) if rival_mean != 0 else float("nan")
    return {
        "relative_change": difference.mean / scale, "relative_ci": difference.half_width / scale,
        "difference": difference.mean, "difference_ci": difference.half_width, "n": difference.n_examples,
        "verdict": verdict(difference.low, difference.high, lower_is_better),
    }


def estimator_claim_rows(records: Sequence[dict], ours: str = "MP-PI") -> List[dict]:
    r"""
    Our claim that MP-PI is the best Shapley estimator per model call, at each budget
    of Benchmark 2: MP-PI's relative L2 error to the exact Shapley values against the
    best rival's (the estimator, not a variant of MP-PI, with the lowest mean error at
    that budget), paired over the reviews (each review's error averaged over seeds).

    Args:
        records (list of dict): benchmarks/estimators.py's records: ``method``,
                    ``multiple`` (the budget in rows per feature), ``review`` (or
                    ``game``), ``seed`` and ``relative_l2``.
        ours (str, optional): The estimator the claim is about. Default: "MP-PI"

    Returns:
        list of dict: One per budget, as :func:`claim_rows` (``study`` is the budget,
        e.g. ``"2n"``; ``ours`` and ``rival`` are mean errors, lower is better).
    """
    errors: Dict[Tuple[str, int], Dict[int, List[float]]] = {}
    for record in records:
        review = record.get("review", record["game"])
        errors.setdefault((record["method"], record["multiple"]), {}).setdefault(review, []).append(
            record["relative_l2"])
    rivals = sorted({method for method, _ in errors if not method.startswith(OURS_PREFIX)})
    rows = []
    for multiple in sorted({multiple for _, multiple in errors}):
        if (ours, multiple) not in errors:
            continue
        per_review = {name: {review: float(np.mean(values)) for review, values in errors[(name, multiple)].items()}
                      for name in [ours, *rivals] if (name, multiple) in errors}
        means = {name: float(np.mean(list(values.values()))) for name, values in per_review.items()}
        best = min((name for name in per_review if name != ours), key=means.get, default=None)
        if best is None:
            continue
        reviews = sorted(set(per_review[ours]) & set(per_review[best]))
        differences = [per_review[ours][review] - per_review[best][review] for review in reviews]
        rows.append({
            "claim": ESTIMATOR_CLAIM, "method": ours, "study": f"{multiple}n", "best_rival": best,
            "ours": means[ours], "rival": means[best], **_paired_comparison(differences, means[best], True),
        })
    return rows


def exactness_rows(fidelity: Dict[str, dict], tolerance: float = EXACTNESS_TOLERANCE) -> List[dict]:
    r"""
    Our claim that PI is exact under deletion: for each fidelity result under the
    deletion game, the largest gap ``|p_k - f(x'_k)|`` over its reviews and positions
    against ``tolerance``, beside the mean gap under replacement of the same model,
    task and level where it was measured.

    Args:
        fidelity (dict): ``"<model>-<task>-<level>-<game>"`` -> benchmarks/fidelity.py's
                    result: ``masking``, ``mean_abs_gap`` and ``max_abs_gap`` (one per review).
        tolerance (float, optional): The largest gap float rounding explains.
                    Default: 1e-5

    Returns:
        list of dict: ``key``, ``n`` (reviews), ``max_gap``, ``mean_gap``,
        ``replace_mean_gap`` (NaN if not measured) and ``verdict`` (``"holds"`` when
        ``max_gap <= tolerance``, else ``"fails"``).
    """
    rows = []
    for key, result in fidelity.items():
        if result["masking"] != "delete":
            continue
        contrast = fidelity.get(key[: -len("delete")] + "replace")
        max_gap = float(np.max(result["max_abs_gap"]))
        rows.append({
            "key": key, "n": len(result["max_abs_gap"]), "max_gap": max_gap,
            "mean_gap": float(np.mean(result["mean_abs_gap"])),
            "replace_mean_gap": float(np.mean(contrast["mean_abs_gap"])) if contrast else float("nan"),
            "verdict": "holds" if max_gap <= tolerance else "fails",
        })
    return rows


def write_summary(paper: Dict[str, List[dict]], estimators: Dict[str, List[dict]], exactness: List[dict],
                  header: str, path: str) -> str:
    r"""
    ``summary.md``: every claim beside its verdict. One table per kind of claim: the
    paper's (one row per claim, study and (model, task, level, game)), ours on the
    estimators (one row per game and budget) and ours on exactness (one row per
    deletion fidelity result).

    Args:
        paper (dict): ``"<model>-<task>-<level>-<game>"`` -> :func:`claim_rows`.
        estimators (dict): Benchmark 2's game folder -> :func:`estimator_claim_rows`.
        exactness (list of dict): :func:`exactness_rows`.
        header (str): Markdown put above the tables (title, commands, machine).
        path (str): The file written.

    Returns:
        str: The Markdown written.
    """
    lines = [header, "", "## The paper's claims (Benchmark 1)", "",
             "Relative change: (ours - best rival) / best rival of the mean AUC over the same n reviews, "
             "the paper's measure; the claimed side is > 0 for AS (higher is better) and < 0 for IAS "
             "(lower is better). 95 % CI: the paired Student-t interval of the per-review difference, "
             "over the rival's mean. Verdict: *holds* when the CI lies entirely on the claimed side, "
             "*reversed* when entirely on the other, *not significant* when it contains 0.", "",
             "| model-task-level-game | n | claim (paper) | study | best rival | ours | rival | "
             "relative change (95 % CI) | paired difference | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, rows in paper.items():
        for row in rows:
            claimed = "< 0" if row["study"] == "IAS" else "> 0"
            lines.append(f"| {key} | {row['n']} | {row['claim']}: {row['paper']} | {row['study']} (claimed {claimed}) | "
                         + comparison_cells(row))
    lines += [_verdict_counts(paper), "", "## Ours: MP-PI is the best Shapley estimator per model call (Benchmark 2)", "",
              "At each budget (model rows per feature), MP-PI's relative L2 error to the exact Shapley values "
              "against the estimator with the lowest mean error at that budget (not a variant of MP-PI); "
              "lower is better, so the claimed side is < 0. Paired over the reviews, each review's error "
              "averaged over the seeds.", "",
              "| game | n | budget | best rival | MP-PI error | rival error | relative change (95 % CI) | "
              "paired difference | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key, rows in estimators.items():
        for row in rows:
            lines.append(f"| {key} | {row['n']} | {row['study']} | " + comparison_cells(row))
    lines += [_verdict_counts(estimators), "", "## Ours: PI is exact under deletion (fidelity study)", "",
              f"The largest gap |p_k - f(x'_k)| between an intermediate prediction and the model's prediction "
              f"on the input with every feature after k deleted, over all reviews and positions; *holds* when "
              f"it is at most {EXACTNESS_TOLERANCE:g} (float32 rounding), *fails* otherwise. Beside it, the "
              "mean gap under the paper's \"...\" replacement, where PI is an approximation.", "",
              "| model-task-level | n | max gap (delete) | mean gap (delete) | mean gap (replace) | verdict |",
              "|---|---|---|---|---|---|"]
    for row in exactness:
        lines.append(f"| {row['key'][: -len('-delete')]} | {row['n']} | {row['max_gap']:.2g} | "
                     f"{row['mean_gap']:.2g} | {_gap(row['replace_mean_gap'])} | **{row['verdict']}** |")
    text = "\n".join(lines)
    with open(path, "w") as handle:
        handle.write(text + "\n")
    return text


def _gap(value: float) -> str:
    return "not measured" if np.isnan(value) else f"{value:.3f}"


def comparison_cells(row: dict) -> str:
    r"""The cells every claim table ends with: rival, both means, the relative change
    and the paired difference with their CIs, and the verdict."""
    return (f"{row['best_rival']} | {row['ours']:.3f} | {row['rival']:.3f} | "
            f"{100 * row['relative_change']:+.1f} % ± {100 * row['relative_ci']:.1f} % | "
            f"{row['difference']:+.3f} ± {row['difference_ci']:.3f} | **{row['verdict']}** |")


def _verdict_counts(claims: Dict[str, List[dict]]) -> str:
    counts = {name: sum(row["verdict"] == name for rows in claims.values() for row in rows) for name in VERDICTS}
    return "\nVerdicts: " + ", ".join(f"{count} {name}" for name, count in counts.items()) + "."


#: The colour of each verdict in the figure.
COLOURS = {"holds": "tab:green", "not significant": "0.45", "reversed": "tab:red", "fails": "tab:red"}


def plot_claims(paper: Dict[str, List[dict]], estimators: Dict[str, List[dict]], exactness: List[dict],
                path: str) -> None:
    r"""
    ``summary.png``, every claim at a glance. Top: forest plots of the paper's claims,
    the relative change of AUC with its paired 95 % CI, AS on the left and IAS on the
    right, the paper's largest reported change as a dashed line. Bottom left: MP-PI's
    relative change of error against the best rival at each budget; bottom right: the
    largest PI gap under deletion (and the mean gap under replacement) on a log scale.
    The claimed side is shaded; points are coloured by verdict.

    Args:
        paper, estimators, exactness: As in :func:`write_summary`.
        path (str): The image written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paper_rows = sum(1 for rows in paper.values() for row in rows if row["study"] == "AS")
    estimator_rows = sum(len(rows) for rows in estimators.values())
    height = 2.5 + 0.3 * max(paper_rows, 1) + 0.3 * max(estimator_rows, len(exactness), 1)
    figure = plt.figure(figsize=(14, height))
    grid = figure.add_gridspec(2, 2, height_ratios=[max(paper_rows, 1) + 2, max(estimator_rows, len(exactness), 1) + 2])
    for column, (study, _, lower_is_better) in enumerate(STUDIES):
        ax = figure.add_subplot(grid[0, column])
        rows = [(f"{row['claim']} | {key} (n={row['n']})", row)
                for key, key_rows in paper.items() for row in key_rows if row["study"] == study]
        paper_change = 100 * PAPER_EXTREMES[study]
        _forest(ax, rows, lower_is_better, labels=column == 0, reference=paper_change)
        ax.axvline(paper_change, color="tab:blue", linestyle="--", linewidth=0.8,
                   label=f"paper, MP-PI: up to {paper_change:+.1f} %")
        ax.legend(fontsize=7, loc="best")
        ax.set_xlabel(f"relative change of {study} AUC vs best rival (%)")
        ax.set_title(f"Paper's claims, {study} ({'lower' if lower_is_better else 'higher'} is better)", fontsize=10)
    ax = figure.add_subplot(grid[1, 0])
    _forest(ax, [(f"{key} {row['study']} (n={row['n']})", row) for key, rows in estimators.items() for row in rows],
            lower_is_better=True, labels=True)
    ax.set_xscale("symlog", linthresh=100)  # linear within ±100 %, where deletion's changes lie
    ax.set_xlabel("relative change of error vs best rival (%; log scale beyond ±100 %)")
    ax.set_title("Ours: MP-PI's Shapley error vs the best estimator at each budget (lower is better)", fontsize=10)
    ax = figure.add_subplot(grid[1, 1])
    _exactness_panel(ax, exactness)
    figure.suptitle("Claims against results: paired 95 % CI; green: holds, grey: not significant, red: reversed "
                    "or fails", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))  # keep 0.4 inch above the panels for the suptitle
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _forest(ax, rows: Sequence[Tuple[str, dict]], lower_is_better: bool, labels: bool,
            reference: float = 0.0) -> None:
    r"""One forest panel: each row's relative change with its CI, the claimed side of 0
    shaded; the x range also holds ``reference`` (the paper's reported change)."""
    for position, (_, row) in enumerate(rows):
        ax.errorbar(100 * row["relative_change"], position, xerr=100 * np.nan_to_num(row["relative_ci"]),
                    fmt="o", color=COLOURS[row["verdict"]], capsize=3, markersize=4)
        ax.annotate(row["best_rival"], (100 * row["relative_change"], position), xytext=(0, 4),
                    textcoords="offset points", fontsize=6, ha="center", color="0.3")
    low, high = ax.get_xlim() if rows else (-10.0, 10.0)
    low, high = min(low, 0.0, reference), max(high, 0.0, reference)
    low, high = low - 0.08 * (high - low), high + 0.08 * (high - low)  # room for the labels
    ax.axvspan(low if lower_is_better else 0.0, 0.0 if lower_is_better else high, color="tab:green", alpha=0.07)
    ax.set_xlim(low, high)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(np.arange(len(rows)), [label for label, _ in rows] if labels else [], fontsize=7)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first row on top; one empty row when none


def _once(label: str, used: set) -> Optional[str]:
    r"""``label`` the first time, then None (one legend entry per kind of point)."""
    if label in used:
        return None
    used.add(label)
    return label


def _exactness_panel(ax, rows: Sequence[dict]) -> None:
    positions = np.arange(len(rows))
    labelled = set()
    for position, row in zip(positions, rows):
        ax.scatter(max(row["max_gap"], 1e-12), position, color=COLOURS[row["verdict"]], zorder=3,
                   label=_once("max gap, delete", labelled))
        if not np.isnan(row["replace_mean_gap"]):
            ax.scatter(row["replace_mean_gap"], position, marker="x", color="0.3",
                       label=_once("mean gap, replace (\"...\")", labelled))
    ax.set_xscale("log")
    ax.axvline(EXACTNESS_TOLERANCE, color="black", linestyle=":", linewidth=0.8,
               label=f"float rounding ({EXACTNESS_TOLERANCE:g})")
    ax.axvspan(1e-12, EXACTNESS_TOLERANCE, color="tab:green", alpha=0.07)
    ax.set_yticks(positions, [f"{row['key'][: -len('-delete')]} (n={row['n']})" for row in rows], fontsize=7)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlabel("|p_k - f(x'_k)|")
    ax.set_title("Ours: PI is exact under deletion", fontsize=10)
    if rows:
        ax.legend(fontsize=7, loc="best")
