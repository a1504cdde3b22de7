"""Per-order records: what engines write for each shipment, and the table users read.

One row per shipment: an order served whole has one, a split order one per warehouse, a lost
(or still backordered) order one row with no warehouse. Times are hours from the start.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.scenario.schema import ColdChainFailure
from twin.world.costs import shipment_cost
from twin.world.network import Network

__all__ = ["Status", "STATUS", "STATUS_NAMES", "RECORD_DTYPES", "COLUMNS", "DERIVED_COLUMNS", "is_on_time",
           "Counters", "Order", "Shipment", "ShipmentTable", "orders_frame"]


class Status(enum.IntEnum):
    """The status of a shipment (or of an order without one), as stored in ``status``.

    The one definition of the codes: ``ext/_kernel.pyx`` keeps its own ``ST_*`` constants for
    speed and exposes them as ``STATUS_CODES`` (``tests/test_records.py`` checks they agree).
    """

    queued = 0
    picking = 1
    packing = 2
    awaiting_carrier = 3
    in_transit = 4
    delivered = 5
    lost = 6
    backordered = 7


#: Derived views of :class:`Status`: the names in code order, and name -> code.
STATUS_NAMES = [s.name for s in Status]
STATUS = {s.name: int(s) for s in Status}

#: The columns the engines write (``ShipmentTable.columns()``, the kernel's ``columns()``), in
#: order, with their dtypes. The kernel exposes its order as ``RECORD_COLUMNS``.
RECORD_DTYPES: dict[str, np.dtype] = {name: np.dtype(t) for name, t in [
    ("order_id", np.int64), ("shipment_id", np.int64), ("region", np.int32), ("warehouse", np.int32),
    ("carrier", np.int32), ("status", np.int8), ("cold_chain", np.bool_), ("service_level", np.int8),
    ("lines", np.int32), ("created_at", np.float64), ("routed_at", np.float64), ("pick_start", np.float64),
    ("pick_end", np.float64), ("shipped_at", np.float64), ("delivered_at", np.float64),
    ("promised_at", np.float64), ("cost", np.float64), ("co2_kg", np.float64),
]}
#: Columns :func:`orders_frame` derives from the others (not written by the engines).
DERIVED_COLUMNS = ["cold_violation"]
#: The columns of ``orders.parquet``, in order.
COLUMNS = [*RECORD_DTYPES, *DERIVED_COLUMNS]


def is_on_time(delivered_at, promised_at):  # noqa: ANN001, ANN201 - floats or arrays
    """The one "on time" rule: delivered at or before the promise, ``delivered_at <=
    promised_at`` (an order: its last parcel). Not delivered (NaN) is not on time.

    Scalars give a bool, arrays (numpy, pandas) elementwise. The ``simpy`` engine's counter and
    :func:`twin.results.kpis.order_table` call it; the kernel's ``_on_time`` is the same
    comparison in C (``tests/test_records.py`` catches a drift between counters and records).
    """
    return delivered_at <= promised_at

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
        self.status = Status.queued
        self.remaining = 0
        self.shipments = 0


class Shipment:
    __slots__ = ("order", "shipment_id", "region", "warehouse", "carrier", "status", "cold", "lines", "routed_at",
                 "pick_start", "pick_end", "shipped_at", "delivered_at", "cost", "co2_kg", "left_behind")

    def __init__(self, order: Order, sid: int, w: int, c: int, lines: int, routed: float, cost: float,
                 co2: float) -> None:
        self.order, self.shipment_id, self.region, self.warehouse, self.carrier = order, sid, order.region, w, c
        self.status, self.cold, self.lines, self.routed_at = Status.queued, order.cold, lines, routed
        self.pick_start = self.pick_end = self.shipped_at = self.delivered_at = NAN
        self.cost, self.co2_kg = cost, co2
        self.left_behind = False  # a full departure of its carrier left it behind (spill)


class ShipmentTable:
    """The records the ``simpy`` engine writes while it runs."""

    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.shipments: list[Shipment] = []

    def new_order(self, oid: int, region: int, cold: bool, service: int, lines: int, created: float,
                  promised: float) -> Order:
        o = Order(oid, region, cold, service, lines, created, promised)
        self.orders.append(o)
        return o

    def new_shipment(self, order: Order, w: int, c: int, lines: int, now: float, net: Network,
                     counters: Counters) -> Shipment:
        cost = float(shipment_cost(net.costs, c, w, order.region, order.cold, lines))
        s = Shipment(order, len(self.shipments), w, c, lines, now, cost, float(net.lane_co2_kg[c, w, order.region]))
        counters.shipments += 1
        counters.cost += s.cost
        counters.co2_kg += s.co2_kg
        order.remaining += 1
        order.shipments += 1
        self.shipments.append(s)
        return s

    def change_carrier(self, s: Shipment, c: int, net: Network, counters: Counters) -> None:
        """Spill: shipment ``s`` leaves with carrier ``c`` instead; its cost and CO2 (and the
        running counters) become those of ``c``'s lane."""
        cost = float(shipment_cost(net.costs, c, s.warehouse, s.region, s.cold, s.lines))
        co2 = float(net.lane_co2_kg[c, s.warehouse, s.region])
        counters.cost += cost - s.cost
        counters.co2_kg += co2 - s.co2_kg
        s.carrier, s.cost, s.co2_kg = c, cost, co2

    def lost_order(self, order: Order) -> None:
        order.status = Status.lost

    def delivered(self, s: Shipment, counters: Counters) -> None:
        o = s.order
        o.remaining -= 1
        if o.remaining == 0:
            o.status = Status.delivered
            counters.delivered += 1
            if is_on_time(s.delivered_at, o.promised_at):  # the last parcel (deliveries come in time order)
                counters.on_time += 1

    def columns(self) -> dict[str, np.ndarray]:
        """Integer-coded columns: shipments first, then one row per order that has none."""
        sh = self.shipments
        no_ship = [o for o in self.orders if o.shipments == 0]
        n1, n2 = len(sh), len(no_ship)
        col: dict[str, np.ndarray] = {}

        def put(name: str, values: list) -> None:
            col[name] = np.array(values, dtype=RECORD_DTYPES[name])

        put("order_id", [s.order.order_id for s in sh] + [o.order_id for o in no_ship])
        put("shipment_id", [s.shipment_id for s in sh] + [-1] * n2)
        put("region", [s.region for s in sh] + [o.region for o in no_ship])
        put("warehouse", [s.warehouse for s in sh] + [-1] * n2)
        put("carrier", [s.carrier for s in sh] + [-1] * n2)
        put("status", [s.status for s in sh] + [o.status for o in no_ship])
        put("cold_chain", [s.cold for s in sh] + [o.cold for o in no_ship])
        put("service_level", [s.order.service for s in sh] + [o.service for o in no_ship])
        put("lines", [s.lines for s in sh] + [o.lines for o in no_ship])
        put("created_at", [s.order.created_at for s in sh] + [o.created_at for o in no_ship])
        nan2 = [NAN] * n2
        for name in ("routed_at", "pick_start", "pick_end", "shipped_at", "delivered_at"):
            put(name, [getattr(s, name) for s in sh] + nan2)
        put("promised_at", [s.order.promised_at for s in sh] + [o.promised_at for o in no_ship])
        put("cost", [s.cost for s in sh] + [0.0] * n2)
        put("co2_kg", [s.co2_kg for s in sh] + [0.0] * n2)
        assert len(col["order_id"]) == n1 + n2 and list(col) == list(RECORD_DTYPES)
        return col


def _names(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    # from_codes takes the engines' int32/int8 codes as they are and stores them in the smallest
    # integer type (int8 for up to 127 names): no int64 copy of a 10M-row column on the way
    return pd.Categorical.from_codes(codes, categories=names) if len(names) else codes


def orders_frame(col: dict[str, np.ndarray], net: Network, end_time: float) -> pd.DataFrame:
    """The users' table from integer-coded columns, sorted by order then shipment, with the
    derived ``cold_violation`` flag: a cold shipment held at a warehouse (from routing until it
    left) while that warehouse's cold storage had failed."""
    oid, sid = col["order_id"], col["shipment_id"]
    # sorted by (order, shipment)? boolean temporaries only (a 10M-row int64 diff would be 80 MB)
    if len(oid) < 2 or ((oid[1:] > oid[:-1]) | ((oid[1:] == oid[:-1]) & (sid[1:] > sid[:-1]))).all():
        c = col  # already sorted (the kernel engine writes them so): no copy
    else:
        order = np.lexsort((sid, oid))
        c = {k: v[order] for k, v in col.items()}
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
