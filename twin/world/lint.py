"""Every warning about a scenario that cannot work as meant, with the figures and what to change.

:func:`lint` runs :func:`twin.scenario.lint.lint_schema` (checks on the scenario alone) and the
checks that need the network's lanes (:attr:`Network.serves`) and the demand rate
(:class:`twin.world.demand.DemandRate`). ``twin validate`` prints the warnings beside the run's
size estimate and ``twin run`` before it starts; neither refuses a run for a warning (only the
size estimate, :meth:`twin.scenario.size.RunSize.check`, refuses).

**Capacity: the rule for "by far".** Each capacity check compares a demand over the horizon
``[0, horizon_h)`` (the network order rate of ``DemandRate.total`` every :data:`STEP_H` h,
before weather and surges) with a capacity of the whole network, as a fluid queue: work
above the capacity queues, and the queue is served at the capacity when demand falls below
it. It warns when the mean demand over the horizon is more than :data:`MEAN_FACTOR` (1.0)
times the capacity (the backlog grows for the whole horizon), or when the backlog at its
largest is more work than the capacity clears within the longest promise
(``demand.service_levels``' largest ``promise_h``: even running flat out, what queues then
misses every promise). A peak above the capacity whose backlog clears in time is what a peak
does, and gets no warning (the warning gives the figures: peak and mean against capacity, the
hours above it, the backlog's size, when, and its hours of work). The capacities are
network-wide sums, so the warnings are necessary conditions: a warehouse can be overloaded
while the network is not (the routing decides where orders go); disruptions, which only take
capacity away, are not counted.

* ``pick-capacity``: order lines per hour (orders x ``lines_per_order``) against the AGV
  fleets' lines per hour, ``agvs x lines_per_agv_h x duty x availability``, where duty is
  ``battery_h / (battery_h + charge_h)`` (the share not charging, as
  ``agents.warehouse.AGVFleetAgent``) and availability ``mtbf_h / (mtbf_h + mttr_h)`` (the
  long-run share up between breakdowns);
* ``pack-capacity``: shipments (at least one per order) against ``stations / time_h`` per
  warehouse;
* ``carrier-capacity``: parcels (at least one per order) against the linehaul room,
  ``capacity / departure_interval_h`` of each carrier at each warehouse it departs from. A
  warehouse's flow depends on the routing, so the check compares the network's flow with the
  sum of every warehouse's departures; a policy that puts each lane on one carrier has less
  room than this sum;
* ``reefer-capacity``: cold-chain parcels (``cold_chain_share`` of the orders) against
  ``reefer_capacity / departure_interval_h`` at the cold-storage warehouses.

The other checks: regions that no carrier serves (``region-no-carrier``) or that no lane with
reefer room reaches from a cold-storage warehouse (``cold-no-reefer``, when there are cold
orders), warehouses that no carrier departs from (``warehouse-no-carrier``), and with
``replenishment.mode: none`` a horizon's expected demand per SKU (lines x the SKU's
popularity) that the initial stock falls short of by more than :data:`STOCK_SHORT_SHARE` of
the lines (``stock-short``).
"""

from __future__ import annotations

import math

import numpy as np

from twin.scenario.lint import LintWarning, lint_schema
from twin.scenario.schema import AGVFleet, Scenario
from twin.world.demand import DemandRate
from twin.world.network import Network, build_network

__all__ = ["MEAN_FACTOR", "STEP_H", "STOCK_SHORT_SHARE", "lint", "pick_lines_per_h"]

#: Warn when the mean demand over the horizon exceeds this many times the capacity (or when the
#: backlog takes longer than the longest promise to clear; see the module's text).
MEAN_FACTOR = 1.0
#: Warn when the initial stock, never replenished, leaves more than this share of lines unserved.
STOCK_SHORT_SHARE = 0.05
#: The demand rate is evaluated every STEP_H hours over the horizon.
STEP_H = 0.25


def pick_lines_per_h(pick: AGVFleet) -> float:
    """Order lines per hour an AGV fleet picks in the long run: ``agvs x lines_per_agv_h x duty
    x availability`` (see the module's text)."""
    duty = 1.0 if pick.battery_h is None else pick.battery_h / (pick.battery_h + pick.charge_h)
    up = 1.0 if pick.mtbf_h is None else pick.mtbf_h / (pick.mtbf_h + pick.mttr_h)
    return pick.agvs * pick.lines_per_agv_h * duty * up


def _n(x: float) -> str:
    return "no limit" if math.isinf(x) else f"{x:,.0f}"


def _count(n: int, what: str) -> str:
    """``"1 carrier"``, ``"3 carriers"``."""
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


class _Demand:
    """The network order rate over the horizon, every :data:`STEP_H` hours."""

    def __init__(self, sc: Scenario) -> None:
        step = min(STEP_H, sc.horizon_h)
        self.t = np.arange(0.0, sc.horizon_h, step)
        self.step = step
        self.horizon_h = sc.horizon_h
        self.promise_h = max(s.promise_h for s in sc.demand.service_levels.values())
        self.rate = np.asarray(DemandRate(sc.demand).total(self.t), dtype=float)
        self.orders = float(self.rate.sum() * step)  # expected orders over the horizon

    def load(self, code: str, path: str, per_order: float, capacity: float, unit: str, need: str, have: str,
             advice: str) -> LintWarning | None:
        """A warning if ``per_order x`` the order rate (in ``unit``) exceeds ``capacity`` by far
        (the module's rule); ``need`` is the demand's text (``{peak}`` the figure at the peak),
        ``have`` the capacity's (``{cap}``)."""
        if math.isinf(capacity):
            return None
        flow = self.rate * per_order
        i = int(np.argmax(flow))
        peak, mean = float(flow[i]), float(flow.mean())
        # the fluid queue after each step: B_k = S_k - min(0, min_{j<=k} S_j), S the summed excess
        summed = np.cumsum((flow - capacity) * self.step)
        backlog = summed - np.minimum(0.0, np.minimum.accumulate(summed))
        k = int(np.argmax(backlog))
        most = float(backlog[k])
        work_h = most / capacity if capacity > 0 else math.inf
        if mean <= MEAN_FACTOR * capacity and work_h <= self.promise_h:
            return None
        if capacity > 0:
            hours = float((flow > capacity).sum() * self.step)
            over = (f"{peak / capacity:.2f}x capacity at the peak, {mean / capacity:.2f}x on average over the "
                    f"{self.horizon_h:g} h horizon, above it for ~{hours:,.0f} h; the backlog would reach "
                    f"~{most:,.0f} {unit} at t = {(k + 1) * self.step:g} h, {work_h:.1f} h of work at capacity (the "
                    f"longest promise is {self.promise_h:g} h)")
        else:
            over = f"none of it can be served in the {self.horizon_h:g} h horizon"
        msg = (f"at the peak (t = {self.t[i]:g} h) {self.rate[i]:,.0f} orders/h {need.format(peak=_n(peak))}; "
               f"{have.format(cap=_n(capacity))}: {over}; {advice}")
        return LintWarning(code, path, msg)


def _capacity_warnings(sc: Scenario, net: Network, dem: _Demand) -> list[LintWarning]:
    d = sc.demand
    W = net.n_warehouses
    out = []
    pick = sum(pick_lines_per_h(w.pick) for w in sc.warehouses)
    out.append(dem.load(
        "pick-capacity", "warehouses.*.pick.agvs", d.lines_per_order, pick, "lines",
        f"x {d.lines_per_order:g} lines need {{peak}} pick lines/h",
        f"the {_count(W, 'warehouse')} can pick {{cap}} lines/h (agvs x lines_per_agv_h x battery duty x availability)",
        "add AGVs (warehouses.*.pick.agvs) or faster picks (lines_per_agv_h), or lower demand.base_rate_per_h"))
    pack = sum(w.pack.stations / w.pack.time_h if w.pack.time_h > 0 else math.inf for w in sc.warehouses)
    out.append(dem.load(
        "pack-capacity", "warehouses.*.pack", 1.0, pack, "shipments", "need at least {peak} shipments/h packed",
        f"the {_count(W, 'warehouse')} can pack {{cap}} shipments/h (stations / time_h)",
        "add pack stations (warehouses.*.pack.stations) or shorten pack.time_h, or lower demand.base_rate_per_h"))

    departs = net.serves.any(axis=2)  # [C, W]: carrier c departs from warehouse w (it has a lane there)
    per_h = np.array([c.capacity / c.departure_interval_h for c in sc.carriers])
    reefer_per_h = np.array([c.reefer_capacity / c.departure_interval_h for c in sc.carriers])
    room = float(per_h @ departs.sum(axis=1))
    out.append(dem.load(
        "carrier-capacity", "carriers.*.capacity", 1.0, room, "parcels", "need at least {peak} parcels/h of linehaul",
        f"the departures of {_count(len(sc.carriers), 'carrier')} carry {{cap}} parcels/h (capacity / "
        "departure_interval_h at each warehouse served, all carriers together)",
        "raise carriers.*.capacity or depart more often (lower departure_interval_h), or lower "
        "demand.base_rate_per_h"))
    if d.cold_chain_share > 0:
        cold_room = float(reefer_per_h @ (departs & net.cold_capable[None, :]).sum(axis=1))
        out.append(dem.load(
            "reefer-capacity", "carriers.*.reefer_capacity", d.cold_chain_share, cold_room, "cold parcels",
            f"x {d.cold_chain_share:g} cold-chain share need {{peak}} reefer parcels/h",
            f"the departures from {_count(int(net.cold_capable.sum()), 'cold-storage warehouse')} have reefer room "
            f"for {{cap}} parcels/h (reefer_capacity / departure_interval_h)",
            "raise carriers.*.reefer_capacity at the cold-storage warehouses, or lower demand.cold_chain_share"))
    return [w for w in out if w is not None]


def _lane_warnings(sc: Scenario, net: Network, dem: _Demand) -> list[LintWarning]:
    out = []
    horizon = f"the {sc.horizon_h:g} h horizon"
    no_lane = ~net.serves.any(axis=(0, 1))  # [R]
    if no_lane.any():
        share = float(net.region_weight[no_lane].sum())
        names = [r for r, x in zip(net.regions, no_lane) if x]
        out.append(LintWarning(
            "region-no-carrier", "carriers.*.regions",
            f"{len(names)} of {net.n_regions} regions have no carrier ({_names(names)}): {share:.1%} of demand, "
            f"~{share * dem.orders:,.0f} orders over {horizon}, are lost; add them to a carrier's regions "
            "(carriers.*.regions, or regions: all)"))
    idle = ~net.serves.any(axis=(0, 2))  # [W]
    for w in np.flatnonzero(idle):
        cfg = sc.warehouses[w]
        out.append(LintWarning(
            "warehouse-no-carrier", f"warehouses[{w}]",
            f"no carrier departs from {cfg.name}, so no order can be routed there (its {cfg.pick.agvs} AGVs, "
            f"{pick_lines_per_h(cfg.pick):,.0f} lines/h, stand idle); add it to a carrier's warehouses "
            "(carriers.*.warehouses, or warehouses: all)"))
    if sc.demand.cold_chain_share > 0:
        reefer = np.array([c.reefer_capacity > 0 for c in sc.carriers])
        cold_lane = (net.serves & reefer[:, None, None] & net.cold_capable[None, :, None]).any(axis=(0, 1))
        cut = ~cold_lane & ~no_lane  # regions without any carrier are reported above
        if cut.any():
            share = float(net.region_weight[cut].sum())
            names = [r for r, x in zip(net.regions, cut) if x]
            cold = share * sc.demand.cold_chain_share * dem.orders
            out.append(LintWarning(
                "cold-no-reefer", "carriers.*.reefer_capacity",
                f"{len(names)} of {net.n_regions} regions ({_names(names)}; {share:.1%} of demand) have no lane with "
                f"reefer room from a cold-storage warehouse: their cold-chain orders (cold_chain_share "
                f"{sc.demand.cold_chain_share:g}, ~{cold:,.0f} over {horizon}) are lost; give a carrier that serves "
                "them reefer_capacity from a cold_storage warehouse"))
    return out


def _stock_warnings(sc: Scenario, net: Network, dem: _Demand) -> list[LintWarning]:
    if sc.replenishment.mode != "none":
        return []
    lines = dem.orders * sc.demand.lines_per_order
    wanted = lines * net.sku_p  # [S] expected lines per SKU over the horizon
    held = net.initial_stock.sum(axis=0)
    short = np.maximum(wanted - held, 0.0)
    if short.sum() <= STOCK_SHORT_SHARE * lines:
        return []
    n_short = int((short > 0).sum())
    return [LintWarning(
        "stock-short", "warehouses.*.stock.units_per_sku",
        f"with replenishment.mode none, {sc.horizon_h:g} h of demand ask for ~{lines:,.0f} lines, the warehouses hold "
        f"{int(held.sum()):,} units; {n_short} of {net.n_skus} SKUs run out: ~{short.sum():,.0f} lines "
        f"({short.sum() / lines:.1%}) cannot be served; raise warehouses.*.stock.units_per_sku (or sku_fraction), or "
        "set replenishment.mode to reorder_point")]


def lint(sc: Scenario, network: Network | None = None) -> list[LintWarning]:
    """Every warning about ``sc`` (a validated scenario), in the order: capacity, lanes, stock,
    windows. ``network``: ``sc``'s network if it is built already."""
    net = network if network is not None else build_network(sc)
    dem = _Demand(sc)
    return [*_capacity_warnings(sc, net, dem), *_lane_warnings(sc, net, dem), *_stock_warnings(sc, net, dem),
            *lint_schema(sc)]
