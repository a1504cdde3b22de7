"""Mesa agents of the twin's world: warehouses, AGV fleets, carriers, weather, demand, supply, disruptions.

They are the slow, few-event part of the world. Each writes the shared
:class:`twin.world.state.State` at coarse events (SimPy processes on the model's environment,
Mesa ``step`` calls once per tick, or, for AGV breakdowns, a schedule drawn up front that the
engine plays) and never touches individual orders.
"""

from __future__ import annotations

from agents.carrier import CarrierAgent
from agents.demand import DemandAgent
from agents.disruption import DisruptionAgent
from agents.supply import ReallocationAgent, SupplierAgent
from agents.warehouse import AGVFleetAgent, WarehouseAgent
from agents.weather import WeatherAgent

__all__ = [
    "AGVFleetAgent", "CarrierAgent", "DemandAgent", "DisruptionAgent", "ReallocationAgent",
    "SupplierAgent", "WarehouseAgent", "WeatherAgent",
]
