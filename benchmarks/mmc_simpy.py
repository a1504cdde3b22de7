"""A plain SimPy M/M/c queue: the yardstick for the twin's engines.

Poisson arrivals, ``servers`` identical servers (``simpy.Resource``), exponential service at
rate 1 per server, so the arrival rate is ``utilization * servers``. Customers are generator
processes, as a SimPy user would write them; random numbers come from a seeded numpy
``Generator`` and are drawn up front so the timing measures the simulation, not the RNG.

No project imports: benchmarks import ``run_plain_mmc`` to compare the twin's events per
second with plain SimPy on the same queue. Run ``python benchmarks/mmc_simpy.py [N]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import simpy

__all__ = ["run_plain_mmc"]


def run_plain_mmc(n_customers: int, servers: int = 8, utilization: float = 0.85, seed: int = 0) -> dict:
    """Simulate ``n_customers`` through an M/M/c queue and time it.

    Returns:
        ``{"customers", "wall_s", "per_s", "mean_wait"}``: customers simulated, wall-clock
        seconds, customers per wall-clock second, and the mean time in queue in units of the
        mean service time (Erlang C gives ``C(c, a) / (c - a)`` with ``a = utilization * c``).
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if servers < 1:
        raise ValueError(f"servers must be >= 1, got {servers}")
    if not 0 < utilization < 1:
        raise ValueError(f"utilization must be in (0, 1), got {utilization}")

    rng = np.random.default_rng(seed)
    lam = utilization * servers
    gaps = rng.exponential(1.0 / lam, n_customers).tolist()
    services = rng.exponential(1.0, n_customers).tolist()
    waits = [0.0] * n_customers

    env = simpy.Environment()
    desk = simpy.Resource(env, capacity=servers)

    def customer(i: int):
        arrived = env.now
        with desk.request() as req:
            yield req
            waits[i] = env.now - arrived
            yield env.timeout(services[i])

    def source():
        for i in range(n_customers):
            yield env.timeout(gaps[i])
            env.process(customer(i))

    t0 = time.perf_counter()
    env.process(source())
    env.run()
    wall = time.perf_counter() - t0
    return {
        "customers": n_customers,
        "wall_s": wall,
        "per_s": n_customers / wall if wall > 0 else float("inf"),
        "mean_wait": float(np.mean(waits)),
    }


def _erlang_c_wait(c: int, rho: float) -> float:
    a = rho * c
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b)) / (c - a)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    res = run_plain_mmc(n)
    print(
        f"plain SimPy M/M/8 at rho=0.85: {res['customers']} customers in {res['wall_s']:.2f} s "
        f"({res['per_s']:,.0f}/s); mean wait {res['mean_wait']:.4f} "
        f"(Erlang C {_erlang_c_wait(8, 0.85):.4f}, in mean service times)"
    )
