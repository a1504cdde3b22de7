"""One record schema, and the guards that the engines' running counters agree with their records.

The counters (``engine.counters``: :class:`twin.sim.records.Counters`) feed the time series and
the RL rewards; the KPIs are computed from the order records. Both must count the same orders:
at the end of a run (created, delivered, on time, lost, shipments, cost, CO2) and at every
time-series row (created, delivered, lost, in flight, on-time rate up to that row's time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import twin
from ext import _kernel
from twin.results.kpis import order_table
from twin.scenario.loader import scale_scenario, validate_scenario
from twin.scenario.schema import Scenario
from twin.sim.model import FulfillmentModel
from twin.sim.records import (
    COLUMNS,
    DERIVED_COLUMNS,
    RECORD_DTYPES,
    STATUS,
    STATUS_NAMES,
    Counters,
    Status,
    is_on_time,
    orders_frame,
)

ENGINES = ["simpy", "kernel"]


# ------------------------------------------------------------------------------ the schema
def test_status_enum_is_the_one_definition() -> None:
    assert [s.name for s in Status] == STATUS_NAMES
    assert [int(s) for s in Status] == list(range(len(Status)))
    assert STATUS == {s.name: int(s) for s in Status}
    assert Status.queued == 0 and Status.delivered == 5 and Status.backordered == 7


def test_kernel_status_codes_are_the_enum() -> None:
    """The kernel's compiled ``ST_*`` constants (exposed as ``STATUS_CODES``) equal :class:`Status`."""
    assert _kernel.STATUS_CODES == {s.name: int(s) for s in Status}


def test_kernel_column_order_is_the_schema() -> None:
    assert list(_kernel.RECORD_COLUMNS) == list(RECORD_DTYPES)
    assert list(RECORD_DTYPES) + DERIVED_COLUMNS == COLUMNS


def test_is_on_time_is_scalar_and_array_safe() -> None:
    assert is_on_time(3.0, 3.0) is True and is_on_time(3.5, 3.0) is False
    assert is_on_time(float("nan"), 3.0) is False
    got = is_on_time(np.array([1.0, 2.0, np.nan, 4.0]), np.array([2.0, 2.0, 9.0, 3.0]))
    np.testing.assert_array_equal(got, [True, True, False, False])


# ------------------------------------------------------------------------------ scenarios
def _scenario(kind: str) -> Scenario:
    """Small runs (under a second each): ``late`` is the baseline with an 8 h express promise
    (some orders late); ``lost`` a warehouse outage with 3 units per SKU (stock-outs lose
    orders, some split); ``backorder`` the same with backorders given up after 20 h (lost
    orders at their give-up time, some still backordered at the end)."""
    base = "baseline" if kind == "late" else "warehouse_outage"
    doc = scale_scenario(twin.load_scenario(base), 0.02).model_dump(mode="json")
    doc.update(horizon_h=24, drain_h=12)
    doc["demand"]["service_levels"]["express"]["promise_h"] = 8.0
    if kind != "late":
        for w in doc["warehouses"]:
            w["stock"]["units_per_sku"] = 3
        doc["demand"]["unfulfillable"] = "backorder" if kind == "backorder" else "lost"
        doc["demand"]["backorder_max_h"] = 20.0
    return validate_scenario(doc, f"{base}-{kind}")


_RUNS: dict[tuple[str, str], tuple] = {}


def _run(engine: str, kind: str) -> tuple[Scenario, Counters, pd.DataFrame, pd.DataFrame]:
    """``(scenario, counters at the end, orders frame, time series)``, one run per case."""
    key = (engine, kind)
    if key not in _RUNS:
        sc = _scenario(kind)
        m = FulfillmentModel(sc, seed=0, engine=engine)
        m.run()
        counters = m.engine.counters
        orders = orders_frame(m.engine.finish(m.end_time), m.net, m.end_time)
        assert m.engine.counters == counters  # handing the records over counts nothing more
        _RUNS[key] = (sc, counters, orders, m.timeseries)
    return _RUNS[key]


CASES = [(e, k) for e in ENGINES for k in ("late", "lost", "backorder")]


@pytest.mark.parametrize(("engine", "kind"), CASES)
def test_the_cases_cover_late_lost_and_backordered(engine: str, kind: str) -> None:
    """The guards below only guard what happens: each case has what it is for."""
    _, c, orders, _ = _run(engine, kind)
    assert 0 < c.on_time < c.delivered  # some late orders
    if kind != "late":
        assert c.lost > 0
    if kind == "backorder":
        assert (orders["status"] == "backordered").any()


# ------------------------------------------------------------------------------ the guards
@pytest.mark.parametrize(("engine", "kind"), CASES)
def test_final_counters_equal_the_records(engine: str, kind: str) -> None:
    _, c, orders, _ = _run(engine, kind)
    t = order_table(orders)
    assert c.created == len(t)
    assert c.delivered == int((t["status"] == "delivered").sum())
    assert c.on_time == int(t["on_time"].sum())
    assert c.lost == int((t["status"] == "lost").sum())
    assert c.in_flight == int((t["status"] == "in_flight").sum())
    assert c.shipments == int(orders["warehouse"].notna().sum())
    assert c.cost == pytest.approx(float(orders["cost"].sum()), rel=1e-12)
    assert c.co2_kg == pytest.approx(float(orders["co2_kg"].sum()), rel=1e-12)


@pytest.mark.parametrize(("engine", "kind"), CASES)
def test_time_series_equals_the_records_at_each_row(engine: str, kind: str) -> None:
    """Each row counts the orders the records say were created, delivered (the last parcel) or
    lost (unroutable: at creation, or at the backorder give-up) by the row's time."""
    sc, _, orders, ts = _run(engine, kind)
    t = order_table(orders)
    d = sc.demand
    lost_at = t["created_at"].to_numpy() + (d.backorder_max_h if d.unfulfillable == "backorder" else 0.0)
    lost_at = np.where(t["status"] == "lost", lost_at, np.inf)
    delivered_at = t["delivered_at"].fillna(np.inf).to_numpy()  # NaN unless the order was delivered
    on_time = t["on_time"].to_numpy()
    T = ts["time_h"].to_numpy()[:, None]
    created = (t["created_at"].to_numpy() <= T).sum(axis=1)
    delivered = (delivered_at <= T).sum(axis=1)
    lost = (lost_at <= T).sum(axis=1)
    n_on_time = ((delivered_at <= T) & on_time).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(delivered > 0, n_on_time / delivered, np.nan)
    np.testing.assert_array_equal(ts["orders_created"].to_numpy(), created)
    np.testing.assert_array_equal(ts["orders_delivered"].to_numpy(), delivered)
    np.testing.assert_array_equal(ts["orders_lost"].to_numpy(), lost)
    np.testing.assert_array_equal(ts["orders_in_flight"].to_numpy(), created - delivered - lost)
    np.testing.assert_array_equal(ts["on_time_rate"].to_numpy(dtype=float), rate)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["late", "lost"])
def test_engine_columns_follow_the_schema(engine: str, kind: str) -> None:
    """Both engines write the schema's columns in its order and dtypes, with codes of
    :class:`Status` (the kernel both ways: adopting its arrays and copying them)."""
    sc = _scenario(kind)
    m = FulfillmentModel(sc, seed=0, engine=engine)
    m.run()
    outs = [m.engine.k.columns(adopt=False), m.engine.finish(m.end_time)] if engine == "kernel" else [
        m.engine.finish(m.end_time)]
    for col in outs:
        assert list(col) == list(RECORD_DTYPES)
        assert {k: v.dtype for k, v in col.items()} == RECORD_DTYPES
        assert set(np.unique(col["status"])) <= {int(s) for s in Status}
        delivered = col["status"] == Status.delivered
        assert delivered.any() and np.isfinite(col["delivered_at"][delivered]).all()
        assert np.isnan(col["delivered_at"][~delivered]).all()
        lost = col["status"] == Status.lost
        assert (lost.any() or kind == "late") and (col["warehouse"][lost] == -1).all()
