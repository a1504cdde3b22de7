"""How often this host takes a core away from a running process.

``python benchmarks/host_jitter.py [--cpu 1] [--seconds 5]``

Spins on one core reading the clock; any gap over 100 µs between two reads is time the
process did not run (the VM's other tenants, the hypervisor, interrupts). Prints the share of
time lost and how many gaps exceed 1 and 2 ms: the floor under any latency tail measured on
this core (see BENCHMARKS.md, "The host's own tail").
"""

from __future__ import annotations

import argparse
import os
import time


def gaps(cpu: int, seconds: float, over_s: float = 1e-4) -> list[float]:
    """The gaps over ``over_s`` between consecutive clock reads on ``cpu`` for ``seconds``."""
    os.sched_setaffinity(0, {cpu})
    out = []
    t_end = time.perf_counter() + seconds
    last = time.perf_counter()
    while last < t_end:
        now = time.perf_counter()
        if now - last > over_s:
            out.append(now - last)
        last = now
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    g = sorted(gaps(a.cpu, a.seconds))
    print(f"core {a.cpu}: {len(g)} gaps > 100 µs in {a.seconds:g} s, {sum(g) * 1e3:.1f} ms lost "
          f"({sum(g) / a.seconds:.1%}); > 1 ms: {sum(x > 1e-3 for x in g)}, > 2 ms: {sum(x > 2e-3 for x in g)}, "
          f"worst {g[-1] * 1e3 if g else 0.0:.2f} ms")


if __name__ == "__main__":
    main()
