"""The one definition of the service-time distributions: the names a scenario may use (the
schema reads them), and what its ``distribution`` and ``cv`` mean, as parameters both engines
draw with.

A draw with mean ``m`` is ``m * X`` where ``E[X] = 1``: ``deterministic`` (and ``lognormal``
with cv 0) is ``X = 1``; ``exponential`` is a standard exponential (cv 1, the given cv is
ignored); ``lognormal`` is ``exp(mu + sigma * N(0, 1))`` with ``sigma = sqrt(log(1 + cv^2))``
and ``mu = -sigma^2 / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DISTRIBUTIONS", "DistSpec", "dist_spec"]

#: Each distribution's code (the kernel's ``rng_scaled`` switch reads the same numbers).
DISTRIBUTIONS: dict[str, int] = {"deterministic": 0, "exponential": 1, "lognormal": 2}


@dataclass(frozen=True)
class DistSpec:
    """A distribution with mean 1: ``code`` (see :data:`DISTRIBUTIONS`), and for the
    lognormal the ``sigma`` and ``mu`` of its normal exponent."""

    kind: str
    code: int
    sigma: float = 0.0
    mu: float = 0.0


def dist_spec(kind: str, cv: float) -> DistSpec:
    """The :class:`DistSpec` of a scenario's ``kind`` and ``cv``."""
    if kind == "deterministic" or (kind == "lognormal" and cv == 0):
        return DistSpec("deterministic", 0)
    if kind == "exponential":
        return DistSpec("exponential", 1)
    if kind == "lognormal":
        if not (cv > 0 and math.isfinite(cv)):
            raise ValueError(f"a lognormal's cv must be finite and >= 0, got {cv!r}")
        sigma = math.sqrt(math.log1p(cv * cv))
        return DistSpec("lognormal", 2, sigma, -0.5 * sigma * sigma)
    raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}; got {kind!r}")
