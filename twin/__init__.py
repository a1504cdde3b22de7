"""Fulfillment Twin: a digital twin of an e-commerce fulfillment network.

The public API: load a scenario, simulate it, read ``.kpis``, ``.orders`` and ``.timeseries``.
Names are imported lazily, so ``import twin.policies`` (a routing service) loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twin.errors import ScenarioError, TwinError

if TYPE_CHECKING:
    from twin.results.runs import ReplicationResult, SimulationResult, replicate, simulate
    from twin.scenario.loader import load_scenario
    from twin.scenario.schema import Scenario

__all__ = [
    "ReplicationResult", "Scenario", "ScenarioError", "SimulationResult", "TwinError", "load_scenario",
    "replicate", "simulate",
]
__version__ = "0.1.0"

_LAZY = {
    "ReplicationResult": "twin.results.runs", "SimulationResult": "twin.results.runs",
    "replicate": "twin.results.runs", "simulate": "twin.results.runs",
    "load_scenario": "twin.scenario.loader", "Scenario": "twin.scenario.schema",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'twin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
