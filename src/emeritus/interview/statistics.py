"""The statistics the analysis needs, written out so each is checkable against its definition:
Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"), a
percentile bootstrap that resamples whole clusters, and sequential (type I) sums of squares
that attribute variance to groupings in a fixed order. Definitions:
docs/design/interview-protocol.md, "Statistics per preference"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
LEVELS = ("nominal", "ordinal", "interval")


def krippendorff_alpha(
    units: Mapping[Any, Sequence[str]], *, level: str, values: Sequence[str]
) -> float | None:
    """Alpha over units whose values are taken from `values` (in order, for ordinal and
    interval data). A unit with fewer than two values is not pairable and is left out. None
    when fewer than two pairable values remain or no disagreement is expected (every pairable
    value the same): alpha is undefined there, not 1."""
    if level not in LEVELS:
        raise ValueError(f"unknown level of measurement {level!r}; expected one of {LEVELS}")
    index = {value: i for i, value in enumerate(values)}
    size = len(values)
    coincidence = np.zeros((size, size))
    for unit, found in units.items():
        unknown = [v for v in found if v not in index]
        if unknown:
            raise ValueError(f"unit {unit!r}: value {unknown[0]!r} is not one of {list(values)}")
        m = len(found)
        if m < 2:
            continue
        counts = np.bincount([index[v] for v in found], minlength=size).astype(float)
        # Each ordered pair of values within the unit, i != j, adds 1 / (m - 1).
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    marginals = coincidence.sum(axis=1)
    n = marginals.sum()
    if n < 2:
        return None
    delta = _distances(level, marginals)
    observed = float((coincidence * delta).sum())
    expected = float((np.outer(marginals, marginals) * delta).sum())
    if expected == 0:
        return None
    return float(1.0 - (n - 1) * observed / expected)


def _distances(level: str, marginals: np.ndarray) -> np.ndarray:
    size = len(marginals)
    c, k = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    if level == "nominal":
        nominal: np.ndarray = (c != k).astype(float)
        return nominal
    if level == "interval":
        interval: np.ndarray = ((c - k) ** 2).astype(float)
        return interval
    # Ordinal: the squared count of values ranked between c and k, the ends counted half.
    cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
    low, high = np.minimum(c, k), np.maximum(c, k)
    between = cumulative[high + 1] - cumulative[low]
    result: np.ndarray = (between - (marginals[c] + marginals[k]) / 2) ** 2
    return result


def bootstrap_interval(
    rows: Sequence[T],
    cluster: Callable[[T], Hashable],
    statistic: Callable[[Sequence[T]], float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic` when whole clusters are drawn with replacement (all
    rows of a drawn cluster kept), so rows that share a cluster are not taken as independent."""
    if not rows:
        raise ValueError("bootstrap of no rows")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence}")
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for row in rows:
        groups[cluster(row)].append(row)
    clusters = list(groups.values())
    rng = np.random.default_rng(seed)
    estimates = np.empty(resamples)
    for i in range(resamples):
        drawn = rng.integers(0, len(clusters), size=len(clusters))
        estimates[i] = statistic([row for j in drawn for row in clusters[j]])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def variance_shares(
    values: Sequence[float], groupings: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Share of the total sum of squares explained by each grouping, entered in order (each
    gets only what the earlier ones left), plus `residual`; the shares sum to 1. Empty when the
    values do not vary: there is nothing to attribute."""
    y = np.asarray(values, dtype=float)
    for name, labels in groupings.items():
        if len(labels) != len(y):
            raise ValueError(f"grouping {name!r} has {len(labels)} labels for {len(y)} values")
    total = float(((y - y.mean()) ** 2).sum())
    if len(y) < 2 or total <= 1e-12:
        return {}
    design = np.ones((len(y), 1))
    explained = 0.0
    shares: dict[str, float] = {}
    for name, labels in groupings.items():
        levels = sorted(set(labels))
        one_hot = np.array([[label == level for level in levels] for label in labels], float)
        design = np.hstack([design, one_hot])
        fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
        now = total - float(((y - fitted) ** 2).sum())
        shares[name] = max(now - explained, 0.0) / total
        explained = max(now, explained)
    shares["residual"] = max(total - explained, 0.0) / total
    return shares


def wilson_lower(successes: int, n: int, z: float = 1.959964) -> float:
    """The lower end of the Wilson score interval (95 % by default) of a share: unlike the
    normal approximation it stays inside [0, 1] and is honest for small n and shares near 1."""
    if n <= 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5)
    return float(max(0.0, (centre - margin) / (1 + z * z / n)))
