"""Per-order records: what engines write for each shipment, and the table users read.

One row per shipment: an order served whole has one, a split order one per warehouse, a lost
(or still backordered) order one row with no warehouse. Times are hours from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.scenario.schema import ColdChainFailure
from twin.world.network import Network

__all__ = ["STATUS", "STATUS_NAMES", "COLUMNS", "Counters", "Order", "Shipment", "ShipmentTable", "orders_frame"]

STATUS_NAMES = ["queued", "picking", "packing", "awaiting_carrier", "in_transit", "delivered", "lost", "backordered"]
STATUS = {name: i for i, name in enumerate(STATUS_NAMES)}

#: The columns of ``orders.parquet``, in order.
COLUMNS = [
    "order_id", "shipment_id", "region", "warehouse", "carrier", "status", "cold_chain", "service_level", "lines",
    "created_at", "routed_at", "pick_start", "pick_end", "shipped_at", "delivered_at", "promised_at",
    "cost", "co2_kg", "cold_violation",
]

NAN = float("nan")


@dataclass
class Counters:
    """Running counts: orders (created, delivered, on time, lost), and the shipments routed
    with their cost and CO2 (for the time series and RL rewards)."""

    created: int = 0
    delivered: int = 0
    on_time: int = 0
    lost: int = 0
    shipments: int = 0  # routed so far
    cost: float = 0.0  # CNY, of those shipments
    co2_kg: float = 0.0

    @property
    def in_flight(self) -> int:
        return self.created - self.delivered - self.lost


class Order:
    __slots__ = ("order_id", "region", "cold", "service", "lines", "created_at", "promised_at", "status",
                 "remaining", "shipments")

    def __init__(self, oid: int, region: int, cold: bool, service: int, lines: int, created: float,
                 promised: float) -> None:
        self.order_id, self.region, self.cold, self.service, self.lines = oid, region, cold, service, lines
        self.created_at, self.promised_at = created, promised
        self.status = 0
        self.remaining = 0
        self.shipments = 0


class Shipment:
    __slots__ = ("order", "shipment_id", "region", "warehouse", "carrier", "status", "cold", "lines", "routed_at",
                 "pick_start", "pick_end", "shipped_at", "delivered_at", "cost", "co2_kg")

    def __init__(self, order: Order, sid: int, w: int, c: int, lines: int, routed: float, cost: float,
                 co2: float) -> None:
        self.order, self.shipment_id, self.region, self.warehouse, self.carrier = order, sid, order.region, w, c
        self.status, self.cold, self.lines, self.routed_at = 0, order.cold, lines, routed
        self.pick_start = self.pick_end = self.shipped_at = self.delivered_at = NAN
        self.cost, self.co2_kg = cost, co2


class ShipmentTable:
    """The records the ``simpy`` engine writes while it runs."""

    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.shipments: list[Shipment] = []
        self._handling: np.ndarray | None = None

    def new_order(self, oid: int, region: int, cold: bool, service: int, lines: int, created: float,
                  promised: float) -> Order:
        o = Order(oid, region, cold, service, lines, created, promised)
        self.orders.append(o)
        return o

    def new_shipment(self, order: Order, w: int, c: int, lines: int, now: float, net: Network,
                     counters: Counters) -> Shipment:
        if self._handling is None:
            self._handling = np.array([x.handling_cost_per_line for x in net.scenario.warehouses])
        cost = float(net.lane_cost[c, w, order.region] + self._handling[w] * lines
                     + (net.reefer_surcharge[c] if order.cold else 0.0))
        s = Shipment(order, len(self.shipments), w, c, lines, now, cost, float(net.lane_co2_kg[c, w, order.region]))
        counters.shipments += 1
        counters.cost += s.cost
        counters.co2_kg += s.co2_kg
        order.remaining += 1
        order.shipments += 1
        self.shipments.append(s)
        return s

    def lost_order(self, order: Order) -> None:
        order.status = STATUS["lost"]

    def delivered(self, s: Shipment, counters: Counters) -> None:
        o = s.order
        o.remaining -= 1
        if o.remaining == 0:
            o.status = STATUS["delivered"]
            counters.delivered += 1
            if s.delivered_at <= o.promised_at:
                counters.on_time += 1

    def columns(self) -> dict[str, np.ndarray]:
        """Integer-coded columns: shipments first, then one row per order that has none."""
        sh = self.shipments
        no_ship = [o for o in self.orders if o.shipments == 0]
        n1, n2 = len(sh), len(no_ship)
        col: dict[str, np.ndarray] = {}

        def f(values: list, dtype) -> np.ndarray:  # noqa: ANN001
            return np.array(values, dtype=dtype)

        col["order_id"] = f([s.order.order_id for s in sh] + [o.order_id for o in no_ship], np.int64)
        col["shipment_id"] = f([s.shipment_id for s in sh] + [-1] * n2, np.int64)
        col["region"] = f([s.region for s in sh] + [o.region for o in no_ship], np.int32)
        col["warehouse"] = f([s.warehouse for s in sh] + [-1] * n2, np.int32)
        col["carrier"] = f([s.carrier for s in sh] + [-1] * n2, np.int32)
        col["status"] = f([s.status for s in sh] + [o.status for o in no_ship], np.int8)
        col["cold_chain"] = f([s.cold for s in sh] + [o.cold for o in no_ship], bool)
        col["service_level"] = f([s.order.service for s in sh] + [o.service for o in no_ship], np.int8)
        col["lines"] = f([s.lines for s in sh] + [o.lines for o in no_ship], np.int32)
        col["created_at"] = f([s.order.created_at for s in sh] + [o.created_at for o in no_ship], float)
        nan2 = [NAN] * n2
        for name in ("routed_at", "pick_start", "pick_end", "shipped_at", "delivered_at"):
            col[name] = f([getattr(s, name) for s in sh] + nan2, float)
        col["promised_at"] = f([s.order.promised_at for s in sh] + [o.promised_at for o in no_ship], float)
        col["cost"] = f([s.cost for s in sh] + [0.0] * n2, float)
        col["co2_kg"] = f([s.co2_kg for s in sh] + [0.0] * n2, float)
        assert len(col["order_id"]) == n1 + n2
        return col


def _names(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=names) if len(names) else codes


def orders_frame(col: dict[str, np.ndarray], net: Network, end_time: float) -> pd.DataFrame:
    """The users' table from integer-coded columns, sorted by order then shipment, with the
    derived ``cold_violation`` flag: a cold shipment held at a warehouse (from routing until it
    left) while that warehouse's cold storage had failed."""
    oid, sid = col["order_id"], col["shipment_id"]
    d = np.diff(oid)
    if (d >= 0).all() and ((d > 0) | (np.diff(sid) > 0)).all():
        c = col  # already sorted (the kernel engine writes them so): no copy
    else:
        order = np.lexsort((sid, oid))
        c = {k: v[order] for k, v in col.items()}
    del d
    sc = net.scenario
    viol = np.zeros(len(c["order_id"]), dtype=bool)
    cold_failures = [d for d in sc.disruptions if isinstance(d, ColdChainFailure)]
    if cold_failures:
        left = np.where(np.isnan(c["shipped_at"]), end_time, c["shipped_at"])
        for d in cold_failures:
            w = net.warehouses.index(d.warehouse)
            viol |= (c["warehouse"] == w) & c["cold_chain"] & (c["routed_at"] < d.end_h) & (left > d.start_h)
    names = {"region": net.regions, "warehouse": net.warehouses, "carrier": net.carriers, "status": STATUS_NAMES,
             "service_level": list(sc.demand.service_levels)}
    data = {k: (_names(c[k], names[k]) if k in names else c[k]) for k in COLUMNS[:-1]}
    data["cold_violation"] = viol
    # copy=False: the columns become the frame's without a second copy (10M rows: ~1 GB saved)
    return pd.DataFrame(data, columns=COLUMNS, copy=False)
