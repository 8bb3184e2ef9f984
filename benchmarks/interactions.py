r"""
Pairwise interactions at equal model cost: Faith-Shap (FSII, order 2) from MP-PI's
passes (captum_pi.interactions.progressive_interactions) against shapiq's SPEX,
ProxySPEX and FSII regression (Kernel-SHAP-style sampling), compared with the exact
FSII by enumeration.

Two parts:

- ``--part synthetic``: the deletion games of a causal model whose prediction after
  reading the features of ``S`` is ``g(S) = sum_i w_i x_i + planted pairs + one
  planted triple`` (n = 8, 10 and 16, many seeds; exact FSII by shapiq's
  ExactComputer, which for n = 16 is checked against the closed form from the
  planted Moebius coefficients).
- ``--part smollm2``: test drug reviews of 5 to 8 sentences on the shipped
  classifier (captum_pi.models.load_default_classifier, SmolLM2-135M + LoRA),
  probability of the true class, deletion game. Every coalition's value is computed
  once through captum_pi.interactions.TextGame (2^(n-1) rows per review, cached
  under benchmarks/cache/interactions/, so a rerun resumes); on the smallest review
  PI, SPEX, ProxySPEX and shapiq's ExactComputer also run on the live model and are
  checked against the table.

Every estimator sees the game as a captum_pi.interactions.TableGame: the exact
values of a causal model under deletion, with the model rows it would have cost
counted (anchor pass included, values cached, a coalition that is the prefix of
another requested one read off the same pass). At a budget of B rows PI runs
exactly B passes; each shapiq approximator gets the largest budget of its own (in
coalitions) whose rows fit in B, found on a ladder of budgets; "--" where even its
smallest budget does not fit (SPEX needs about 264 coalitions at these n) or it
fails.

Metrics per (method, B), the median over games and seeds (precisions: the mean): relative L2 error of the
FSII values of orders 1 and 2 to the exact ones; precision of the top-k pairs by
|FSII| (real reviews: against the exact top 3; synthetic: against the planted pairs);
R^2 of the order-2 surrogate ``g(S) = FSII() + sum_{T in S} FSII(T)`` on 1000
uniformly random coalitions (SPEX's faithfulness); for SPEX and ProxySPEX also of
their own sparse all-order surrogate; time of the estimator itself (model excluded)
as a ratio to PI's.

    python benchmarks/interactions.py --part synthetic --seeds 10
    python benchmarks/interactions.py --part smollm2 --limit 5
"""
import argparse
import json
import os
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, sample_reviews  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache", "interactions")
OUT = os.path.join(HERE, "results", "interactions")
R2_SAMPLES = 1000
SPEX_LADDER = (264, 400, 528, 800, 1056, 1600, 2112)
LADDER = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


# --- games ----------------------------------------------------------------------------

def all_coalitions(n: int) -> np.ndarray:
    return (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1 == 1


def planted_game(n: int, seed: int) -> Dict:
    r"""Moebius coefficients: main effects N(0, 0.5), two pairs of magnitude U(1, 2) and
    one triple of magnitude 1.5, random signs; the table is ``sum_T m(T) [T in S]``."""
    rng = np.random.default_rng(1000 * n + seed)
    terms = {(i,): float(w) for i, w in enumerate(rng.normal(0.0, 0.5, n))}
    pairs = []
    while len(pairs) < 2:
        pair = tuple(sorted(int(i) for i in rng.choice(n, 2, replace=False)))
        if pair not in pairs:
            pairs.append(pair)
            terms[pair] = float(rng.choice([-1, 1]) * rng.uniform(1.0, 2.0))
    triple = tuple(sorted(int(i) for i in rng.choice(n, 3, replace=False)))
    terms[triple] = float(rng.choice([-1, 1]) * 1.5)
    coalitions = all_coalitions(n)
    table = np.full(2 ** n, 0.2)
    for interaction, value in terms.items():
        table += value * coalitions[:, list(interaction)].all(axis=1)
    return {"key": f"synthetic-n{n}-{seed}", "n": n, "table": table, "planted_pairs": pairs,
            "planted_triple": triple, "moebius": terms}


def exact_fsii(table: np.ndarray, n: int):
    import shapiq

    from captum_pi.interactions import TableGame

    return shapiq.ExactComputer(TableGame(table))("FSII", 2)


def fsii_from_moebius(terms: Dict, n: int, baseline: float, order: int = 2):
    r"""FSII of order ``order`` of a game given by its Moebius coefficients (shapiq's
    MoebiusConverter), the closed form used for n = 16."""
    import shapiq
    from shapiq.game_theory.moebius_converter import MoebiusConverter

    lookup = {(): 0, **{T: i + 1 for i, T in enumerate(terms)}}
    values = np.array([baseline, *terms.values()])
    moebius = shapiq.InteractionValues(values, index="Moebius", max_order=n, min_order=0, n_players=n,
                                       interaction_lookup=lookup, baseline_value=baseline)
    return MoebiusConverter(moebius)("FSII", order)


# --- estimators -----------------------------------------------------------------------

def run_pi(table: np.ndarray, n: int, budget: int, seed: int, **options) -> Tuple:
    from captum_pi.interactions import TableGame, progressive_interactions

    game = TableGame(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = progressive_interactions(game, n_samples=budget, seed=seed, **options)
    if values.max_order > 2:  # its pair terms are not order-2 FSII: only its own surrogate is compared
        return None, values, game.n_rows
    return values, None, game.n_rows


def run_shapiq(cls_name: str, native: bool) -> Callable:
    r"""A shapiq approximator on a TableGame; ``native``: asked for FSII of order n (its
    sparse Moebius transform, all orders) and converted to order 2, in one run."""
    def run(table: np.ndarray, n: int, budget: int, seed: int) -> Tuple:
        import shapiq
        from shapiq.game_theory.moebius_converter import MoebiusConverter

        from captum_pi.interactions import TableGame

        game = TableGame(table)
        order = n if native else 2
        estimator = getattr(shapiq, cls_name)(n=n, index="FSII", max_order=order, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = estimator.approximate(budget, game)
            if not native:
                return values, None, game.n_rows
            moebius = shapiq.InteractionValues(
                values.values, index="Moebius", max_order=n, min_order=0, n_players=n,
                interaction_lookup=values.interaction_lookup, baseline_value=float(values[()]),
            )
            return MoebiusConverter(moebius)("FSII", 2), values, game.n_rows

    return run


METHODS: Dict[str, Tuple[Callable, str]] = {
    "PI (FSII on MP-PI passes)": (run_pi, "exact"),
    "PI, plain least squares (ridge=0)": (lambda t, n, b, s: run_pi(t, n, b, s, ridge=0.0), "exact"),
    "PI, order 3": (lambda t, n, b, s: run_pi(t, n, b, s, max_order=3), "exact"),
    "FSII regression (shapiq)": (run_shapiq("RegressionFSII", native=False), "ladder"),
    "ProxySPEX (shapiq)": (run_shapiq("ProxySPEX", native=True), "ladder"),
    "SPEX (shapiq)": (run_shapiq("SPEX", native=True), "spex"),
}
SYNTHETIC_METHODS = list(METHODS)
REAL_METHODS = [name for name in METHODS if name != "PI, order 3"]


# --- metrics --------------------------------------------------------------------------

def surrogate(values, coalitions: np.ndarray) -> np.ndarray:
    r"""``values[()] + sum of values[T]`` over the nonempty ``T`` inside each coalition."""
    out = np.full(len(coalitions), float(values[()]))
    for interaction in values.interaction_lookup:
        if interaction:
            out += float(values[interaction]) * coalitions[:, list(interaction)].all(axis=1)
    return out


def r_squared(values, table: np.ndarray, coalitions: np.ndarray) -> float:
    codes = coalitions @ (1 << np.arange(coalitions.shape[1]))
    truth = table[codes]
    residual = truth - surrogate(values, coalitions)
    return float(1.0 - np.sum(residual ** 2) / np.sum((truth - truth.mean()) ** 2))


def top_pairs(values, k: int) -> List[Tuple[int, ...]]:
    from captum_pi.interactions import top_interactions

    return [pair for pair, _ in top_interactions(values, k=k, order=2)]


def metrics(estimate, native, exact, game: Dict, coalitions: np.ndarray) -> Dict:
    r"""``estimate``: FSII of order 2 (or None); ``native``: the method's own surrogate
    of higher order (or None)."""
    record: Dict = {}
    if estimate is not None:
        terms = [T for T in exact.interaction_lookup if 1 <= len(T) <= 2]
        truth = np.array([exact[T] for T in terms])
        guess = np.array([float(estimate[T]) for T in terms])
        pairs = np.array([len(T) == 2 for T in terms])
        relevant = [tuple(pair) for pair in game.get("planted_pairs") or top_pairs(exact, 3)]
        record.update(
            error=float(np.linalg.norm(guess - truth) / np.linalg.norm(truth)),
            pair_error=float(np.linalg.norm(guess[pairs] - truth[pairs]) / np.linalg.norm(truth[pairs])),
            precision=len(set(top_pairs(estimate, len(relevant))) & set(relevant)) / len(relevant),
            r2=r_squared(estimate, game["table"], coalitions),
        )
    if native is not None:
        record["r2_native"] = r_squared(native, game["table"], coalitions)
        triple = game.get("planted_triple")
        triples = [(T, abs(float(native[T]))) for T in native.interaction_lookup if len(T) == 3]
        if triple is not None:
            record["triple_found"] = float(bool(triples) and max(triples, key=lambda e: e[1])[0] == tuple(triple))
    return record


# --- one game: every method at every budget -------------------------------------------

class RunCache:
    r"""Results of (game, method, budget parameter, seed), one JSON line each, so an
    interrupted run resumes and a budget parameter tried for one B serves the others."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.records: Dict[str, Dict] = {}
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    entry = json.loads(line)
                    self.records[entry["key"]] = entry

    def get(self, key: str, compute: Callable[[], Dict]) -> Dict:
        if key not in self.records:
            entry = {"key": key, **compute()}
            self.records[key] = entry
            with open(self.path, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        return self.records[key]


def evaluate(cache: RunCache, game: Dict, exact, method: str, parameter: int, seed: int,
             coalitions: np.ndarray) -> Dict:
    def compute() -> Dict:
        run = METHODS[method][0]
        start = time.process_time()
        try:
            estimate, native, rows = run(game["table"], game["n"], parameter, seed)
        except Exception as error:  # an approximator that cannot run at this budget
            return {"failed": f"{type(error).__name__}: {str(error)[:120]}"}
        seconds = time.process_time() - start
        return {"rows": rows, "seconds": seconds, **metrics(estimate, native, exact, game, coalitions)}

    return cache.get(f"{game['key']}|{method}|{parameter}|{seed}", compute)


def at_budget(cache: RunCache, game: Dict, exact, method: str, budget: int, seed: int,
              coalitions: np.ndarray) -> Optional[Dict]:
    r"""The method's result with at most ``budget`` rows: PI at exactly ``budget``; a
    shapiq approximator at the largest budget of its ladder whose rows fit."""
    kind = METHODS[method][1]
    if kind == "exact":
        return evaluate(cache, game, exact, method, budget, seed, coalitions)
    ladder = SPEX_LADDER if kind == "spex" else sorted({max(2, int(round(budget * m))) for m in LADDER})
    best = None
    for parameter in ladder:
        entry = evaluate(cache, game, exact, method, parameter, seed, coalitions)
        if "failed" in entry:
            if best is not None:
                break
            continue
        if entry["rows"] > budget:
            break
        saturated = best is not None and entry["rows"] == best["rows"]  # a larger budget buys no row
        best = entry
        if saturated or entry["rows"] == budget:
            break
    return best


def budgets_of(n: int) -> List[int]:
    r"""``n, 2n, ..., 16n`` (``32n`` too for n > 10) and the ``2^(n-1)`` rows of exact
    enumeration when that is at most 1024, none beyond it."""
    budgets = {m * n for m in (1, 2, 4, 8, 16, 32 if n > 10 else 16)}
    if 2 ** (n - 1) <= 1024:
        budgets = {b for b in budgets if b < 2 ** (n - 1)} | {2 ** (n - 1)}
    return sorted(budgets)


def study(games: List[Tuple[Dict, object]], names: List[str], seeds: int, cache: RunCache) -> List[Dict]:
    from tqdm import tqdm

    records = []
    total = sum(len(budgets_of(game["n"])) for game, _ in games) * len(names) * seeds
    with tqdm(total=total, desc="interactions") as bar:
        for game, exact in games:
            coalitions = np.random.default_rng(7).random((R2_SAMPLES, game["n"])) < 0.5
            for budget in budgets_of(game["n"]):
                for name in names:
                    for seed in range(seeds):
                        entry = at_budget(cache, game, exact, name, budget, seed, coalitions)
                        records.append({"n": game["n"], "budget": budget, "method": name, "seed": seed,
                                        "game": game["key"], **(entry or {"missing": True})})
                        bar.update(1)
    return records


# --- tables ---------------------------------------------------------------------------

def fmt(values: List[Optional[float]], digits: int = 3, average: Callable = np.median) -> str:
    values = [v for v in values if v is not None]
    return "--" if not values else f"{average(values):.{digits}f}"


def result_table(records: List[Dict], names: List[str], n: int, synthetic: bool) -> List[str]:
    precision = "P@2 planted pairs" if synthetic else "P@3 exact top pairs"
    header = ["B (rows)", "method", "rows used", "rel. error FSII", "rel. error pairs", precision,
              "R² order 2", "R² own surrogate"] + (["planted triple top-1"] if synthetic else []) + ["time ÷ PI"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for budget in sorted({r["budget"] for r in records if r["n"] == n}):
        subset = [r for r in records if r["n"] == n and r["budget"] == budget]
        pi_time = np.mean([r["seconds"] for r in subset if r["method"] == names[0] and "seconds" in r])
        for name in names:
            done = [r for r in subset if r["method"] == name and "rows" in r]
            missing = sum(1 for r in subset if r["method"] == name and "rows" not in r)
            if not done:
                lines.append(f"| {budget} | {name} | -- (does not fit or fails) |" + " -- |" * (len(header) - 3))
                continue
            note = f" ({missing} of {missing + len(done)} do not fit)" if missing else ""
            cells = [str(budget), name, f"{np.mean([r['rows'] for r in done]):.0f}{note}",
                     fmt([r.get("error") for r in done]), fmt([r.get("pair_error") for r in done]),
                     fmt([r.get("precision") for r in done], 2, np.mean), fmt([r.get("r2") for r in done]),
                     fmt([r.get("r2_native") for r in done])]
            if synthetic:
                cells.append(fmt([r.get("triple_found") for r in done], 2, np.mean))
            ratio = np.mean([r["seconds"] for r in done]) / pi_time if pi_time > 0 else float("nan")
            cells.append(f"{ratio:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def header_lines(title: str, command: str) -> List[str]:
    return [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine()}, shapiq "
            f"{_version('shapiq')}, lightgbm {_version('lightgbm')}, run under `nice -n 15` on a shared machine "
            "(times are ratios of CPU time, model excluded).", ""]


def _version(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:
        return "not installed"


# --- the synthetic part ---------------------------------------------------------------

def synthetic(args: argparse.Namespace) -> None:
    os.makedirs(CACHE, exist_ok=True)
    cache = RunCache(os.path.join(CACHE, "runs-synthetic.jsonl"))
    games = []
    check = []
    for n, n_games in ((8, args.seeds), (10, args.seeds), (16, max(1, args.seeds // 3))):
        for seed in range(n_games):
            game = planted_game(n, seed)
            closed = fsii_from_moebius(game["moebius"], n, 0.2)
            if n <= 10:
                exact = exact_fsii(game["table"], n)
                check.append(max(abs(exact[T] - closed[T]) for T in exact.interaction_lookup))
            else:
                exact = closed
            games.append((game, exact))
    records = study(games, SYNTHETIC_METHODS, args.estimator_seeds, cache)
    lines = header_lines("Pairwise interactions on a synthetic causal model with planted interactions",
                         "python benchmarks/interactions.py " + " ".join(sys.argv[1:]))
    lines += [
        f"Games: g(S) = 0.2 + sum_i w_i x_i + 2 planted pairs (|m| in [1, 2]) + 1 planted triple (|m| = 1.5), "
        f"w_i ~ N(0, 0.5), random signs; {args.seeds} games at n = 8 and 10, {max(1, args.seeds // 3)} at n = 16; "
        f"{args.estimator_seeds} estimator seeds each. Exact FSII of order 2 by enumeration (shapiq's "
        f"ExactComputer) for n <= 10, agreeing with the closed form from the Moebius coefficients to "
        f"{max(check):.1e}; the closed form for n = 16.",
        "",
        "FSII of order 2 spreads the planted triple onto its pairs and features, so the exact FSII of those "
        "pairs is not 0; precision counts the two planted pairs among each method's top 2. Cells: medians over "
        "games and seeds, precisions and triple recovery as means.",
        "",
    ]
    for n in (8, 10, 16):
        lines += [f"## n = {n} (exact enumeration needs 2^(n-1) = {2 ** (n - 1)} rows under deletion)", ""]
        lines += result_table(records, SYNTHETIC_METHODS, n, synthetic=True) + [""]
    write(os.path.join(OUT, "synthetic.md"), lines)


# --- the SmolLM2 part -----------------------------------------------------------------

def review_tables(limit: int) -> List[Dict]:
    r"""Every coalition's value of ``limit`` test reviews with 5 to 8 sentences under
    deletion, through TextGame on the default classifier (cached per review)."""
    import torch

    from captum_pi.interactions import TextGame
    from captum_pi.models import load_default_classifier
    from captum_pi.text import TextFeatureInput

    out = os.path.join(CACHE, "smollm2-lora-binary-sentence-delete")
    os.makedirs(out, exist_ok=True)
    bundle = None
    games = []
    for index, text, label in sample_reviews("binary", 0):
        if len(games) == limit:
            break
        path = os.path.join(out, f"{index}.npz")
        if not os.path.exists(path):
            if bundle is None:
                bundle = load_default_classifier()
                torch.set_num_threads(2)
            inp = TextFeatureInput(text, bundle.tokenizer, level="sentence", template=bundle.prefix + "{}")
            if not 5 <= inp.n_itp_features <= 8:
                continue
            n = inp.n_itp_features
            game = TextGame.from_input(bundle.model, inp, target=label)
            start = time.perf_counter()
            table = game(all_coalitions(n))
            seconds = time.perf_counter() - start
            np.savez(path + ".tmp.npz", table=table, n=n, label=label, index=index, rows=game.n_rows,
                     seconds=seconds, sentences=np.array(inp.values, dtype=object), text=text)
            os.replace(path + ".tmp.npz", path)
        elif not _cached_n_in_range(path):
            continue
        data = np.load(path, allow_pickle=True)
        games.append({"key": f"review-{index}", "n": int(data["n"]), "table": data["table"],
                      "label": int(data["label"]), "index": int(data["index"]), "rows": int(data["rows"]),
                      "seconds": float(data["seconds"]), "sentences": list(data["sentences"]),
                      "text": str(data["text"])})
    return games


def _cached_n_in_range(path: str) -> bool:
    return 5 <= int(np.load(path, allow_pickle=True)["n"]) <= 8


def live_check(game: Dict) -> List[str]:
    r"""On one review: PI at 2n rows, SPEX, ProxySPEX and ExactComputer on the live
    model through TextGame, against the same estimators on the table."""
    import shapiq
    import torch

    from captum_pi.interactions import TableGame, TextGame, progressive_interactions
    from captum_pi.models import load_default_classifier
    from captum_pi.text import TextFeatureInput

    path = os.path.join(CACHE, f"live-check-{game['key']}.json")
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    bundle = load_default_classifier()
    torch.set_num_threads(2)
    inp = TextFeatureInput(game["text"], bundle.tokenizer, level="sentence", template=bundle.prefix + "{}")
    n = inp.n_itp_features

    def live():
        return TextGame.from_input(bundle.model, inp, target=game["label"])

    def gap(a, b) -> float:
        return max(abs(float(a[T]) - float(b[T])) for T in b.interaction_lookup)

    lines = [f"Live check on review {game['index']} ({n} sentences): each estimator on the model "
             "through TextGame against the same estimator on the table.", "",
             "| estimator | rows on the model | max abs difference to the table run |", "|---|---|---|"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, run in (
            ("PI, B = 2n", lambda g: progressive_interactions(g, n_samples=2 * n, seed=0)),
            ("ExactComputer FSII order 2", lambda g: shapiq.ExactComputer(g)("FSII", 2)),
            ("ProxySPEX, budget 64", lambda g: shapiq.ProxySPEX(n=n, index="FSII", max_order=2,
                                                               random_state=0).approximate(64, g)),
            ("SPEX, budget 264", lambda g: shapiq.SPEX(n=n, index="FSII", max_order=2,
                                                       random_state=0).approximate(264, g)),
        ):
            model_game = live()
            on_model = run(model_game)
            on_table = run(TableGame(game["table"]))
            lines.append(f"| {name} | {model_game.n_rows} | {gap(on_model, on_table):.1e} |")
        again = shapiq.SPEX(n=n, index="FSII", max_order=2, random_state=0).approximate(264, TableGame(game["table"]))
        lines += ["", "SPEX is not reproducible in shapiq 1.4.1 even with random_state=0: a second run on the "
                  f"same table differs from the first by up to {gap(again, on_table):.1e}, so its row above "
                  "measures SPEX, not the game."]
    with open(path, "w") as handle:
        json.dump(lines, handle)
    return lines


def example_view(game: Dict, exact) -> List[str]:
    r"""The strongest pairs of one review, exact and from PI at 2n rows (the HTML view:
    benchmarks/interactions_example.py)."""
    from captum_pi.interactions import TableGame, interaction_text, progressive_interactions

    n = game["n"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = progressive_interactions(TableGame(game["table"]), n_samples=2 * n, seed=0)
    names = game["sentences"]
    return [f"Review {game['index']}, exact:", "", "```", interaction_text(exact, names, k=3), "```", "",
            f"PI at B = 2n = {2 * n} rows:", "", "```", interaction_text(estimate, names, k=3), "```", ""]


def smollm2(args: argparse.Namespace) -> None:
    games = review_tables(args.limit)
    cache = RunCache(os.path.join(CACHE, "runs-smollm2.jsonl"))
    pairs = [(game, exact_fsii(game["table"], game["n"])) for game in games]
    records = study(pairs, REAL_METHODS, args.estimator_seeds, cache)
    smallest = min(games, key=lambda g: g["n"])
    lines = header_lines("Pairwise sentence interactions on SmolLM2 drug reviews (deletion game)",
                         "python benchmarks/interactions.py " + " ".join(sys.argv[1:]))
    row_time = np.mean([g["seconds"] / g["rows"] for g in games])
    pi_time = np.mean([r["seconds"] for r in records if r["method"] == REAL_METHODS[0] and "seconds" in r])
    lines += [
        f"Reviews: {len(games)} test reviews (the seeded sample of benchmarks/_common.sample_reviews) with "
        f"n = {[g['n'] for g in games]} sentences; the default classifier (SmolLM2-135M-Instruct + LoRA); "
        f"value = P(true class); exact FSII by enumerating every coalition through TextGame "
        f"({sum(g['rows'] for g in games)} model rows in all, 2^(n-1) per review); "
        f"{args.estimator_seeds} estimator seeds. On the model the rows dominate the time: one row "
        f"took {row_time / pi_time:.0f} times PI's own fitting time (mean over the budgets).",
        "",
    ]
    for n in sorted({g["n"] for g in games}):
        lines += [f"## n = {n} ({sum(g['n'] == n for g in games)} reviews; exact needs {2 ** (n - 1)} rows)", ""]
        lines += result_table(records, REAL_METHODS, n, synthetic=False) + [""]
    lines += ["## On the live model", ""] + live_check(smallest) + [""]
    exact_of = {game["key"]: exact for game, exact in pairs}
    lines += ["## The view", ""] + example_view(smallest, exact_of[smallest["key"]])
    write(os.path.join(OUT, "smollm2-lora-binary-sentence-delete.md"), lines)


def write(path: str, lines: List[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = "\n".join(lines) + "\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text if path.endswith(".md") else f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["synthetic", "smollm2"], required=True)
    parser.add_argument("--seeds", type=int, default=10, help="synthetic games per n (a third of them at n = 16)")
    parser.add_argument("--estimator-seeds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=5, help="SmolLM2 reviews")
    args = parser.parse_args()
    (synthetic if args.part == "synthetic" else smollm2)(args)


if __name__ == "__main__":
    main()
