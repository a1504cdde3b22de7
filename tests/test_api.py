"""The public API: a short ``__all__``, and our generic package names resolve to this project."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import twin

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["twin", "agents", "scenarios", "rl", "ext"])
def test_packages_are_imported_from_this_project(name: str) -> None:
    # `agents` (and others) are generic names other distributions use too
    mod = importlib.import_module(name)
    assert Path(mod.__file__).resolve().parent == ROOT / name


def test_public_api() -> None:
    assert set(twin.__all__) >= {"load_scenario", "simulate", "replicate", "Scenario", "SimulationResult",
                                 "ScenarioError", "TwinError"}
    for name in twin.__all__:
        assert hasattr(twin, name), name
    assert issubclass(twin.ScenarioError, twin.TwinError) and issubclass(twin.ScenarioError, ValueError)


def test_simulate_argument_errors_name_the_argument() -> None:
    sc = twin.load_scenario("erlang_c", {"horizon_h": 1})
    with pytest.raises(ValueError, match="engine must be one of .*got 'fast'"):
        twin.simulate(sc, engine="fast")
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        twin.simulate(sc, seed=-1)
    with pytest.raises(ValueError, match="factor must be a finite number > 0, got 0"):
        twin.scenario.loader.scale_scenario(sc, 0)


def test_result_has_kpis_orders_timeseries() -> None:
    r = twin.simulate(twin.load_scenario("erlang_c", {"horizon_h": 20, "drain_h": 10}), seed=0)
    assert r.kpis["orders_created"] == r.orders["order_id"].nunique() > 1000
    assert list(r.timeseries["time_h"]) == [float(h) for h in range(1, 31)]
    assert r.kpis["orders_lost"] == 0 and r.kpis["split_rate"] == 0.0


def test_readme_scenario_example_is_valid_and_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in text.split("```yaml\n")[1:] if b.startswith("name: my_network"))
    f = tmp_path / "my_network.yaml"
    f.write_text(block.split("```")[0], encoding="utf-8")
    sc = twin.load_scenario(f)
    assert [d.type for d in sc.disruptions] == ["warehouse_outage", "carrier_capacity_loss", "agv_breakdown",
                                                "cold_chain_failure", "demand_surge"]
    # the README's what-if syntax: list elements by name and by index
    sc2 = twin.load_scenario(f, ["warehouses.shanghai.pick.agvs=150", "disruptions.0.end_h=20"])
    assert sc2.warehouses[0].pick.agvs == 150 and sc2.disruptions[0].end_h == 20
    r = twin.simulate(twin.scenario.loader.scale_scenario(sc, 0.02), seed=0)
    k = r.kpis
    assert k["orders_created"] == k["orders_delivered"] + k["orders_in_flight"] + k["orders_lost"] > 0


def test_network_graph_has_every_lane() -> None:
    from twin.world.network import build_network

    net = build_network(twin.load_scenario("baseline"))
    g = net.graph
    kinds = [d["kind"] for _, d in g.nodes(data=True)]
    assert kinds.count("warehouse") == 8 and kinds.count("region") == 31
    # SF and ZTO serve every lane; JD Cold only from the four cold-storage sites
    assert g.number_of_edges() == 8 * 31
    assert g.edges["shanghai", "Shanghai"]["carriers"] == ["sf_express", "zto", "jd_cold"]
    assert g.edges["hangzhou", "Shanghai"]["carriers"] == ["sf_express", "zto"]
    assert g.edges["langfang", "Beijing"]["distance_km"] < g.edges["langfang", "Guangdong"]["distance_km"]


@pytest.mark.parametrize("name", ["nearest_with_stock", "cheapest", "greenest", "fastest", "weighted"])
def test_policy_preference_order_is_the_score_order(name: str) -> None:
    from twin.policies import make_routing_policy
    from twin.policies.plan import preference_lists
    from twin.world.network import build_network

    sc = twin.load_scenario("cold_chain_failure")  # JD Cold serves 4 sites: some lanes have no reefer
    p = make_routing_policy(name, build_network(sc))
    for c in (0, 1):
        for r in range(p.static_score.shape[1]):
            row = p.static_score[c, r]
            want = [w for w in sorted(range(len(row)), key=lambda w: (row[w], w)) if np.isfinite(row[w])]
            assert preference_lists(p.plan().static_score)[c][r] == want


def test_transfers_come_from_the_nearest_spare_stock() -> None:
    from twin.policies import transfers_from_nearest
    from twin.world.network import build_network

    net = build_network(twin.load_scenario("baseline"))
    W = net.n_warehouses
    i = {n: k for k, n in enumerate(net.warehouses)}
    need = np.zeros((W, 2), dtype=np.int64)
    spare = np.zeros((W, 2), dtype=np.int64)
    need[i["hangzhou"]] = [10, 0]
    spare[i["shanghai"]] = [4, 9]  # ~170 km from Hangzhou
    spare[i["chengdu"]] = [50, 0]  # far away
    spare[i["nanjing"]] = [3, 0]  # ~270 km
    m = transfers_from_nearest(need, spare, net)
    assert m[i["shanghai"], i["hangzhou"]].tolist() == [4, 0]
    assert m[i["nanjing"], i["hangzhou"]].tolist() == [3, 0]
    assert m[:, i["hangzhou"], 0].sum() == 10 and m.sum() == 10  # the rest from the next nearest
    assert m[i["chengdu"], i["hangzhou"], 0] <= 3
    assert need.sum() == 0 and spare[i["shanghai"]].tolist() == [0, 9]


def test_a_model_reuses_a_matching_network_and_rebuilds_otherwise() -> None:
    """``FulfillmentModel(network=...)`` takes a network built from a scenario that differs only
    in demand, weather or disruptions (an RL env's randomised episodes): the same arrays, the
    model's own scenario, and records identical to a model that built its own network."""
    from twin.scenario.loader import scale_scenario, validate_scenario
    from twin.sim.model import FulfillmentModel
    from twin.world.network import build_network

    base = scale_scenario(twin.load_scenario("typhoon"), 0.05)
    doc = base.model_dump(mode="json")
    doc["demand"]["base_rate_per_h"] *= 1.3
    doc["disruptions"] = []
    episode = validate_scenario(doc)
    net = build_network(base)
    reused = FulfillmentModel(episode, seed=2, network=net)
    assert reused.net.scenario is episode and reused.net.distance_km is net.distance_km
    own = FulfillmentModel(episode, seed=2)
    for m in (reused, own):
        m.run()
    a, b = reused.engine.finish(reused.end_time), own.engine.finish(own.end_time)
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    doc["warehouses"][0]["stock"]["units_per_sku"] += 1  # another network: built, not reused
    other = FulfillmentModel(validate_scenario(doc), seed=2, network=net)
    assert other.net.initial_stock is not net.initial_stock
    assert other.net.initial_stock[0, 0] == net.initial_stock[0, 0] + 1


def test_expected_orders_integrate_the_demand_profile() -> None:
    """erlang_c: a flat 68 orders/h for 2,000 h; singles_day: the rate at each tick's middle
    times the tick, which with 0.1 h ticks is the fine integral of its spiky profile (1 h ticks
    flatten the 20:00 and midnight spikes, which peak on tick boundaries, by ~2.5%)."""
    from twin.sim.model import FulfillmentModel

    m = FulfillmentModel(twin.load_scenario("erlang_c"), seed=0, engine="simpy")
    assert m.demand.expected_orders() == pytest.approx(68 * 2000, rel=1e-12)
    sd = FulfillmentModel(twin.load_scenario("singles_day", {"tick_h": 0.1}), seed=0, engine="simpy")
    t = np.linspace(0, sd.scenario.horizon_h, 200_001)
    fine = np.trapezoid(sd.demand.total_rate(t), t)
    assert sd.demand.expected_orders() == pytest.approx(fine, rel=5e-3)
    assert isinstance(sd.demand.total_rate(3.0), float)
