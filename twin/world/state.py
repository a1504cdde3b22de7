"""The State: the numpy arrays that agents write at coarse events and engines read per order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.scenario.schema import PICK_PRIORITIES
from twin.world.network import Network

__all__ = ["State"]


@dataclass
class State:
    """The one mutable picture of the world. Nothing else keeps a second copy.

    Written by agents (weather, disruptions, AGV fleets, suppliers) and by the engine
    (stock reservations, backlog); read by engines and policies.
    """

    inventory: np.ndarray  # [W, S] units on hand, not yet reserved
    on_order: np.ndarray  # [W, S] units inbound (supplier orders and transfers)
    wh_open: np.ndarray  # [W] bool: the warehouse works (no outage)
    cold_ok: np.ndarray  # [W] bool: cold storage capable and working
    pick_servers: np.ndarray  # [W] int: AGVs available to pick now
    backlog: np.ndarray  # [W] int: shipments routed here and not yet shipped (engine-written)
    region_rate: np.ndarray  # [R] orders per hour now (demand agent)
    region_open: np.ndarray  # [R] bool: lanes into the region run (weather)
    region_transit_mult: np.ndarray  # [R] transit-time multiplier (weather)
    region_demand_mult: np.ndarray  # [R] demand multiplier (weather)
    surge_mult: np.ndarray  # [R] demand multiplier (demand-surge disruptions)
    carrier_capacity_mult: np.ndarray  # [C] share of departure capacity left (disruptions)
    agv_disabled_frac: np.ndarray  # [W] share of the AGV fleet disabled (disruptions)
    agv_up: np.ndarray  # [W] int: robots not broken down (AGV fleets' schedules)
    dock_waiting: np.ndarray  # [C, W] int: parcels packed, waiting for carrier c's departure at w (engine-written)
    clock: np.ndarray  # [1] float: the time (h) of the routing decision being made (engine-written)
    pick_priority: np.ndarray  # [W] int: each pick queue's order now, a twin.scenario.schema.PICK_PRIORITIES index

    @classmethod
    def initial(cls, net: Network) -> State:
        W, R, C = net.n_warehouses, net.n_regions, len(net.carriers)
        return cls(
            inventory=net.initial_stock.copy(),
            on_order=np.zeros_like(net.initial_stock),
            wh_open=np.ones(W, dtype=bool),
            cold_ok=net.cold_capable.copy(),
            pick_servers=np.array([w.pick.agvs for w in net.scenario.warehouses], dtype=np.int64),
            backlog=np.zeros(W, dtype=np.int64),
            region_rate=np.zeros(R),
            region_open=np.ones(R, dtype=bool),
            region_transit_mult=np.ones(R),
            region_demand_mult=np.ones(R),
            surge_mult=np.ones(R),
            carrier_capacity_mult=np.ones(C),
            agv_disabled_frac=np.zeros(W),
            agv_up=np.array([w.pick.agvs for w in net.scenario.warehouses], dtype=np.int64),
            dock_waiting=np.zeros((C, W), dtype=np.int64),
            clock=np.zeros(1),
            pick_priority=np.array([PICK_PRIORITIES.index(w.pick.priority) for w in net.scenario.warehouses],
                                   dtype=np.int64),
        )
