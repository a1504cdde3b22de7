"""Common random numbers: with one seed, every policy and every capacity what-if sees the same
orders (time, region, lines, SKUs, service level, cold flag) and the same weather, on both engines."""

from __future__ import annotations

import numpy as np
import pytest

import twin
from twin.policies import Cheapest, NearestWithStock
from twin.policies.shares import AllocationShares
from twin.scenario.loader import scale_scenario
from twin.sim.model import FulfillmentModel
from twin.sim.rng import KERNEL_STREAMS, STREAMS, RunStreams

ENGINES = ("kernel", "simpy")


def _scenario(agvs: int | None = None) -> twin.Scenario:
    over = {"horizon_h": 10, "drain_h": 30}
    if agvs is not None:
        over["warehouses.nanjing.pick.agvs"] = agvs
    # a storm-prone weather so the regions' states change often in ten hours
    over["weather.transition"] = [[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.2, 0.3, 0.5]]
    return scale_scenario(twin.load_scenario("singles_day", over), 0.05)


def _run(sc: twin.Scenario, engine: str, routing=None, seed: int = 7):  # noqa: ANN001, ANN202
    m = FulfillmentModel(sc, seed=seed, engine=engine, routing=routing, log_lines=True)
    weather = []
    while m.running:
        m.step()
        weather.append(m.weather.state_index.copy())
    rec = m.engine.finish(m.end_time)
    first = np.unique(rec["order_id"], return_index=True)[1]
    orders = {k: rec[k][first] for k in ("order_id", "created_at", "region", "cold_chain", "service_level")}
    lines = m.order_lines()
    per_order_lines = np.bincount(lines["order_id"], weights=lines["quantity"], minlength=len(first))
    return orders, lines, per_order_lines, np.array(weather), rec


def _same_orders(a, b) -> None:  # noqa: ANN001
    oa, la, na, wa, _ = a
    ob, lb, nb, wb, _ = b
    assert len(oa["order_id"]) == len(ob["order_id"]) > 100
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    for k in ("order_id", "sku", "quantity"):
        np.testing.assert_array_equal(la[k].to_numpy(), lb[k].to_numpy(), err_msg=k)
    np.testing.assert_array_equal(na, nb)
    np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("engine", ENGINES)
def test_two_routing_policies_see_the_same_orders_and_weather(engine: str) -> None:
    sc = _scenario()
    a = _run(sc, engine, NearestWithStock())
    b = _run(sc, engine, Cheapest())
    _same_orders(a, b)
    # ... and they really route differently (else the test proves nothing)
    assert not np.array_equal(a[4]["carrier"], b[4]["carrier"])
    # a policy that draws (allocation shares' race) draws from its own stream
    c = _run(sc, engine, AllocationShares())
    _same_orders(a, c)


@pytest.mark.parametrize("engine", ENGINES)
def test_two_agv_counts_see_the_same_orders_and_weather(engine: str) -> None:
    a = _run(_scenario(agvs=2), engine)
    b = _run(_scenario(agvs=40), engine)
    _same_orders(a, b)
    wait = [np.nanmean(r[4]["pick_start"] - r[4]["routed_at"]) for r in (a, b)]
    assert wait[0] > wait[1]  # the what-if changed the flow, not the demand


def test_the_line_log_is_the_records_lines() -> None:
    for engine in ENGINES:
        _, lines, per_order, _, rec = _run(_scenario(), engine)
        shipped_lines = np.bincount(rec["order_id"][rec["shipment_id"] >= 0],
                                    weights=rec["lines"][rec["shipment_id"] >= 0], minlength=len(per_order))
        served = np.isin(np.arange(len(per_order)), rec["order_id"][rec["shipment_id"] >= 0])
        np.testing.assert_array_equal(shipped_lines[served], per_order[served])
        assert (lines["quantity"] >= 1).all()
        # distinct SKUs within an order
        assert not lines.duplicated(["order_id", "sku"]).any()


def test_streams_are_spawned_from_the_seed_and_independent() -> None:
    a, b = RunStreams(3), RunStreams(3)
    assert a.demand.random() == b.demand.random()
    assert RunStreams(3).demand.random() != RunStreams(3).weather.random()
    assert RunStreams(3).demand.random() != RunStreams(4).demand.random()
    # the demand stream is SeedSequence(seed).spawn(...)[0]: nothing else draws from it
    ref = np.random.default_rng(np.random.SeedSequence(3).spawn(len(STREAMS))[STREAMS.index("demand")])
    assert RunStreams(3).demand.random() == ref.random()
    # per-item sub-streams do not depend on how many items there are
    assert RunStreams(3).sub("agv", 2).random() == RunStreams(3).sub("agv", 2).random()
    assert RunStreams(3).sub("agv", 2).random() != RunStreams(3).sub("agv", 1).random()
    seeds = RunStreams(3).kernel_seeds()
    assert len(seeds) == len(KERNEL_STREAMS) == len(set(seeds))
    with pytest.raises(ValueError, match="unknown random source 'demnd'"):
        RunStreams(3).demnd  # noqa: B018


# ------------------------------------------------------------------ paired comparison
def _write_kpis(d, seeds, values, engine="kernel"):  # noqa: ANN001, ANN202
    import json

    d.mkdir()
    reps = [{"scenario": "x", "seed": s, "engine": engine, "cost_per_order": v} for s, v in zip(seeds, values)]
    k = {"scenario": "x", "seeds": list(seeds), "engine": engine, "cost_per_order": sum(values) / len(values),
         "replications": reps}
    (d / "kpis.json").write_text(json.dumps(k))
    return d


def test_compare_pairs_replications_by_seed_with_a_hand_computed_ci(tmp_path) -> None:  # noqa: ANN001
    from twin.results.compare import ci_label, compare_runs, delta_label, format_table

    a = _write_kpis(tmp_path / "a", [0, 1, 2], [10.0, 20.0, 30.0])
    # seeds listed in another order: pairing is by seed, not position
    b = _write_kpis(tmp_path / "b", [2, 0, 1], [33.0, 11.0, 22.0])
    df = compare_runs([a, b])
    # differences by seed: 1, 2, 3 -> mean 2, sd 1, t(0.975, 2) = 4.302653 -> ±4.302653/sqrt(3)
    assert df.at["cost_per_order", delta_label("b", "a")] == pytest.approx(2.0)
    assert df.at["cost_per_order", ci_label("b", "a")] == pytest.approx(4.302652729911275 / 3 ** 0.5)
    assert df.attrs["paired"]["b"]["note"] == "paired on 3 common seeds (0..2)"
    assert "±2.48" in format_table(df)
    # unpaired: other seeds, or a single run, are said so and get no CI column
    c = _write_kpis(tmp_path / "c", [5, 6, 7], [1.0, 2.0, 3.0])
    df = compare_runs([a, c])
    assert ci_label("c", "a") not in df.columns
    assert df.attrs["paired"]["c"]["note"] == "not paired: the seeds differ (0..2 vs 5..7; 0 in common)"
    d = _write_kpis(tmp_path / "d", [0, 1, 2], [1.0, 2.0, 3.0], engine="simpy")
    assert compare_runs([a, d]).attrs["paired"]["d"]["note"] == "not paired: engines differ (kernel vs simpy)"


def test_twin_compare_of_two_policies_on_common_seeds(tmp_path, capsys) -> None:  # noqa: ANN001
    import json

    from twin.cli import main
    from twin.results.kpis import paired_ci

    common = ["--scale", "0.02", "--set", "horizon_h=6", "--set", "drain_h=30", "-r", "3", "--seed", "4",
              "--no-report", "-q", "-j", "1"]
    assert main(["run", "baseline", *common, "--out", str(tmp_path / "near")]) == 0
    assert main(["run", "baseline", *common, "--set", "policy.routing.name=cheapest",
                 "--out", str(tmp_path / "cheap")]) == 0
    ka = json.loads((tmp_path / "near" / "kpis.json").read_text())
    kb = json.loads((tmp_path / "cheap" / "kpis.json").read_text())
    # common random numbers: the same orders on every seed, whatever the policy
    for ra, rb in zip(ka["replications"], kb["replications"], strict=True):
        assert ra["seed"] == rb["seed"] and ra["orders_created"] == rb["orders_created"]
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "near"), str(tmp_path / "cheap"), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "cheap vs near: paired on 3 common seeds (4..6)" in out
    want = paired_ci([r["cost_per_order"] for r in kb["replications"]], [r["cost_per_order"] for r in ka["replications"]])
    row = next(line for line in out.splitlines() if line.startswith("cost_per_order "))
    assert f"±{want['half_width']:.2f}" in row
    assert want["mean"] < 0  # cheapest is cheaper per order, and the CI says so
