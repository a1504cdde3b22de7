"""Type stub of the tight M/M/c yardstick (``ext/_mmc_tight.pyx``)."""

from __future__ import annotations

def run_mmc(n_customers: int, servers: int = 8, utilization: float = 0.85, seed: int = 0) -> dict[str, float]:
    """A plain M/M/c FIFO queue simulated in a tight loop: mean wait and throughput (benchmarks)."""
