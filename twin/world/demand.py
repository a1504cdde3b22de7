"""The order rate: the one definition of the demand formula.

Network rate at time ``t``: ``base_rate_per_h x profile(t) x (1 + diurnal_amplitude x
sin(2 pi (t - 6) / 24))``; the rate of a region is that times the region's weight, its weather
demand multiplier and its surge multiplier. The profile is piecewise linear between its
``[time_h, multiplier]`` points and holds its end values outside them.

:class:`agents.demand.DemandAgent` (the rates the engines draw orders from, and the expected
orders that size the kernel's records) and ``rl._common.mean_rate_per_h`` (the RL reward and
feature scale) all evaluate it here.
"""

from __future__ import annotations

import numpy as np

from twin.scenario.schema import Demand, Scenario

__all__ = ["DemandRate", "mean_rate_per_h"]


class DemandRate:
    """The order rate of one scenario's ``demand`` section (the profile's points kept as arrays)."""

    __slots__ = ("_pm", "_pt", "cfg")

    def __init__(self, demand: Demand) -> None:
        self.cfg = demand
        self._pt = np.array([p[0] for p in demand.profile], dtype=float)
        self._pm = np.array([p[1] for p in demand.profile], dtype=float)

    def total(self, t):  # noqa: ANN001, ANN201 - a float, or an array of times
        """Orders per hour over the whole network at time ``t`` (a float), or at each of an
        array of times (an array), before weather and surges."""
        d = self.cfg
        prof = np.interp(t, self._pt, self._pm)
        diurnal = 1.0 + d.diurnal_amplitude * np.sin(2 * np.pi * (np.asarray(t) - 6.0) / 24.0)
        rate = d.base_rate_per_h * prof * diurnal
        return float(rate) if np.ndim(rate) == 0 else rate

    def regional(self, t: float, region_weight: np.ndarray, demand_mult: np.ndarray,
                 surge_mult: np.ndarray) -> np.ndarray:
        """Orders per hour of each region at time ``t``: the network rate x region weight x
        weather demand multiplier x surge multiplier."""
        return self.total(t) * region_weight * demand_mult * surge_mult


def mean_rate_per_h(sc: Scenario, points: int = 481) -> float:
    """The mean network order rate over ``[0, horizon_h]`` (``points`` evenly spaced times),
    before weather and surges."""
    t = np.linspace(0.0, sc.horizon_h, points)
    return float(np.mean(DemandRate(sc.demand).total(t)))
