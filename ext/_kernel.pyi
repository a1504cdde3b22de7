"""Type stub of the Cython event kernel (``ext/_kernel.pyx``): the surface the twin calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twin.sim.kernel import KernelTables
    from twin.world.state import State

__all__ = ["Kernel", "build_alias", "STATUS_CODES", "RECORD_COLUMNS", "ROUTE_MODES", "DIST_CODES", "PICK_PRIORITY_CODES"]

#: Status name (twin.sim.records.Status) -> the code the kernel writes.
STATUS_CODES: dict[str, int]
#: The record columns, in the order ``Kernel.columns()`` returns them.
RECORD_COLUMNS: tuple[str, ...]
#: Plan mode name (twin.policies.plan.RoutingPlan.mode) -> the kernel's code.
ROUTE_MODES: dict[str, int]
#: Distribution name (twin.scenario.distributions.DISTRIBUTIONS) -> the kernel's code.
DIST_CODES: dict[str, int]
#: Pick priority (twin.scenario.schema.PICK_PRIORITIES) -> the kernel's code.
PICK_PRIORITY_CODES: dict[str, int]

def build_alias(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias tables ``(prob float64, alias int32)`` of the categorical law ``p``."""

class Kernel:
    """The order flow in typed Cython on the State's own arrays (no copies).

    Attributes:
        now: the kernel's clock (hours).
        created, delivered, on_time, lost: running order counts.
        cost_total, co2_total: of every shipment routed so far.
    """

    now: float
    created: int
    delivered: int
    on_time: int
    lost: int
    cost_total: float
    co2_total: float

    def __init__(self, *, seeds: tuple[int, int, int, int, int], state: State, tables: KernelTables,
                 log_lines: bool = False) -> None:
        """``seeds``: one per twin.sim.rng.KERNEL_STREAMS source (demand, pick, pack, transit, routing)."""
    def order_lines(self) -> dict[str, np.ndarray]:
        """Every order's lines as created (``log_lines``): order_id, sku, quantity."""
    def storage_bytes(self) -> tuple[int, int, int]:
        """``(bytes allocated for order and shipment records, shipment records, orders)``."""
    def start_arrivals(self, t0: float, t1: float, rates: np.ndarray) -> None:
        """Orders arrive in ``[t0, t1)`` at ``rates`` per hour per region; replaces a running window."""
    def reserve(self, orders: int, shipments: int) -> None:
        """Room for this many order and shipment records at once."""
    def set_agv_schedule(self, times: np.ndarray, warehouses: np.ndarray, deltas: np.ndarray) -> None:
        """Play the AGV fleets' breakdowns (-1) and repairs (+1), ``times`` ascending."""
    def set_shares(self, shares: np.ndarray) -> None:
        """Point the allocation-share routing at ``shares`` (``[R, W]`` float64, rows summing to 1)."""
    def run_until(self, until: float) -> None:
        """Process every order event before ``until``; the clock then reads ``until``."""
    def on_state_change(self) -> None:
        """Read the pick servers again (AGVs, outages) and start waiting picks if they grew."""
    def station_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """Per warehouse: (busy pick server-hours, available pick server-hours) up to now."""
    def backlog_areas(self) -> np.ndarray:
        """Per warehouse: the backlog's time integral up to now (shipment-hours)."""
    def backlog_peaks(self) -> tuple[np.ndarray, int]:
        """``(per warehouse, network)``: the largest backlog reached so far."""
    def counters(self) -> tuple[int, int, int, int, int, float, float]:
        """``(created, delivered, on_time, lost, shipments, cost, co2_kg)`` up to now."""
    def columns(self, adopt: bool = True) -> dict[str, np.ndarray]:
        """The records as integer-coded columns (:data:`RECORD_COLUMNS`), sorted by order then shipment."""
    def release_records(self) -> None:
        """Free the record storage (after :meth:`columns`)."""
