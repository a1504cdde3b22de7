"""Every window ``[start_h, end_h)`` means what it says, on both engines, to the instant.

Tiny deterministic networks (deterministic pick, pack and transit; departures on a fixed
clock; more parcels than a departure takes) make the departures countable by hand: a dock
ships ``min(capacity, waiting)`` parcels at each departure, none while its warehouse is closed
or its parcels' region's lanes are closed. At an instant where a window opens or closes and a
departure is due, the agent's change comes first in both engines: a departure at an outage's
start finds the warehouse closed, one at its end finds it open.
"""

from __future__ import annotations

import numpy as np
import pytest

from twin.scenario.loader import validate_scenario
from twin.scenario.schema import Scenario
from twin.sim.model import FulfillmentModel

ENGINES = ["simpy", "kernel"]
CAP = 4  # ambient parcels per departure of each carrier


def _scenario(*, disruptions=(), events=(), tick_h: float = 1.0, rate: float = 20.0, interval: float = 1.0,
              horizon: float = 16.0) -> Scenario:
    """Two warehouses ``w0``, ``w1`` next to regions ``r0``, ``r1`` (nearest routing: ``r0`` from
    ``w0``, ``r1`` from ``w1`` while both are open); carrier ``c0`` carries into ``r0``, ``c1``
    into ``r1``, each every ``interval`` hours from ``interval`` on with room for ``CAP``
    parcels. ``rate`` orders per hour, half per region, one line each; a parcel reaches its dock
    0.02 h after its order arrives. At 20/h each dock gets 10 parcels an hour, more than 4."""
    def warehouse(i: int) -> dict:
        return {"name": f"w{i}", "lat": 30.0, "lon": 110.0 + 2 * i,
                "pick": {"agvs": 100, "lines_per_agv_h": 100, "pick_time": "deterministic"},
                "pack": {"stations": 100, "time_h": 0.01, "distribution": "deterministic"},
                "stock": {"units_per_sku": 1_000_000}}

    def carrier(i: int) -> dict:
        return {"name": f"c{i}", "regions": [f"r{i}"], "departure_interval_h": interval,
                "first_departure_h": interval, "capacity": CAP,
                "transit": {"base_h": 2.0, "distribution": "deterministic"}}

    doc = {"name": "windows", "horizon_h": horizon, "drain_h": 30.0, "tick_h": tick_h,
           "warehouses": [warehouse(0), warehouse(1)],
           "regions": [{"name": f"r{i}", "lat": 30.0, "lon": 110.0 + 2 * i, "weight": 1.0} for i in range(2)],
           "carriers": [carrier(0), carrier(1)],
           "demand": {"base_rate_per_h": rate, "lines_per_order": 1.0, "skus": {"count": 3, "cold_share": 0.0}},
           "replenishment": {"mode": "none"},
           "weather": {"events": list(events)},
           "disruptions": list(disruptions),
           "policy": {"routing": {"name": "nearest_with_stock", "allow_split": False}}}
    return validate_scenario(doc, "windows")


def _records(sc: Scenario, engine: str, seed: int = 0) -> dict[str, np.ndarray]:
    m = FulfillmentModel(sc, seed=seed, engine=engine)
    m.run()
    return m.engine.finish(m.end_time)


def _shipped(col: dict[str, np.ndarray], t: float, **where: int) -> int:
    """Parcels that left at the departure at ``t`` (exactly), from the given warehouse /
    carrier / region."""
    mask = col["shipped_at"] == t
    for k, v in where.items():
        mask &= col[k] == v
    return int(mask.sum())


# ------------------------------------------------------------------------------ outages
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("window", [(1.0, 2.0), (5.0, 8.0), (4.5, 6.5)], ids=["first-departure", "5-8", "4.5-6.5"])
def test_warehouse_outage_closes_departures_exactly_in_its_window(engine: str, window: tuple[float, float]) -> None:
    """``w0`` is closed during ``[start, end)``: its departures at ``start`` (and each one
    before ``end``) ship nothing; the one at ``end`` ships a full load (its dock waited).
    ``w1`` ships a full load at every departure (it takes ``r0``'s orders meanwhile).
    The window ``[1, 2)`` starts on the first departure and is one interval long: the case the
    reference's SimPy scheduling order used to get wrong at both edges."""
    start, end = window
    sc = _scenario(disruptions=[{"type": "warehouse_outage", "warehouse": "w0", "start_h": start, "end_h": end}])
    col = _records(sc, engine)
    for t in np.arange(1.0, 16.0):
        got = _shipped(col, t, warehouse=0)
        if start <= t < end:
            assert got == 0, f"{engine}: w0 shipped {got} parcels at {t} h, inside its outage {window}"
        elif t >= 2.0:  # by then every dock holds more than a load
            assert got == CAP, f"{engine}: w0 shipped {got} at {t} h, outside its outage {window}; want {CAP}"
        if t >= 2.0:
            assert _shipped(col, t, warehouse=1, carrier=1) == CAP, (engine, t)
    if end.is_integer():
        assert _shipped(col, end, warehouse=0) == CAP  # the departure on the end: open again
    # nothing left w0 between departures either (and nothing at all inside the window)
    sh = col["shipped_at"][col["warehouse"] == 0]
    assert not ((sh >= start) & (sh < end)).any()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("window", [(1.0, 2.0), (5.0, 8.0)], ids=["first-departure", "5-8"])
def test_carrier_capacity_loss_applies_exactly_in_its_window(engine: str, window: tuple[float, float]) -> None:
    """``c0`` loses half its room during ``[start, end)``: each of its departures at ``w0`` from
    ``start`` to before ``end`` takes ``CAP // 2`` parcels, the others ``CAP``; ``c1`` is
    untouched."""
    start, end = window
    sc = _scenario(disruptions=[{"type": "carrier_capacity_loss", "carrier": "c0", "fraction": 0.5,
                                 "start_h": start, "end_h": end}])
    col = _records(sc, engine)
    for t in np.arange(2.0, 16.0):
        want = CAP // 2 if start <= t < end else CAP
        assert _shipped(col, t, warehouse=0, carrier=0) == want, (engine, t, window)
        assert _shipped(col, t, warehouse=1, carrier=1) == CAP, (engine, t, window)
    if start >= 1.0:
        assert _shipped(col, start, warehouse=0, carrier=0) == CAP // 2


# ------------------------------------------------------------------------------ weather events
@pytest.mark.parametrize("engine", ENGINES)
def test_lane_closure_off_the_ticks_is_exact(engine: str) -> None:
    """A typhoon closes ``r0``'s lanes from 10.25 h to 12.75 h, ticks of 0.5 h, departures every
    0.25 h: no parcel leaves into ``r0`` in ``[10.25, 12.75)`` (not even at 10.25, inside the
    10 h tick); at 12.75 (inside the 12.5 h tick) a full load leaves; ``r1`` ships throughout."""
    ev = {"name": "typhoon", "regions": ["r0"], "start_h": 10.25, "end_h": 12.75, "closes_lanes": True}
    sc = _scenario(events=[ev], tick_h=0.5, interval=0.25)
    col = _records(sc, engine)
    into0 = col["shipped_at"][col["region"] == 0]
    assert not ((into0 >= 10.25) & (into0 < 12.75)).any(), sorted(into0[(into0 >= 10) & (into0 < 13)])
    assert _shipped(col, 12.75, region=0) == CAP  # 2.5 h of parcels waited
    assert ((into0 >= 9.0) & (into0 < 10.25)).sum() > 0
    into1 = col["shipped_at"][col["region"] == 1]
    assert ((into1 >= 10.25) & (into1 < 12.75)).sum() > 10


def _arrivals_per_quarter(col: dict[str, np.ndarray], lo: float, hi: float, region: int | None = None) -> list[int]:
    _, first = np.unique(col["order_id"], return_index=True)
    created = col["created_at"][first]
    if region is not None:
        created = created[col["region"][first] == region]
    edges = np.arange(lo, hi + 1e-9, 0.25)
    return np.histogram(created, bins=edges)[0].tolist()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["demand_surge", "weather_event"])
def test_demand_multiplier_window_off_the_ticks_is_exact(engine: str, kind: str) -> None:
    """A x100 demand multiplier in ``[10.25, 10.75)`` with 0.5 h ticks (a demand surge, or a
    scripted weather event's demand multiplier) on 40 orders/h: ~10 orders arrive in each
    quarter hour around it and ~1,000 in each of its two quarters. Applied on whole ticks
    instead, the quarter [10.25, 10.5) would see ~10 and [10.75, 11) ~1,000."""
    if kind == "demand_surge":
        sc = _scenario(disruptions=[{"type": "demand_surge", "multiplier": 100.0, "start_h": 10.25, "end_h": 10.75}],
                       tick_h=0.5, rate=40.0, horizon=12.0)
    else:
        ev = {"name": "rush", "regions": ["r0", "r1"], "start_h": 10.25, "end_h": 10.75, "demand_multiplier": 100.0}
        sc = _scenario(events=[ev], tick_h=0.5, rate=40.0, horizon=12.0)
    q = _arrivals_per_quarter(_records(sc, engine), 9.75, 11.25)
    # quarters: [9.75, 10), [10, 10.25), [10.25, 10.5), [10.5, 10.75), [10.75, 11), [11, 11.25)
    # Poisson(10): <= 30 with probability 1 - 1e-7; Poisson(1000): within +-150 (4.7 sd)
    for i in (0, 1, 4, 5):
        assert q[i] <= 30, (engine, kind, q)
    for i in (2, 3):
        assert abs(q[i] - 1000) <= 150, (engine, kind, q)


@pytest.mark.parametrize("engine", ENGINES)
def test_regional_demand_multiplier_zero_stops_orders_exactly(engine: str) -> None:
    """A weather event with demand multiplier 0 over ``r0`` in ``[10.25, 12.75)`` (0.5 h ticks):
    not one ``r0`` order is created inside it, over 10 seeds; ``r1``'s keep arriving, and
    ``r0``'s start again from 12.75 (not from the 13 h tick)."""
    ev = {"name": "blackout", "regions": ["r0"], "start_h": 10.25, "end_h": 12.75, "demand_multiplier": 0.0}
    sc = _scenario(events=[ev], tick_h=0.5, rate=40.0, horizon=14.0)
    late0 = 0
    for seed in range(10):
        col = _records(sc, engine, seed)
        _, first = np.unique(col["order_id"], return_index=True)
        created, region = col["created_at"][first], col["region"][first]
        c0 = created[region == 0]
        assert not ((c0 >= 10.25) & (c0 < 12.75)).any(), (engine, seed)
        assert ((created[region == 1] >= 10.25) & (created[region == 1] < 12.75)).sum() > 0
        late0 += int(((c0 >= 12.75) & (c0 < 13.0)).sum())
    assert late0 > 10  # ~5 per seed: r0's orders arrive again in the 12.5 h tick's second half


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("engine", ENGINES)
def test_windows_off_the_ticks_are_deterministic(engine: str) -> None:
    """Restarting arrivals inside ticks keeps a seed's run reproducible."""
    ev = {"name": "typhoon", "regions": ["r0"], "start_h": 3.25, "end_h": 5.75, "closes_lanes": True,
          "demand_multiplier": 0.5}
    sc = _scenario(events=[ev], tick_h=0.5, interval=0.25, horizon=8.0,
                   disruptions=[{"type": "demand_surge", "multiplier": 3.0, "start_h": 2.1, "end_h": 4.3},
                                {"type": "warehouse_outage", "warehouse": "w1", "start_h": 4.0, "end_h": 6.0}])
    a, b = _records(sc, engine, 3), _records(sc, engine, 3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = _records(sc, engine, 4)
    assert len(c["order_id"]) != len(a["order_id"]) or not np.array_equal(c["created_at"], a["created_at"])
