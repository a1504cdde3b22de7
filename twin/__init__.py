"""Fulfillment Twin: a digital twin of an e-commerce fulfillment network.

The public API: load a scenario, simulate it, read ``.kpis``, ``.orders`` and ``.timeseries``.
"""

from __future__ import annotations

from twin.errors import ScenarioError, TwinError
from twin.loader import load_scenario
from twin.run import ReplicationResult, SimulationResult, replicate, simulate
from twin.schema import Scenario

__all__ = [
    "ReplicationResult", "Scenario", "ScenarioError", "SimulationResult", "TwinError", "load_scenario",
    "replicate", "simulate",
]
__version__ = "0.1.0"
