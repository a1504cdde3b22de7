"""The written-down seams: the engine registry and protocol, the narrow host, routing plans,
the typed kernel tables and their stub, and the reference engine's decision points."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import twin
from ext import _hooks, _kernel
from twin.policies import AllocationShares, Cheapest, Fastest, NearestWithStock, OrderBatch, make_routing_policy
from twin.policies.plan import PLAN_MODES, RoutingPlan
from twin.scenario.loader import scale_scenario
from twin.sim.engine import Engine, Host, engine_names, engine_spec, make_engine, register_engine, unregister_engine
from twin.sim.model import FulfillmentModel
from twin.scenario.distributions import DISTRIBUTIONS, dist_spec
from twin.world.network import build_network
from twin.world.state import State

ROOT = Path(__file__).resolve().parent.parent


def _small(**kw: float) -> twin.Scenario:
    sc = scale_scenario(twin.load_scenario("baseline"), kw.pop("factor", 0.02))
    return sc.model_copy(update={"horizon_h": kw.pop("horizon_h", 4.0), "drain_h": kw.pop("drain_h", 30.0)})


# --------------------------------------------------------------------------- compiled copies
def test_kernel_codes_equal_the_python_definitions() -> None:
    assert _kernel.ROUTE_MODES == PLAN_MODES
    assert _kernel.DIST_CODES == DISTRIBUTIONS
    from twin.scenario.schema import PICK_PRIORITIES

    assert _kernel.PICK_PRIORITY_CODES == {p: i for i, p in enumerate(PICK_PRIORITIES)}


def test_lognormal_spec_keeps_the_mean_and_the_cv() -> None:
    s = dist_spec("lognormal", 0.6)
    mean = np.exp(s.mu + s.sigma**2 / 2)
    cv = np.sqrt(np.exp(s.sigma**2) - 1)
    assert mean == pytest.approx(1.0, abs=1e-12) and cv == pytest.approx(0.6, abs=1e-12)
    assert dist_spec("lognormal", 0).kind == "deterministic"
    with pytest.raises(ValueError, match="distribution must be one of deterministic, exponential, lognormal; "
                                         "got 'gamma'"):
        dist_spec("gamma", 1.0)


def test_the_stub_covers_the_kernels_public_surface() -> None:
    """``ext/_kernel.pyi`` declares every public name and Kernel method the module has."""
    tree = ast.parse((ROOT / "ext" / "_kernel.pyi").read_text())
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    top |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    kernel = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Kernel")
    methods = {n.name for n in kernel.body if isinstance(n, ast.FunctionDef)}
    assert set(_kernel.__all__) <= top, set(_kernel.__all__) - top
    public = {m for m in dir(_kernel.Kernel) if not m.startswith("_") and callable(getattr(_kernel.Kernel, m))}
    assert public <= methods, public - methods
    hooks = ast.parse((ROOT / "ext" / "_hooks.pyi").read_text())
    assert set(_hooks.__all__) <= {n.name for n in hooks.body if isinstance(n, ast.FunctionDef)}


# --------------------------------------------------------------------------- registry and protocol
def test_registry_lists_the_engines_and_names_them_in_errors() -> None:
    assert engine_names()[:2] == ("kernel", "simpy")
    assert engine_spec("simpy").entry_point == "twin.sim.reference:SimPyEngine"
    with pytest.raises(ValueError, match=r"engine must be one of kernel, simpy.*; got 'turbo'"):
        FulfillmentModel(_small(), engine="turbo")
    with pytest.raises(ValueError, match="entry_point must be 'module:Class', got 'twin.sim.reference'"):
        register_engine("x", "twin.sim.reference")


@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_engines_follow_the_protocol_on_a_narrow_host(engine: str) -> None:
    m = FulfillmentModel(_small(), seed=0, engine=engine)
    assert isinstance(m.engine, Engine)
    h = m.host()
    assert isinstance(h, Host) and h.state is m.state and h.routing is m.routing
    assert not hasattr(h, "fleets") and not hasattr(h, "datacollector")  # the host is not the model


def test_an_engine_registered_by_entry_point_runs() -> None:
    """A second name for the reference engine, made through the registry, gives its records."""
    register_engine("reference-copy", "twin.sim.reference:SimPyEngine", "the reference under another name")
    try:
        runs = []
        for name in ("simpy", "reference-copy"):
            m = FulfillmentModel(_small(), seed=3, engine=name)
            m.run()
            runs.append(m.engine.finish(m.end_time))
    finally:
        unregister_engine("reference-copy")
    assert "reference-copy" not in engine_names()
    assert runs[0].keys() == runs[1].keys()
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_make_engine_passes_engine_options() -> None:
    m = FulfillmentModel(_small(), seed=0, engine="kernel", engine_options={"routing_interval_h": 0.5})
    assert m.engine.routing_interval_h == 0.5
    with pytest.raises(ValueError, match="routing_interval_h must be > 0, got 0"):
        make_engine("kernel", m.host(), routing_interval_h=0)


# --------------------------------------------------------------------------- routing plans
def test_builtin_policies_describe_their_native_plans() -> None:
    net = build_network(twin.load_scenario("baseline"))
    modes = {n: make_routing_policy(n, net).plan().mode
             for n in ("nearest_with_stock", "cheapest", "greenest", "fastest", "weighted")}
    assert modes == {"nearest_with_stock": "static", "cheapest": "static", "greenest": "static",
                     "fastest": "queue", "weighted": "queue"}
    w = make_routing_policy(twin.scenario.schema.RoutingConfig(name="weighted", weights={"time_h": 2.0}), net)
    p = w.plan()
    assert p.queue_weight == 2.0 and p.queue_scale > 0
    s = AllocationShares().bind(net, np.random.default_rng(0)).plan()
    assert s.mode == "shares" and np.allclose(s.shares.sum(axis=1), 1.0)


class _OwnScores(Cheapest):
    name = "own_scores"

    def scores(self, batch: OrderBatch, state: State) -> np.ndarray:
        return super().scores(batch, state)[:, ::-1]


class _OwnCriterion(Fastest):
    name = "own_criterion"

    def lane_criterion(self, net):  # noqa: ANN001, ANN201
        return -super().lane_criterion(net)


def test_overriding_a_deciding_method_runs_in_batches() -> None:
    """A subclass that decides differently is never run by its parent's native plan; one that
    only changes the static tables keeps it (the plan reads those tables)."""
    net = build_network(twin.load_scenario("baseline"))
    assert _OwnScores().bind(net).plan().mode == "batch"
    own = _OwnCriterion().bind(net)
    assert own.plan().mode == "queue"
    np.testing.assert_array_equal(own.plan().static_score, own.static_score)


def test_a_batch_plan_routes_through_the_policy() -> None:
    """In batch mode the kernel calls ``route``: the reversed scores send orders elsewhere than
    the parent's static plan would."""
    sc = _small()
    a = twin.simulate(sc, seed=0, routing=Cheapest())
    b = twin.simulate(sc, seed=0, routing=_OwnScores())
    wa = a.orders["warehouse"].value_counts()
    wb = b.orders["warehouse"].value_counts()
    assert wa.idxmax() != wb.idxmax()


def test_a_plan_checks_itself() -> None:
    lc = np.zeros((2, 1, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="RoutingPlan.mode must be one of static, queue, shares, batch, promise; got 'x'"):
        RoutingPlan("x", lc, True, np.zeros((2, 1, 1)))
    with pytest.raises(ValueError, match="RoutingPlan.shares must be given in mode 'shares'"):
        RoutingPlan("shares", lc, True, np.zeros((2, 1, 1)))


def test_an_unbound_policy_has_no_plan() -> None:
    with pytest.raises(RuntimeError, match="routing policy 'nearest_with_stock' is not bound to a network"):
        NearestWithStock().plan()


# --------------------------------------------------------------------------- decision points
def test_decision_points_route_each_order_where_the_decider_says() -> None:
    """Every order of the horizon comes to the decider once; orders sent to the feasible
    warehouse with the highest index ship from there."""
    m = FulfillmentModel(_small(), seed=1, engine="simpy")
    chosen: dict[int, int] = {}
    n = 0
    while (d := m.next_decision(stop_h=m.scenario.horizon_h)) is not None:
        n += 1
        st = m.state
        ok = st.wh_open & (st.inventory[:, list(d.sku)] >= np.asarray(d.qty)).all(axis=1)
        if d.cold:
            ok &= st.cold_ok
        lanes = m.routing.plan().lane_carrier[int(d.cold), :, d.region] >= 0
        ok &= lanes
        if ok.any():
            w = int(np.flatnonzero(ok)[-1])
            chosen[d.order_id] = w
            m.engine.decide([w] * len(d.sku))
        else:
            m.engine.decide(None)
    m.run()
    assert n == m.engine.counters.created > 50
    col = m.engine.finish(m.end_time)
    got = {int(o): int(w) for o, w in zip(col["order_id"], col["warehouse"], strict=True) if o in chosen}
    assert got == chosen
    # the decider's choice differs from the policy's for many orders
    plain = FulfillmentModel(_small(), seed=1, engine="simpy")
    plain.run()
    pc = plain.engine.finish(plain.end_time)
    base = dict(zip(pc["order_id"].tolist(), pc["warehouse"].tolist(), strict=True))
    assert sum(base.get(o) != w for o, w in chosen.items()) > len(chosen) // 4


def test_decision_points_misuse_gets_clear_errors() -> None:
    k = FulfillmentModel(_small(), seed=0, engine="kernel")
    with pytest.raises(TypeError, match="engine 'kernel' offers no decision points.*simpy"):
        k.next_decision()
    m = FulfillmentModel(_small(), seed=0, engine="simpy")
    d = m.next_decision()
    assert d is not None and m.engine.pending_decision == d
    with pytest.raises(RuntimeError, match="a tick is under way at a decision point"):
        m.step()
    with pytest.raises(ValueError, match=r"decide\(\) needs one warehouse per line"):
        m.engine.decide([0] * (len(d.sku) + 1))
    m.engine.decide(None)
    with pytest.raises(RuntimeError, match="no order is waiting for a routing decision"):
        m.engine.decide(None)


# --------------------------------------------------------------------------- the cost table
@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_every_shipments_cost_is_the_cost_table(engine: str) -> None:
    """Both engines' records (and their running cost total) price each shipment by
    :func:`twin.world.costs.shipment_cost`; cold shipments carry the reefer surcharge."""
    from twin.world.costs import shipment_cost

    sc = scale_scenario(twin.load_scenario("cold_chain_failure"), 0.03)
    sc = sc.model_copy(update={"horizon_h": 6.0, "drain_h": 30.0})
    m = FulfillmentModel(sc, seed=2, engine=engine)
    m.run()
    col = m.engine.finish(m.end_time)
    s = col["warehouse"] >= 0
    want = shipment_cost(m.net.costs, col["carrier"][s], col["warehouse"][s], col["region"][s],
                         col["cold_chain"][s], col["lines"][s])
    np.testing.assert_allclose(col["cost"][s], want, rtol=1e-12)
    assert col["cold_chain"][s].any() and (~col["cold_chain"][s]).any()
    assert (col["cost"][~s] == 0).all()
    assert m.engine.counters.cost == pytest.approx(col["cost"].sum(), rel=1e-9)
    # by hand for one cold shipment: lane price + surcharge + handling per line
    i = int(np.flatnonzero(s & col["cold_chain"])[0])
    c, w, r = int(col["carrier"][i]), int(col["warehouse"][i]), int(col["region"][i])
    car, wh = sc.carriers[c], sc.warehouses[w]
    hand = car.cost.per_parcel + car.cost.per_km * m.net.distance_km[w, r] + car.cost.reefer_surcharge \
        + wh.handling_cost_per_line * int(col["lines"][i])
    assert col["cost"][i] == pytest.approx(hand, rel=1e-12)


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("engine", ["kernel", "simpy"])
@pytest.mark.parametrize("co2_weight", [0.0, 1.0])
def test_weighted_routing_with_a_zero_co2_fleet_serves_orders(engine: str, co2_weight: float) -> None:
    """An all-electric fleet (zero CO2 on every lane) used to make ``weighted`` divide by a zero
    mean and lose every order; now the CO2 term adds nothing and the decisions are those of
    the same weights without it."""
    from twin.scenario.schema import RoutingConfig

    sc = _small()
    carriers = [c.model_copy(update={"co2": c.co2.model_copy(update={"per_parcel_kg": 0.0, "per_km_kg": 0.0})})
                for c in sc.carriers]
    sc = sc.model_copy(update={"carriers": carriers})
    cfg = RoutingConfig(name="weighted", weights={"cost": 1.0, "time_h": 1.0, "co2_kg": co2_weight})
    no_co2 = RoutingConfig(name="weighted", weights={"cost": 1.0, "time_h": 1.0, "co2_kg": 0.0})
    net = build_network(sc)
    pol = make_routing_policy(cfg, net)
    assert np.isfinite(pol.plan().static_score).any()
    a = twin.simulate(sc, seed=4, engine=engine, routing=make_routing_policy(cfg, net))
    b = twin.simulate(sc, seed=4, engine=engine, routing=make_routing_policy(no_co2, net))
    assert a.kpis["orders_lost"] == 0 and a.kpis["orders_created"] > 50
    assert a.kpis["co2_per_order_kg"] == 0.0
    np.testing.assert_array_equal(a.orders["warehouse"].astype(str), b.orders["warehouse"].astype(str))


def test_weighted_routing_refuses_weights_that_mean_nothing() -> None:
    from twin.policies import WeightedScore

    for bad in ({"cost": float("inf")}, {"time_h": float("nan")}, {"co2_kg": -1.0},
                {"cost": 0.0, "time_h": 0.0, "co2_kg": 0.0}):
        with pytest.raises(ValueError, match="weights must be finite, >= 0 and not all 0"):
            WeightedScore(**bad)
