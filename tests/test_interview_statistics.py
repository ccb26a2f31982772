"""The analysis's statistics against published values and an independent implementation."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from emeritus.interview.statistics import bootstrap_interval, krippendorff_alpha, variance_shares

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing
# values: four observers, twelve units (None = not coded).
RELIABILITY = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
VALUES = ["1", "2", "3", "4", "5"]


def units() -> dict[int, list[str]]:
    return {
        u: [str(row[u]) for row in RELIABILITY if row[u] is not None]
        for u in range(len(RELIABILITY[0]))
    }


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("interval", 0.849)])
def test_alpha_matches_the_published_example(level: str, published: float) -> None:
    alpha = krippendorff_alpha(units(), level=level, values=VALUES)
    assert alpha == pytest.approx(published, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_agrees_with_the_krippendorff_package(level: str) -> None:
    data = np.array([[np.nan if v is None else v for v in row] for row in RELIABILITY], float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(units(), level=level, values=VALUES) == pytest.approx(expected)


def test_alpha_on_random_data_agrees_with_the_package() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 3, size=(5, 40)).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    found = {u: [str(int(v)) for v in data[:, u] if not np.isnan(v)] for u in range(data.shape[1])}
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert krippendorff_alpha(found, level="ordinal", values=["0", "1", "2"]) == pytest.approx(
        expected
    )


def test_alpha_is_undefined_without_pairs_or_without_expected_disagreement() -> None:
    assert krippendorff_alpha({"a": ["1"], "b": ["2"]}, level="nominal", values=VALUES) is None
    assert krippendorff_alpha({"a": ["1", "1"]}, level="nominal", values=VALUES) is None
    perfect = krippendorff_alpha({"a": ["1", "1"], "b": ["2", "2"]}, level="nominal", values=VALUES)
    assert perfect == pytest.approx(1.0)


def test_alpha_refuses_unknown_values_and_levels() -> None:
    with pytest.raises(ValueError, match="'7' is not one of"):
        krippendorff_alpha({"a": ["1", "7"]}, level="nominal", values=VALUES)
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha({"a": ["1", "1"]}, level="ratio-ish", values=VALUES)


def test_bootstrap_resamples_whole_clusters() -> None:
    # Ten clusters of ten identical rows: the clustered interval is as wide as ten draws allow,
    # far wider than the one that takes the hundred rows as independent.
    rows = [(c, float(c % 2)) for c in range(10) for _ in range(10)]

    def mean(chosen: object) -> float:
        return float(np.mean([v for _, v in chosen]))  # type: ignore[attr-defined]

    clustered = bootstrap_interval(rows, lambda r: r[0], mean, seed=1)
    independent = bootstrap_interval(rows, id, mean, seed=1)
    assert clustered[0] <= 0.5 <= clustered[1]
    assert clustered[1] - clustered[0] > 1.5 * (independent[1] - independent[0])
    assert bootstrap_interval(rows, lambda r: r[0], mean, seed=1) == clustered  # seeded
    constant = bootstrap_interval([1.0, 1.0, 1.0], lambda r: r, lambda rs: sum(rs) / len(rs))
    assert constant == (1.0, 1.0)


def test_variance_goes_to_the_grouping_that_explains_it() -> None:
    factor = ["warm", "cold"] * 8
    session = [str(i) for i in range(16)]
    values = [1.0 if f == "warm" else -1.0 for f in factor]
    shares = variance_shares(values, {"interviewer": factor, "session": session})
    assert shares["interviewer"] == pytest.approx(1.0)
    assert shares["session"] == pytest.approx(0.0)
    assert shares["residual"] == pytest.approx(0.0, abs=1e-9)
    noisy = [v + (0.5 if i % 4 < 2 else -0.5) for i, v in enumerate(values)]
    mixed = variance_shares(noisy, {"interviewer": factor})
    assert 0.5 < mixed["interviewer"] < 1.0
    assert sum(mixed.values()) == pytest.approx(1.0)
    assert variance_shares([1.0, 1.0, 1.0], {"interviewer": ["a", "b", "a"]}) == {}
    with pytest.raises(ValueError, match="2 labels for 3 values"):
        variance_shares([1.0, 0.0, 1.0], {"interviewer": ["a", "b"]})
