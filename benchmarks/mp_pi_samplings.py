r"""
How far Benchmark 1's two MP-PI rows ("mp-pi": the paper's P', "mp-pi-shapley":
Shapley sampling) are apart, read from the per-review cache of faithfulness.py (runs
no model). At the 2n budget the border passes fill the first 2n - 2 passes, so the
two samplings differ in at most one drawn pass.

    python benchmarks/mp_pi_samplings.py
"""
import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache", "faithfulness")


def compare(folder: str) -> "tuple[int, float, int]":
    r"""``(reviews with both rows, largest |phi difference|, reviews ranked alike)``."""
    reviews, largest, same_order = 0, 0.0, 0
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as handle:
            review = json.load(handle)
        if "mp-pi" not in review or "mp-pi-shapley" not in review:
            continue
        paper, shapley = review["mp-pi"], review["mp-pi-shapley"]
        reviews += 1
        largest = max(largest, max(abs(a - b) for a, b in zip(paper["phi"], shapley["phi"])))
        same_order += paper["order"] == shapley["order"]
    return reviews, largest, same_order


def main() -> None:
    print("| combination | reviews | largest difference | same ranking |")
    print("|---|---|---|---|")
    for folder in sorted(glob.glob(os.path.join(CACHE, "*"))):
        reviews, largest, same_order = compare(folder)
        if reviews:
            print(f"| {os.path.basename(folder)} | {reviews} | {largest:.2g} | {same_order} |")


if __name__ == "__main__":
    main()
