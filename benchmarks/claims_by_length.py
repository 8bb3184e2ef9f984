r"""
The paper's claims (Benchmark 1) again, with the reviews of one table split by their
number of features: does a verdict depend on how long the reviews are? Reads the
tables that benchmarks/faithfulness.py wrote (runs no model) and writes
``results/claims_by_length.md``.

    python benchmarks/claims_by_length.py --tables smollm2-lora-binary-word-delete --edges 15 30

``--edges 15 30`` makes the groups 2..15, 16..30 and 31..(the longest review).
"""
import argparse
import json
import os
import sys
from typing import Dict, List, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from claims import comparison_cells, claim_rows  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def check_edges(edges: Sequence[int]) -> None:
    r"""Raises ValueError unless ``edges`` increase strictly."""
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"edges must increase strictly, got {list(edges)}")


def length_groups(n_features: Sequence[int], edges: Sequence[int]) -> List[Tuple[str, List[int]]]:
    r"""
    The reviews' positions grouped by feature count: ``(label, positions)`` for
    ``n <= edges[0]``, ``edges[0] < n <= edges[1]``, ..., ``n > edges[-1]``, leaving
    out empty groups.

    Args:
        n_features (sequence of int): Each review's number of features, in table order.
        edges (sequence of int): Increasing upper bounds of all groups but the last.

    Returns:
        list of (str, list of int): A label such as ``"16..30"`` and the positions.
    """
    check_edges(edges)
    bounds = [min(n_features) - 1, *[edge for edge in edges if min(n_features) <= edge < max(n_features)],
              max(n_features)]
    groups = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        positions = [i for i, n in enumerate(n_features) if low < n <= high]
        if positions:
            groups.append((f"{low + 1}..{high}", positions))
    return groups


def claim_rows_by_length(table: dict, edges: Sequence[int]) -> List[Tuple[str, List[dict]]]:
    r"""
    :func:`claims.claim_rows` on each length group of one faithfulness table, the
    best rival chosen within the group.

    Args:
        table (dict): A ``faithfulness/<key>.json``: ``n_features`` and ``results``
                    (method -> per-review results, in the order of ``n_features``).
        edges (sequence of int): See :func:`length_groups`.

    Returns:
        list of (str, list of dict): The group's label and its claim rows.
    """
    grouped = []
    for label, positions in length_groups(table["n_features"], edges):
        subset = {name: [examples[i] for i in positions] for name, examples in table["results"].items()}
        grouped.append((label, claim_rows(subset)))
    return grouped


def render(tables: Dict[str, dict], edges: Sequence[int], command: str) -> str:
    r"""The Markdown of ``claims_by_length.md``: one row per table, group, claim and study."""
    lines = ["# The paper's claims by review length", "",
             f"Command: `{command}` (runs no model), from the tables of:", "",
             *[f"- `{table['command']}`" for table in tables.values()], "",
             "As in `summary.md` (relative change of the mean AUC against the best rival within the group, "
             "paired 95 % CI), with each table's reviews split by their number of features.", "",
             "| table | features | n | claim | study | best rival | ours | rival | relative change (95 % CI) | "
             "paired difference | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, table in tables.items():
        for label, rows in claim_rows_by_length(table, edges):
            for row in rows:
                lines.append(f"| {key} | {label} | {row['n']} | {row['claim']} | {row['study']} | "
                             + comparison_cells(row))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", required=True,
                        help="faithfulness tables by key, e.g. smollm2-lora-binary-word-delete")
    parser.add_argument("--edges", nargs="+", type=int, required=True,
                        help="upper feature counts of every group but the last, increasing")
    parser.add_argument("--results", default=RESULTS, help="the benchmarks' results folder (default: %(default)s)")
    args = parser.parse_args()
    try:
        check_edges(args.edges)
    except ValueError as error:
        parser.error(f"--{error}")
    paths = {key: os.path.join(args.results, "faithfulness", f"{key}.json") for key in args.tables}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        parser.error(f"no such table: {', '.join(missing)}; run benchmarks/faithfulness.py first.")
    tables = {}
    for key, path in paths.items():
        with open(path) as handle:
            tables[key] = json.load(handle)
    command = "python benchmarks/claims_by_length.py --tables " + " ".join(args.tables) + " --edges " + " ".join(
        map(str, args.edges))
    text = render(tables, args.edges, command)
    with open(os.path.join(args.results, "claims_by_length.md"), "w") as handle:
        handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
