"""Type stub of the kernel's test hooks (``ext/_hooks.pyx``)."""

import numpy as np

__all__ = ["heap_trace", "raw_u64", "sample"]

def heap_trace(times: list[float]) -> list[int]:
    """Push ``times`` into the kernel's heap and pop them all: the indices in pop order (tests)."""

def raw_u64(seed: int, n: int) -> np.ndarray:
    """The first ``n`` 64-bit outputs of the kernel's RNG seeded with ``seed`` (tests)."""

def sample(dist: str, seed: int, n: int, mean: float = 1.0, cv: float = 1.0, p: np.ndarray | None = None) -> np.ndarray:
    """``n`` draws of the kernel's distributions (tests)."""
