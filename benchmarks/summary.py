r"""
The claims at a glance: the paper's (SP-PI best among methods costing at most one
pass; MP-PI best at about 2n passes) against Benchmark 1, and ours (MP-PI the best
Shapley estimator per model call; PI exact under deletion) against Benchmark 2 and
the fidelity study, each with its paired 95 % CI (or bound) and a verdict
(benchmarks/claims.py). It runs no model: it reads what the benchmarks wrote,

    benchmarks/results/faithfulness/<model>-<task>-<level>-<game>.json   (faithfulness.py)
    benchmarks/results/estimators/<game folder>.json                     (estimators.py)
    benchmarks/results/fidelity/<model>-<task>-<level>-<game>.json       (fidelity.py)

and writes benchmarks/results/summary.md (with the command behind every input) and
summary.png.

    python benchmarks/summary.py
"""
import argparse
import glob
import json
import os
import sys
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claims import claim_rows, estimator_claim_rows, exactness_rows, plot_claims, write_summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def read_results(folder: str) -> Dict[str, dict]:
    r"""Every ``<key>.json`` directly under ``folder``, by key (sorted)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as handle:
            found[os.path.basename(path)[: -len(".json")]] = json.load(handle)
    return found


def gather(results_dir: str = RESULTS) -> Tuple[Dict[str, List[dict]], Dict[str, List[dict]], List[dict], List[str]]:
    r"""
    The claims against every result written under ``results_dir``.

    Returns:
        ``(paper, estimators, exactness, commands)``: the arguments of
        :func:`claims.write_summary`, and the distinct commands that wrote the inputs.
    """
    faithfulness = read_results(os.path.join(results_dir, "faithfulness"))
    estimators = read_results(os.path.join(results_dir, "estimators"))
    fidelity = {key: result for key, result in read_results(os.path.join(results_dir, "fidelity")).items()
                if "max_abs_gap" in result}
    paper = {key: claim_rows(result["results"]) for key, result in faithfulness.items()}
    ours = {key: estimator_claim_rows(result["records"]) for key, result in estimators.items()}
    commands = [result["command"] for group in (faithfulness, estimators, fidelity) for result in group.values()]
    return paper, ours, exactness_rows(fidelity), list(dict.fromkeys(commands))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=RESULTS, help="the benchmarks' results folder (default: %(default)s)")
    args = parser.parse_args()
    paper, ours, exactness, commands = gather(args.results)
    if not (paper or ours or exactness):
        parser.error(f"no benchmark results under {args.results}: run faithfulness.py, estimators.py or "
                     "fidelity.py first.")
    header = "\n".join([
        "# The claims against the results", "",
        "Command: `python benchmarks/summary.py` (runs no model), from the results of:", "",
        *[f"- `{command}`" for command in commands], "",
        "The figure: `summary.png`. Each combination's table states its own sample, game and machine.",
    ])
    print(write_summary(paper, ours, exactness, header, os.path.join(args.results, "summary.md")))
    plot_claims(paper, ours, exactness, os.path.join(args.results, "summary.png"))


if __name__ == "__main__":
    main()
