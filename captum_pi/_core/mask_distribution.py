r"""
The input-mask distribution of Multi-Pass Progressive Inference (paper section
3.2.3-3.2.4, Eqns 12-17) and the importance weights that make the pooled
intermediate coalitions Shapley-distributed.

Notation (1-based, as in the paper): a coalition ``S`` of ``n`` features lies in
cell ``(k, l)`` when ``|S| = k`` and its last active feature is ``l``. A pass on the
input coalition ``S'`` of cell ``(i, j)`` yields one intermediate coalition per
active feature: the prefixes of ``S'``. With the S+ modification (section 3.2.4)
the pass runs on ``S+ = S' | {j+1, ..., n}``, which adds the coalitions
``S' | {j+1, ..., l}`` for ``l > j``.

Expected number of intermediate coalitions in cell ``(k, l)`` per pass on a uniform
``S'`` of cell ``(i, j)`` (derived here by counting; it is Eqn 17 before the paper's
division by ``i'``, with the paper's ``C(j-l, i-k)`` corrected to
``C(j-l-1, i-k-1)`` because feature ``j`` is fixed as the last element):

- ``k < i, l < j``: ``C(l-1, k-1) C(j-l-1, i-k-1) / C(j-1, i-1)``
- ``k = i, l = j``: 1
- ``k > i, l = j + k - i`` (S+ only): 1

``P'`` is found with non-negative least squares (``scipy.optimize.nnls``) so that
the expected pooled counts are as close as possible to the Shapley distribution
``P*`` (Eqn 13). Two parameterisations, chosen by ``solver``:

- ``"cells"``: one probability per input cell ``(i, j)``, as in the paper. The
  design matrix has about ``n^2/2 x n^2/2`` entries; used for ``n <= 32`` by default
  (n = 32: 528 x 528).
- ``"sizes"``: one probability per input size ``i``, with ``S'`` uniform among
  subsets of that size. The counts then have closed forms and the design matrix has
  ``(n-1) x n^2/2`` entries (n = 300: 13 M floats), which keeps ``n`` of several
  hundred features cheap. Used for ``n > 32`` by default.

Whatever mismatch remains is removed by importance weights. ``weighting="cell"``
weights a coalition by ``P*/P^D`` of its ``(size, last)`` cell, as the paper says.
``weighting="coalition"`` uses the exact probability of the coalition itself: within
a cell, coalitions reached through the S+ tail ``{j+1, ..., l}`` are not uniform, and
the exact probability depends on ``(k, l, r)``, ``r`` being the length of the run of
consecutive active features that ends at ``l``. With exact weights the weighted
regression is, in expectation, Kernel SHAP's regression, so MP-PI converges to the
Shapley values as the budget grows.
"""
import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
from scipy.optimize import nnls
from scipy.special import comb

SAMPLINGS = ("optimized", "shapley")
SOLVERS = ("auto", "cells", "sizes")
WEIGHTINGS = ("kernel", "coalition", "cell")
DISTINCT_TRIES_PER_PASS = 20
CELLS_SOLVER_MAX_N = 32
DEFENSIVE_SHAPLEY_FRACTION = 0.8


def _binom(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return comb(n, k, exact=False)


def shapley_size_probabilities(n: int) -> np.ndarray:
    r"""``P*_k`` for ``k = 0..n`` (entries 0 and n are 0): the Shapley kernel's
    probability of a coalition of size ``k``, proportional to ``1 / (k (n - k))``."""
    probs = np.zeros(n + 1)
    sizes = np.arange(1, n)
    probs[1:n] = 1.0 / (sizes * (n - sizes))
    return probs / probs.sum()


def shapley_cell_probabilities(n: int) -> np.ndarray:
    r"""``P*_{kl}`` (Eqn 13) as an ``[n+1, n+1]`` array indexed by size and last feature."""
    size, last = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    valid = (size >= 1) & (size <= n - 1) & (last >= size)
    cells = np.zeros((n + 1, n + 1))
    p_size = shapley_size_probabilities(n)
    cells[valid] = (
        p_size[size[valid]] * _binom(last[valid] - 1, size[valid] - 1) / _binom(n, size[valid])
    )
    return cells


@dataclass(frozen=True)
class MaskDistribution:
    r"""
    A distribution over input coalitions for MP-PI and the weights of the
    intermediate coalitions it yields.

    Attributes:
        n (int): Number of features.
        sampling (str): ``"optimized"`` (P' from Eqn 16 with S+) or ``"shapley"``
                    (input masks drawn from ``P*``, no S+).
        solver (str): ``"cells"``, ``"sizes"`` (optimized) or ``"shapley"``.
        extend (bool): Whether passes run on ``S+`` (section 3.2.4).
        input_probs (np.ndarray): ``Q[i, j]``: probability of one particular input
                    coalition of cell ``(i, j)``; ``[n+1, n+1]``.
        cell_counts (np.ndarray): expected number of pooled coalitions per pass in
                    each cell ``(k, l)``, ``k <= n-1``; ``[n+1, n+1]``.
        prefix_counts (np.ndarray): expected number of times one particular
                    coalition of cell ``(k, l)`` appears as a prefix of ``S'``.
        residual (float): ``|| P^D - P* ||_1`` of the normalised expected counts.
    """

    n: int
    sampling: str
    solver: str
    extend: bool
    input_probs: np.ndarray
    cell_counts: np.ndarray
    prefix_counts: np.ndarray
    residual: float

    def sample(self, rng: np.random.Generator, n_passes: int) -> np.ndarray:
        r"""Draws ``n_passes`` input coalitions (after S+ when ``extend``) as a
        BoolArray ``[n_passes, n]``."""
        n = self.n
        cell_probs = self.input_probs * _cell_sizes(n)
        flat = cell_probs.ravel() / cell_probs.sum()
        cells = rng.choice(flat.size, size=n_passes, p=flat)
        masks = np.zeros((n_passes, n), dtype=bool)
        for row, cell in enumerate(cells):
            size, last = divmod(int(cell), n + 1)
            others = rng.choice(last - 1, size=size - 1, replace=False)
            masks[row, others] = True
            masks[row, last - 1] = True
            if self.extend:
                masks[row, last:] = True
        return masks

    def support_size(self) -> int:
        r"""Number of distinct input masks a pass can have, the unmasked input
        excluded: ``2^(n-1) - 1`` with S+ (every pass contains the last feature),
        ``2^n - 2`` without."""
        return 2 ** (self.n - 1) - 1 if self.extend else 2 ** self.n - 2

    def sample_distinct(
        self, rng: np.random.Generator, n_passes: int, exclude: Optional[np.ndarray] = None
    ) -> np.ndarray:
        r"""
        ``n_passes`` distinct input masks, never the unmasked input nor one of
        ``exclude``, as a BoolArray ``[min(n_passes, available), n]``: drawn from the
        distribution, a repeat being drawn again, for at most
        ``DISTINCT_TRIES_PER_PASS`` draws per pass; masks still missing are drawn
        uniformly among those not taken. When ``n_passes`` covers what is left of
        the support, all of it is returned (in a random order).

        Deterministic predictions make a repeated pass worthless, so MP-PI's
        ``weighting="kernel"`` spends its budget on distinct passes.
        """
        n = self.n
        excluded = {mask.tobytes() for mask in (np.zeros((0, n), dtype=bool) if exclude is None else exclude)}
        available = self.support_size() - len(excluded)
        wanted = min(int(n_passes), available)
        if wanted <= 0:
            return np.zeros((0, n), dtype=bool)
        if wanted == available:
            rest = [mask for mask in self._support() if mask.tobytes() not in excluded]
            return rng.permutation(np.stack(rest))
        taken: dict = {}

        def offer(mask: np.ndarray) -> None:
            key = mask.tobytes()
            if not mask.all() and key not in excluded:
                taken.setdefault(key, mask)

        for _ in range(DISTINCT_TRIES_PER_PASS):
            for mask in self.sample(rng, wanted - len(taken)):
                offer(mask)
            if len(taken) == wanted:
                break
        while len(taken) < wanted:
            offer(self._uniform_mask(rng))
        return np.stack(list(taken.values()))

    def _support(self) -> np.ndarray:
        n = self.n
        codes = np.arange(2 ** n)
        masks = (codes[:, None] >> np.arange(n)) & 1 == 1
        inside = masks[:, -1] if self.extend else masks.any(axis=1)
        return masks[inside & ~masks.all(axis=1)]

    def _uniform_mask(self, rng: np.random.Generator) -> np.ndarray:
        mask = rng.random(self.n) < 0.5
        if self.extend:
            mask[-1] = True
        elif not mask.any():
            mask[rng.integers(self.n)] = True
        return mask

    def weights(self, sizes: np.ndarray, lasts: np.ndarray, runs: np.ndarray, weighting: str) -> np.ndarray:
        r"""
        Importance weights ``P*/P^D`` of pooled coalitions given by their size,
        last active feature (1-based) and the length of the run of consecutive
        active features ending at the last one.
        """
        target = shapley_cell_probabilities(self.n)
        if weighting == "cell":
            return target[sizes, lasts] / self.cell_counts[sizes, lasts]
        per_coalition_target = target[sizes, lasts] / _binom(lasts - 1, sizes - 1)
        return per_coalition_target / self._coalition_probability(sizes, lasts, runs)

    def _coalition_probability(self, sizes: np.ndarray, lasts: np.ndarray, runs: np.ndarray) -> np.ndarray:
        probability = self.prefix_counts[sizes, lasts].copy()
        if not self.extend:
            return probability
        # S = S' | {j+1..l} for every j inside the final run of S (j in S, j < l).
        for offset in range(1, int(runs.max(initial=1))):
            in_run = runs > offset
            input_size = sizes[in_run] - offset
            input_last = lasts[in_run] - offset
            valid = input_size >= 1
            contribution = np.zeros(in_run.sum())
            contribution[valid] = self.input_probs[input_size[valid], input_last[valid]]
            probability[in_run] += contribution
        return probability


def _cell_sizes(n: int) -> np.ndarray:
    r"""Number of coalitions in each cell ``(k, l)``: ``C(l-1, k-1)`` (0 if ``l < k``)."""
    size, last = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    counts = np.zeros((n + 1, n + 1))
    valid = (size >= 1) & (last >= size)
    counts[valid] = _binom(last[valid] - 1, size[valid] - 1)
    return counts


def _output_cells(n: int) -> Tuple[np.ndarray, np.ndarray]:
    size, last = np.nonzero(shapley_cell_probabilities(n) > 0)
    return size, last


@lru_cache(maxsize=64)
def mask_distribution(n: int, sampling: str = "optimized", solver: str = "auto") -> MaskDistribution:
    r"""
    Builds (and caches, since it depends only on ``n``) the MP-PI mask distribution.

    Args:
        n (int): Number of features, >= 2.
        sampling (str, optional): ``"optimized"`` or ``"shapley"``. Default: "optimized"
        solver (str, optional): ``"auto"``, ``"cells"`` or ``"sizes"``; see the module
                    docstring. ``"auto"`` is ``"cells"`` for ``n <= 32`` and ``"sizes"``
                    above. Ignored for ``sampling="shapley"``. Default: "auto"

    Returns:
        :class:`MaskDistribution`
    """
    if n < 2:
        raise ValueError(f"a mask distribution needs n >= 2 features, got n = {n}.")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}.")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    if sampling == "shapley":
        input_probs, prefix = _size_family(n, shapley_size_probabilities(n))
        return _finish(n, "shapley", False, input_probs, prefix)
    if solver == "auto":
        solver = "cells" if n <= CELLS_SOLVER_MAX_N else "sizes"
    input_probs, prefix = _solve_cells(n) if solver == "cells" else _solve_sizes(n)
    shapley_inputs, shapley_prefix = _size_family(n, shapley_size_probabilities(n))
    mix = DEFENSIVE_SHAPLEY_FRACTION
    return _finish(
        n, solver, True,
        (1 - mix) * input_probs + mix * shapley_inputs,
        (1 - mix) * prefix + mix * shapley_prefix,
    )


def _nonnegative_least_squares(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""``argmin_{x >= 0} ||matrix x - target||``; a tall system is first reduced by a
    QR factorisation (``||Ax - b|| = ||Rx - Q^T b||`` up to a constant), so NNLS runs
    on a square problem."""
    if matrix.shape[0] > matrix.shape[1]:
        q, r = np.linalg.qr(matrix, mode="reduced")
        matrix, target = r, q.T @ target
    solution, _ = nnls(matrix, target, maxiter=50 * matrix.shape[1])
    return solution


def _solve_cells(n: int) -> "tuple[np.ndarray, np.ndarray]":
    out_size, out_last = _output_cells(n)
    in_size, in_last = out_size, out_last  # input cells: sizes 1..n-1, last >= size
    design = np.zeros((in_size.size, out_size.size))
    for row, (i, j) in enumerate(zip(in_size, in_last)):
        design[row] = _counts_from_input_cell(n, i, j, out_size, out_last)
    target = shapley_cell_probabilities(n)[out_size, out_last]
    solution = _nonnegative_least_squares(design.T, target)
    input_probs = np.zeros((n + 1, n + 1))
    input_probs[in_size, in_last] = solution / solution.sum() / _binom(in_last - 1, in_size - 1)
    return input_probs, _prefix_counts_from_cells(n, input_probs)


def _counts_from_input_cell(
    n: int, i: int, j: int, out_size: np.ndarray, out_last: np.ndarray
) -> np.ndarray:
    counts = np.zeros(out_size.size)
    prefix = (out_size < i) & (out_last < j)
    k, l = out_size[prefix], out_last[prefix]
    counts[prefix] = _binom(l - 1, k - 1) * _binom(j - l - 1, i - k - 1) / _binom(j - 1, i - 1)
    counts[(out_size == i) & (out_last == j)] = 1.0
    counts[(out_size > i) & (out_last == j + out_size - i)] = 1.0
    return counts


def _prefix_counts_from_cells(n: int, input_probs: np.ndarray) -> np.ndarray:
    r"""Expected times one coalition of cell ``(k, l)`` is a prefix of ``S'``:
    ``Q_kl + sum_{i>k, j>l} Q_ij C(j-l-1, i-k-1)``."""
    prefix = input_probs.copy()
    sizes, lasts = np.arange(n + 1), np.arange(n + 1)
    for k in range(1, n):
        for l in range(k, n + 1):
            i, j = np.meshgrid(sizes[k + 1 :], lasts[l + 1 :], indexing="ij")
            prefix[k, l] += (input_probs[k + 1 :, l + 1 :] * _binom(j - l - 1, i - k - 1)).sum()
    return prefix


def _solve_sizes(n: int) -> "tuple[np.ndarray, np.ndarray]":
    out_size, out_last = _output_cells(n)
    design = np.stack(
        [_counts_from_input_size(n, i, out_size, out_last) for i in range(1, n)]
    )
    target = shapley_cell_probabilities(n)[out_size, out_last]
    solution = _nonnegative_least_squares(design.T, target)
    size_probs = np.zeros(n + 1)
    size_probs[1:n] = solution / solution.sum()
    return _size_family(n, size_probs)


def _counts_from_input_size(
    n: int, i: int, out_size: np.ndarray, out_last: np.ndarray
) -> np.ndarray:
    r"""Expected counts per output cell for ``S'`` uniform among subsets of size ``i``, with S+."""
    k, l = out_size, out_last
    counts = np.zeros(k.size)
    prefix = k <= i
    counts[prefix] = (
        _binom(l[prefix] - 1, k[prefix] - 1) * _binom(n - l[prefix], i - k[prefix]) / _binom(n, i)
    )
    tail = k > i
    counts[tail] = _binom(l[tail] - k[tail] + i - 1, i - 1) / _binom(n, i)
    return counts


def _size_family(n: int, size_probs: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    r"""Per-coalition input probabilities and prefix counts when ``S'`` has size ``i``
    with probability ``size_probs[i]`` and is uniform among subsets of that size."""
    sizes, lasts = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    valid = (sizes >= 1) & (sizes <= n - 1) & (lasts >= sizes)
    input_probs = np.zeros((n + 1, n + 1))
    input_probs[valid] = size_probs[sizes[valid]] / _binom(n, sizes[valid])
    # A coalition of cell (k, l) is a prefix of a uniform size-i subset with
    # probability C(n-l, i-k) / C(n, i).
    prefix = np.zeros((n + 1, n + 1))
    for k in range(1, n):
        i = np.arange(k, n)
        l = np.arange(k, n + 1)[:, None]
        prefix[k, k:] = (size_probs[i] * _binom(n - l, i - k) / _binom(n, i)).sum(axis=1)
    return input_probs, prefix


def _finish(
    n: int, solver: str, extend: bool, input_probs: np.ndarray, prefix: np.ndarray
) -> MaskDistribution:
    cell_counts = prefix * _cell_sizes(n)
    if extend:
        # one S+ coalition of size k > i in cell (k, j + k - i) per input cell (i, j)
        cell_probs = input_probs * _cell_sizes(n)
        for k in range(2, n):
            for i in range(1, k):
                lasts = np.arange(k, n + 1)
                cell_counts[k, lasts] += cell_probs[i, lasts - k + i]
    cell_counts[n, :] = 0.0
    cell_counts[:, 0] = 0.0
    target = shapley_cell_probabilities(n)
    residual = float(np.abs(cell_counts / cell_counts.sum() - target).sum())
    sampling = "shapley" if solver == "shapley" else "optimized"
    return MaskDistribution(n, sampling, solver, extend, input_probs, cell_counts, prefix, residual)


def shapley_kernel_weights(sizes: np.ndarray, n: int) -> np.ndarray:
    r"""Kernel SHAP's weight of one coalition of each size, ``(n - 1) / (C(n, k) k (n - k))``
    (sizes 1..n-1): the weighted regression over every coalition with these weights
    gives the Shapley values exactly."""
    sizes = np.asarray(sizes)
    return (n - 1) / (_binom(n, sizes) * sizes * (n - sizes))


def border_passes(n: int, max_passes: Optional[int] = None) -> np.ndarray:
    r"""
    Deterministic passes that, with the unmasked pass, reveal whole layers of the
    coalition lattice, the layers of the largest Kernel SHAP weight first (what
    shapiq's Kernel SHAP enumerates first as its "border"); all contain the last
    feature, as S+ passes do (1-based below).

    - Layer 1 (sizes 1 and ``n - 1``): the ``n - 1`` passes ``{i, n}`` (``i = 2..n``;
      their prefix at ``i`` is ``{i}``; ``{1}`` is the unmasked pass's first prefix),
      then the ``n - 1`` passes leaving out one feature ``i < n`` (``N minus {n}``
      is the unmasked pass's last prefix). Cut to ``max_passes``.
    - Layer ``k >= 2``: the passes ``S | {n}`` and ``N minus S`` for every ``S`` of
      ``k - 1`` or ``k`` features among ``1..n-1`` (they reveal every coalition of
      size ``k`` and ``n - k``), only when the whole layer fits in ``max_passes``.

    Args:
        n (int): Number of features.
        max_passes (int, optional): Most passes returned. None returns layer 1.
                    Default: None

    Returns:
        BoolArray ``[P, n]`` of distinct passes, in that order.
    """
    singles = np.zeros((n - 1, n), dtype=bool)
    singles[np.arange(n - 1), np.arange(1, n)] = True
    singles[:, -1] = True
    leave_one_out = ~np.eye(n - 1, n, dtype=bool)
    passes = _distinct_rows(np.vstack([singles, leave_one_out]))  # for n <= 3 some coincide
    if max_passes is None:
        return passes
    passes = passes[:max_passes]
    for size in range(2, n):
        layer = _layer_passes(n, size)
        fresh = layer[~_rows_in(layer, passes)]
        if len(passes) + len(fresh) > max_passes:
            break
        passes = np.vstack([passes, fresh])
    return passes


def _layer_passes(n: int, size: int) -> np.ndarray:
    r"""``S | {n}`` and ``N minus S`` for every ``S`` of ``size - 1`` or ``size``
    features among the first ``n - 1``: a coalition ``T`` of that size is the prefix
    of ``T | {n}`` at its last feature, and one of size ``n - size`` is the prefix
    of itself with ``n`` added."""
    rows = []
    for count in (size - 1, size):
        for subset in itertools.combinations(range(n - 1), count):
            with_last = np.zeros(n, dtype=bool)
            with_last[list(subset)] = True
            with_last[-1] = True
            without = np.ones(n, dtype=bool)
            without[list(subset)] = False
            rows += [with_last, without]
    rows = np.stack(rows)
    return _distinct_rows(rows[~rows.all(axis=1)])


def _distinct_rows(rows: np.ndarray) -> np.ndarray:
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)]


def _rows_in(rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    keys = {row.tobytes() for row in others}
    return np.array([row.tobytes() in keys for row in rows], dtype=bool)
