"""Buffered draws from the run's one ``numpy.random.Generator``.

Drawing numpy scalars one at a time costs about a microsecond each; the reference engine
draws in blocks instead. The sequence depends only on the seed and the order of use, so runs
stay reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from twin.scenario.distributions import DISTRIBUTIONS, dist_spec

__all__ = ["Stream", "Draws"]


class Stream:
    """An endless stream of values drawn ``block`` at a time by ``draw(n)``."""

    __slots__ = ("_draw", "_block", "_buf", "_i")

    def __init__(self, draw: Callable[[int], np.ndarray], block: int = 4096) -> None:
        self._draw = draw
        self._block = block
        self._buf: list = []
        self._i = 0

    def __call__(self):  # noqa: ANN204 - returns a Python scalar
        if self._i >= len(self._buf):
            self._buf = self._draw(self._block).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


class Draws:
    """The standard streams the engines use, all from one generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.uniform = Stream(rng.random)
        self.exponential = Stream(rng.standard_exponential)
        self.normal = Stream(rng.standard_normal)

    def sampler(self, dist: str, mean: float, cv: float) -> Callable[[float], float]:
        """A function ``f(scale)`` drawing from ``dist`` with mean ``mean*scale`` and the given cv
        (:func:`twin.scenario.distributions.dist_spec` says what they mean)."""
        spec = dist_spec(dist, cv)
        if spec.code == DISTRIBUTIONS["deterministic"]:
            return lambda scale=1.0: mean * scale
        if spec.code == DISTRIBUTIONS["exponential"]:
            e = self.exponential
            return lambda scale=1.0: mean * scale * e()
        sigma, mu_shift, n = spec.sigma, spec.mu, self.normal
        return lambda scale=1.0: mean * scale * math.exp(mu_shift + sigma * n())
