"""The levers planners pull under stress, on both engines: pick priority by promise and carrier
spill. Each changes the KPIs in the expected direction on a constructed overload."""

from __future__ import annotations

import numpy as np
import pytest

import twin
from twin.scenario.loader import validate_scenario
from twin.sim.model import FulfillmentModel

ENGINES = ("kernel", "simpy")


def _order_on_time(orders):  # noqa: ANN001, ANN202 - per service level: share of orders on time
    g = orders.groupby("order_id").agg(sl=("service_level", "first"), d=("delivered_at", "max"),
                                       p=("promised_at", "first"))
    return {k: float(v) for k, v in g.assign(ok=g.d <= g.p).groupby("sl")["ok"].mean().items()}


def _pick_overload(priority: str) -> twin.Scenario:
    """One warehouse of 8 AGVs (80 lines/h) under 200 orders/h for 6 h: the pick queue grows
    to ~720 and takes ~9 h to clear. 30% of orders are express (promise 8 h): 60/h, inside
    capacity if they go first."""
    return twin.load_scenario("erlang_c", {
        "horizon_h": 12, "drain_h": 40,
        "demand.base_rate_per_h": 200, "demand.profile": [[0, 1.0], [6, 1.0], [6.01, 0.0]],
        "demand.service_levels": {"express": {"share": 0.3, "promise_h": 8},
                                  "standard": {"share": 0.7, "promise_h": 48}},
        "warehouses.shanghai.pick.priority": priority,
    })


@pytest.mark.parametrize("engine", ENGINES)
def test_express_first_picking_raises_express_on_time(engine: str) -> None:
    res = {p: twin.simulate(_pick_overload(p), seed=3, engine=engine)
           for p in ("fifo", "express_first", "earliest_promise")}
    ot = {p: _order_on_time(r.orders) for p, r in res.items()}
    # FIFO: express orders wait behind the whole queue (up to ~9 h, + departure + 4 h transit)
    assert ot["fifo"]["express"] < 0.5
    # express first: they jump it and are all but all on time
    assert ot["express_first"]["express"] > 0.98
    assert ot["express_first"]["express"] > ot["fifo"]["express"] + 0.4
    # the standard orders pay for it in wait, still inside their 48 h
    wait = {p: np.nanmean((r.orders.pick_start - r.orders.routed_at)[r.orders.service_level == "standard"])
            for p, r in res.items()}
    assert wait["express_first"] > wait["fifo"]
    assert ot["express_first"]["standard"] == pytest.approx(1.0)
    # earliest promise first: an express order (promise 8 h) goes ahead of a standard one
    # routed up to 40 h before it, so here it is express first too
    assert ot["earliest_promise"]["express"] > 0.98
    # same orders on every priority (common random numbers)
    n = {p: r.orders.order_id.nunique() for p, r in res.items()}
    assert len(set(n.values())) == 1 and n["fifo"] > 900


def _spill_case(spill: bool) -> twin.Scenario:
    """``cheapest`` ships everything by the cheap carrier, whose departures (20 parcels/h) are far
    below the 60 orders/h; the dear carrier has room. With spill, left-behind parcels take it."""
    sc = twin.load_scenario("erlang_c", {
        "horizon_h": 10, "drain_h": 60, "demand.base_rate_per_h": 60,
        "warehouses.shanghai.pick.agvs": 20,
        "policy.routing.name": "cheapest", "policy.routing.spill": spill,
    })
    doc = sc.model_dump(mode="json")
    cheap = dict(doc["carriers"][0], name="cheap_road", capacity=20,
                 cost={"per_parcel": 3.0, "per_km": 0.0, "reefer_surcharge": 0.0})
    dear = dict(doc["carriers"][0], name="dear_air", capacity=1000, first_departure_h=1.5,
                cost={"per_parcel": 12.0, "per_km": 0.0, "reefer_surcharge": 0.0})
    doc["carriers"] = [cheap, dear]
    return validate_scenario(doc, "spill case")


@pytest.mark.parametrize("engine", ENGINES)
def test_spill_cuts_the_dock_wait_and_uses_the_carrier_with_room(engine: str) -> None:
    off = twin.simulate(_spill_case(False), seed=2, engine=engine)
    on = twin.simulate(_spill_case(True), seed=2, engine=engine)
    for r in (off, on):
        assert r.kpis["orders_created"] == off.kpis["orders_created"] > 400
        assert r.kpis["orders_delivered"] == r.kpis["orders_created"]
    dock = {k: float(np.nanmean(r.orders.shipped_at - r.orders.pick_end)) for k, r in (("off", off), ("on", on))}
    # without spill the cheap carrier's backlog grows by ~40 parcels an hour: hours at the dock
    assert dock["off"] > 3.0
    # with spill, a parcel left behind leaves on the next departure of the dear carrier (< 1 h later)
    assert dock["on"] < 1.5 and dock["on"] < dock["off"] / 3
    carriers = on.orders.carrier.value_counts()
    assert off.orders.carrier.eq("cheap_road").all()
    assert carriers["dear_air"] > 100 and carriers["cheap_road"] > 100
    # the spilled parcels are priced at the carrier that took them (the records' cost)
    per_parcel = on.orders.groupby("carrier")["cost"].mean()
    assert per_parcel["dear_air"] - per_parcel["cheap_road"] == pytest.approx(9.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_spill_keeps_the_counters_equal_to_the_records(engine: str) -> None:
    m = FulfillmentModel(_spill_case(True), seed=5, engine=engine)
    m.run()
    c = m.engine.counters
    rec = m.engine.finish(m.end_time)
    ship = rec["shipment_id"] >= 0
    assert c.cost == pytest.approx(float(rec["cost"][ship].sum()), rel=1e-12)
    assert c.co2_kg == pytest.approx(float(rec["co2_kg"][ship].sum()), rel=1e-12)


# ------------------------------------------------------------------ promise_aware
def test_late_probability_and_next_departure_by_hand() -> None:
    import math

    from twin.policies.promise import late_probability, next_departure
    from twin.scenario.distributions import DISTRIBUTIONS, dist_spec

    assert next_departure(0.3, 1.0, 2.0) == 1.0
    assert next_departure(1.0, 1.0, 2.0) == 1.0
    assert next_departure(1.01, 1.0, 2.0) == 3.0
    assert next_departure(6.5, 1.0, 2.0) == 7.0
    # exponential: P(T > s) = exp(-s / mean)
    assert late_probability(2.0, 4.0, DISTRIBUTIONS["exponential"], 0, 0) == pytest.approx(math.exp(-0.5))
    # lognormal with cv 0.3: sigma^2 = ln(1 + 0.09); at the median the probability is 1/2
    spec = dist_spec("lognormal", 0.3)
    median = 10.0 * math.exp(spec.mu)
    assert late_probability(median, 10.0, spec.code, spec.sigma, spec.mu) == pytest.approx(0.5)
    # ... and one sigma above it, 1 - Phi(1)
    assert late_probability(median * math.exp(spec.sigma), 10.0, spec.code, spec.sigma, spec.mu) == pytest.approx(
        0.15865525393145707)
    assert late_probability(-1.0, 10.0, spec.code, spec.sigma, spec.mu) == 1.0
    assert late_probability(9.9, 10.0, DISTRIBUTIONS["deterministic"], 0, 0) == 1.0
    assert late_probability(10.1, 10.0, DISTRIBUTIONS["deterministic"], 0, 0) == 0.0


def _two_carriers() -> twin.Scenario:
    """One warehouse, one region 300 km away, a cheap slow road carrier (3 CNY, 8 h + 300/15 =
    28 h mean transit) and a dear fast one (12 CNY, 2 h + 300/100 = 5 h). Express promises 24 h,
    standard 72 h. promise_aware: express by the fast carrier (the road one is late with
    probability ~0.7, 50 CNY x 0.7 > 9 CNY), standard by the road (never late)."""
    sc = twin.load_scenario("erlang_c", {
        "horizon_h": 24, "drain_h": 80, "demand.base_rate_per_h": 30,
        "regions": [{"name": "Nanjing", "lat": 32.06, "lon": 118.80, "weight": 1}],
        "demand.service_levels": {"express": {"share": 0.4, "promise_h": 24},
                                  "standard": {"share": 0.6, "promise_h": 72}},
        "policy.routing.name": "promise_aware"})
    doc = sc.model_dump(mode="json")
    base = doc["carriers"][0]
    doc["carriers"] = [
        dict(base, name="road", transit={"base_h": 8, "speed_kmh": 15, "distribution": "lognormal", "cv": 0.3},
             cost={"per_parcel": 3.0, "per_km": 0.0, "reefer_surcharge": 0.0}),
        dict(base, name="air", transit={"base_h": 2, "speed_kmh": 100, "distribution": "lognormal", "cv": 0.3},
             cost={"per_parcel": 12.0, "per_km": 0.0, "reefer_surcharge": 0.0}),
    ]
    return validate_scenario(doc, "two carriers")


@pytest.mark.parametrize("engine", ENGINES)
def test_promise_aware_takes_the_fast_carrier_for_express_only(engine: str) -> None:
    from twin.policies import Cheapest

    sc = _two_carriers()
    r = twin.simulate(sc, seed=1, engine=engine)
    by = r.orders.groupby("service_level", observed=True)["carrier"].agg(
        lambda s: {k: v for k, v in s.value_counts().to_dict().items() if v})
    assert by["express"] == {"air": int((r.orders.service_level == "express").sum())}
    assert by["standard"] == {"road": int((r.orders.service_level == "standard").sum())}
    cheap = twin.simulate(sc, seed=1, engine=engine, routing=Cheapest())
    assert cheap.orders.carrier.eq("road").all()
    # the objective (cost + 50 CNY per late order) is lower, and on-time higher, than cheapest's
    def objective(res):  # noqa: ANN001, ANN202
        return res.kpis["cost_per_order"] + 50 * (1 - res.kpis["on_time_rate"])
    assert r.kpis["on_time_rate"] > cheap.kpis["on_time_rate"] + 0.2
    assert objective(r) < objective(cheap) - 5


# ------------------------------------------------------------------ carrier by service level
@pytest.mark.parametrize("engine", ENGINES)
def test_carrier_by_service_level_sends_express_by_the_fast_carrier(engine: str) -> None:
    base = _two_carriers()
    over = {"policy.routing.name": "cheapest"}
    plain = twin.simulate(twin.load_scenario(base, over), seed=4, engine=engine)
    split = twin.simulate(twin.load_scenario(base, {**over, "policy.routing.carriers": {"express": "fastest"}}),
                          seed=4, engine=engine)
    assert plain.orders.carrier.eq("road").all()
    o = split.orders
    assert o.carrier[o.service_level == "express"].eq("air").all()
    assert o.carrier[o.service_level == "standard"].eq("road").all()
    # same orders (common random numbers); express now on time, at 9 CNY more per express parcel
    assert split.kpis["orders_created"] == plain.kpis["orders_created"]
    ex = (o.service_level == "express").sum()
    assert split.kpis["cost_per_order"] - plain.kpis["cost_per_order"] == pytest.approx(
        9.0 * ex / split.kpis["orders_created"])
    assert _order_on_time(o)["express"] > _order_on_time(plain.orders)["express"] + 0.3


def test_carrier_by_service_level_names_a_known_level() -> None:
    with pytest.raises(twin.ScenarioError, match=r"policy.routing.carriers.rush: unknown service level 'rush'; "
                                                 r"allowed: express, standard"):
        twin.load_scenario(_two_carriers(), {"policy.routing.carriers": {"rush": "fastest"}})
    with pytest.raises(twin.ScenarioError, match=r"policy.routing.carriers.express"):
        twin.load_scenario(_two_carriers(), {"policy.routing.carriers": {"express": "teleport"}})


# ------------------------------------------------------------------ knobs a policy turns at run time
@pytest.mark.parametrize("engine", ENGINES)
def test_promise_aware_knobs_and_pick_priority_change_at_run_time(engine: str) -> None:
    from twin.policies import PromiseAware
    from twin.scenario.loader import scale_scenario

    sc = scale_scenario(twin.load_scenario("singles_day", {"horizon_h": 8, "drain_h": 30}), 0.05)
    pol = PromiseAware()
    m = FulfillmentModel(sc, seed=3, engine=engine, routing=pol)
    for _ in range(4):
        m.step()
    # from t = 4 h: langfang costs 1,000 CNY more per order, express lateness 20x dearer, and
    # every warehouse picks express first
    lf = m.net.warehouses.index("langfang")
    pol.warehouse_offset[lf] = 1000.0
    pol.late_penalty_by_service[:] = [1000.0, 50.0]
    m.state.pick_priority[:] = 1
    m.run()
    rec = m.engine.finish(m.end_time)
    late_routed = rec["routed_at"] >= 4.0
    before = (rec["warehouse"] == lf) & ~late_routed & (rec["shipment_id"] >= 0)
    after = (rec["warehouse"] == lf) & late_routed
    assert before.sum() > 50 and after.sum() == 0
    express = rec["service_level"] == list(sc.demand.service_levels).index("express")
    sf = [c.name for c in sc.carriers].index("sf_express")
    share_sf = [float(np.mean(rec["carrier"][express & ok] == sf)) for ok in (~late_routed, late_routed)]
    assert share_sf[1] > share_sf[0] + 0.2
    # express first from 4 h on: express shipments wait less for a picker than standard ones
    wait = rec["pick_start"] - rec["routed_at"]
    standard = (rec["service_level"] != list(sc.demand.service_levels).index("express")) & (rec["shipment_id"] >= 0)
    assert np.nanmean(wait[express & late_routed]) < 0.5 * np.nanmean(wait[standard & late_routed])
