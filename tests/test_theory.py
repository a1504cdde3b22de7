"""Erlang C and the M/M/c formulas against values computed by hand."""

from __future__ import annotations

import math

import pytest

from twin.results.theory import erlang_b, erlang_c, mmc_mean_queue_length, mmc_mean_wait, mmc_utilization


def _erlang_c_direct(c: int, a: float) -> float:
    """The textbook closed form with factorials (fine for small c)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("lam,mu", [(0.5, 1.0), (3.0, 4.0), (68.0, 80.0), (9.9, 10.0)])
def test_mm1_matches_closed_form(lam: float, mu: float) -> None:
    rho = lam / mu
    assert erlang_c(1, rho) == pytest.approx(rho)  # M/M/1: P(wait) = rho
    assert mmc_mean_wait(lam, mu, 1) == pytest.approx(rho / (mu - lam))
    assert mmc_mean_queue_length(lam, mu, 1) == pytest.approx(rho**2 / (1 - rho))


def test_mm2_by_hand() -> None:
    # M/M/2 with lambda = 1, mu = 1: a = 1, rho = 1/2.
    #   Erlang B: B(1) = 1/(1+1) = 1/2, B(2) = (1 * 1/2) / (2 + 1/2) = 1/5.
    #   Erlang C = c B / (c - a (1 - B)) = (2/5) / (2 - 4/5) = 1/3.
    #   Wq = C / (c mu - lambda) = (1/3) / 1 = 1/3;  Lq = lambda Wq = 1/3
    #   (check: the M/M/2 formula Lq = 2 rho^3 / (1 - rho^2) = (1/4) / (3/4) = 1/3).
    assert erlang_b(2, 1.0) == pytest.approx(1 / 5)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert mmc_mean_wait(1.0, 1.0, 2) == pytest.approx(1 / 3)
    assert mmc_mean_queue_length(1.0, 1.0, 2) == pytest.approx(1 / 3)
    assert mmc_utilization(1.0, 1.0, 2) == pytest.approx(0.5)


def test_erlang_c_builtin_validation_case() -> None:
    # The erlang_c scenario: c = 8 AGVs, mu = 10 picks/h each, lambda = 68 orders/h (rho = 0.85).
    c, lam, mu = 8, 68.0, 10.0
    pw = _erlang_c_direct(c, lam / mu)
    assert erlang_c(c, lam / mu) == pytest.approx(pw, rel=1e-12)
    assert 0.5 < pw < 0.7
    assert mmc_mean_wait(lam, mu, c) == pytest.approx(pw / (c * mu - lam), rel=1e-12)
    assert mmc_mean_queue_length(lam, mu, c) == pytest.approx(pw * 0.85 / 0.15, rel=1e-12)


@pytest.mark.parametrize("c", [1, 2, 5, 10, 30, 60])
@pytest.mark.parametrize("rho", [0.1, 0.5, 0.9, 0.99])
def test_recursion_matches_factorial_form(c: int, rho: float) -> None:
    assert erlang_c(c, rho * c) == pytest.approx(_erlang_c_direct(c, rho * c), rel=1e-9)


def test_large_systems_are_stable() -> None:
    # 5000 servers at rho = 0.95: the factorial form overflows, the recursion does not.
    p = erlang_c(5000, 4750.0)
    assert 0.0 < p < 1.0 and math.isfinite(p)
    # more servers at the same utilisation -> less waiting (economies of scale)
    assert erlang_c(5000, 4750.0) < erlang_c(500, 475.0) < erlang_c(50, 47.5)
    assert erlang_c(3, 0.0) == 0.0
    assert mmc_mean_wait(0.0, 1.0, 3) == 0.0


def test_wait_grows_with_load() -> None:
    waits = [mmc_mean_wait(lam, 1.0, 4) for lam in (1.0, 2.0, 3.0, 3.5, 3.9)]
    assert waits == sorted(waits)


def test_unstable_erlang_c_names_args() -> None:
    with pytest.raises(ValueError, match=r"c=4, offered_load=4\b"):
        erlang_c(4, 4.0)
    with pytest.raises(ValueError, match=r"c=2, offered_load=7\.5"):
        erlang_c(2, 7.5)


def test_unstable_mmc_names_args() -> None:
    with pytest.raises(ValueError, match=r"arrival_rate=90, service_rate=10, servers=8"):
        mmc_mean_wait(90.0, 10.0, 8)
    with pytest.raises(ValueError, match=r"arrival_rate=20, service_rate=10, servers=2"):
        mmc_mean_queue_length(20.0, 10.0, 2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: erlang_c(0, 0.5), r"c must be >= 1, got c=0"),
        (lambda: erlang_c(2.5, 1.0), r"c must be an int.*2\.5"),
        (lambda: erlang_c(3, -1.0), r"offered_load=-1"),
        (lambda: erlang_c(3, float("nan")), r"offered_load"),
        (lambda: mmc_mean_wait(1.0, 0.0, 2), r"service_rate=0"),
        (lambda: mmc_mean_wait(-1.0, 1.0, 2), r"arrival_rate=-1"),
        (lambda: mmc_mean_wait(1.0, 1.0, 0), r"servers must be >= 1, got servers=0"),
    ],
)
def test_bad_arguments(call, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        call()
