"""The backlog (shipments routed, not yet shipped) as the report and the KPIs show it: time
averages and exact peaks, on both engines, checked against the records."""

from __future__ import annotations

import numpy as np
import pytest

import twin
from twin.results.kpis import backlog_hours
from twin.scenario.loader import scale_scenario
from twin.sim.model import FulfillmentModel


def _run(engine: str) -> tuple[FulfillmentModel, dict[str, np.ndarray]]:
    sc = scale_scenario(twin.load_scenario("warehouse_outage"), 0.03)
    # departures off the tick grid, so parcels leave inside ticks, not only at their edges
    carriers = [c.model_copy(update={"first_departure_h": 0.3 + 0.1 * i, "departure_interval_h": 1.5})
                for i, c in enumerate(sc.carriers)]
    sc = sc.model_copy(update={"horizon_h": 30.0, "drain_h": 24.0, "carriers": carriers})
    m = FulfillmentModel(sc, seed=5, engine=engine)
    m.run()
    return m, m.engine.finish(m.end_time)


def _exact_peak(routed: np.ndarray, shipped: np.ndarray, end: float) -> int:
    """The largest number in the backlog at any moment: +1 at routing, -1 at shipping; at one
    instant the departures count first."""
    ok = ~np.isnan(routed)
    t = np.concatenate([routed[ok], np.where(np.isnan(shipped[ok]), np.inf, shipped[ok])])
    d = np.concatenate([np.ones(ok.sum(), dtype=np.int64), -np.ones(ok.sum(), dtype=np.int64)])
    order = np.lexsort((d, t))
    return int(np.cumsum(d[order]).max()) if len(d) else 0


@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_backlog_series_is_the_time_average_of_the_records(engine: str) -> None:
    m, col = _run(engine)
    ts = m.timeseries
    edges = np.r_[0.0, ts["time_h"].to_numpy()]
    assert ts["backlog"].max() > 5  # the outage builds a backlog
    for i, name in enumerate(m.net.warehouses):
        mine = col["warehouse"] == i
        r, s = col["routed_at"][mine], col["shipped_at"][mine]
        want = [backlog_hours(r, s, a, b) / (b - a) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        np.testing.assert_allclose(ts[f"backlog[{name}]"].to_numpy(), want, rtol=1e-9, atol=1e-9)
        assert int(ts[f"backlog_peak[{name}]"].iloc[-1]) == _exact_peak(r, s, m.end_time)
    want_total = [backlog_hours(col["routed_at"], col["shipped_at"], a, b) / (b - a)
                  for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_allclose(ts["backlog"].to_numpy(), want_total, rtol=1e-9, atol=1e-9)
    assert int(ts["backlog_peak"].iloc[-1]) == _exact_peak(col["routed_at"], col["shipped_at"], m.end_time)
    # the peak is reached between samples: above every tick's average
    assert ts["backlog_peak"].iloc[-1] > ts["backlog"].max()


def test_backlog_kpis_come_from_the_records() -> None:
    res = twin.simulate(scale_scenario(twin.load_scenario("warehouse_outage"), 0.03), seed=5)
    o = res.orders
    H = res.scenario.horizon_h
    want = backlog_hours(o["routed_at"].to_numpy(), o["shipped_at"].to_numpy(), 0.0, H) / H
    assert res.kpis["backlog_mean"] == pytest.approx(want, rel=1e-12)
    assert res.kpis["backlog_max"] == _exact_peak(o["routed_at"].to_numpy(), o["shipped_at"].to_numpy(), 0.0)
    assert res.kpis["backlog_max"] > res.kpis["backlog_mean"] > 0


def test_backlog_hours_by_hand() -> None:
    routed = np.array([0.0, 1.0, np.nan, 3.0])
    shipped = np.array([2.0, np.nan, np.nan, 3.5])
    # [0, 4): 2 + (4 - 1) + 0 + 0.5; [1, 3): 1 + 2 + 0 + 0
    assert backlog_hours(routed, shipped, 0.0, 4.0) == pytest.approx(5.5)
    assert backlog_hours(routed, shipped, 1.0, 3.0) == pytest.approx(3.0)
