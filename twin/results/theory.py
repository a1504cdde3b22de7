"""Queueing theory the twin is checked against: Erlang B/C and the M/M/c queue.

An M/M/c queue has Poisson arrivals at rate ``lambda``, ``c`` identical servers and
exponential service at rate ``mu`` per server. Its offered load is ``a = lambda / mu``
(in erlangs) and it is stable only when ``a < c`` (utilisation ``rho = a / c < 1``).

Erlang B is computed by the usual recursion ``B(0) = 1``,
``B(k) = a B(k-1) / (k + a B(k-1))``, which never forms a factorial or a power and so stays
accurate for thousands of servers; Erlang C follows from it as
``C = c B / (c - a (1 - B))``.

Rates are per hour throughout the twin, but any consistent time unit works: ``mmc_mean_wait``
returns the wait in the reciprocal unit of the rates it is given.
"""

from __future__ import annotations

import math

__all__ = ["erlang_b", "erlang_c", "mmc_mean_wait", "mmc_mean_queue_length", "mmc_utilization"]


def _check_servers(c: object, name: str = "c") -> int:
    if isinstance(c, bool) or not isinstance(c, int):
        raise ValueError(f"{name} must be an int number of servers >= 1, got {c!r}")
    if c < 1:
        raise ValueError(f"{name} must be >= 1, got {name}={c}")
    return c


def _check_nonneg(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be a number, got {x!r}")
    x = float(x)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {name}={x:g}")
    return x


def erlang_b(c: int, offered_load: float) -> float:
    """Blocking probability of an M/M/c/c loss system (Erlang B) with ``c`` servers.

    Args:
        c: number of servers, >= 1.
        offered_load: ``a = lambda / mu`` in erlangs, >= 0 (any value: a loss system is
            always stable).
    """
    c = _check_servers(c)
    a = _check_nonneg(offered_load, "offered_load")
    b = 1.0
    for k in range(1, c + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def erlang_c(c: int, offered_load: float) -> float:
    """Probability that an arriving customer waits in an M/M/c queue (Erlang C).

    Args:
        c: number of servers, >= 1.
        offered_load: ``a = lambda / mu`` in erlangs; must satisfy ``0 <= a < c``.

    Raises:
        ValueError: ``c`` is not a positive int, or ``a`` is negative, not finite, or
            ``>= c`` (the queue is unstable and grows without bound).
    """
    c = _check_servers(c)
    a = _check_nonneg(offered_load, "offered_load")
    if a >= c:
        raise ValueError(
            f"erlang_c needs offered_load < c for a stable queue, "
            f"got c={c}, offered_load={a:g} (utilisation {a / c:.3g} >= 1)"
        )
    if a == 0:
        return 0.0
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def _load(arrival_rate: float, service_rate: float, servers: int) -> tuple[float, float, int]:
    lam = _check_nonneg(arrival_rate, "arrival_rate")
    mu = _check_nonneg(service_rate, "service_rate")
    c = _check_servers(servers, "servers")
    if mu == 0:
        raise ValueError(f"service_rate must be > 0, got service_rate={mu:g}")
    if lam >= c * mu:
        raise ValueError(
            "M/M/c queue is unstable: need arrival_rate < servers * service_rate, got "
            f"arrival_rate={lam:g}, service_rate={mu:g}, servers={c} "
            f"(utilisation {lam / (c * mu):.3g} >= 1)"
        )
    return lam, mu, c


def mmc_utilization(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Server utilisation ``rho = lambda / (c mu)`` of a stable M/M/c queue."""
    lam, mu, c = _load(arrival_rate, service_rate, servers)
    return lam / (c * mu)


def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue (before service starts), ``Wq = C(c, a) / (c mu - lambda)``.

    Args:
        arrival_rate: ``lambda``, customers per unit time, >= 0.
        service_rate: ``mu``, services per unit time per server, > 0.
        servers: ``c``, >= 1; ``lambda < c mu`` is required.

    Raises:
        ValueError: a rate is negative or the queue is unstable; the message names the args.
    """
    lam, mu, c = _load(arrival_rate, service_rate, servers)
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_mean_queue_length(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean number waiting in queue (not in service), ``Lq = lambda Wq`` (Little's law)."""
    lam, _, _ = _load(arrival_rate, service_rate, servers)
    return lam * mmc_mean_wait(arrival_rate, service_rate, servers)
