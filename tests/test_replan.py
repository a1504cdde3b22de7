"""twin replan: order shares from the LP, by hand on a tiny network and on the national one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import twin
from twin.cli import main
from twin.policies.shares import AllocationShares
from twin.studies.replan import replan
from twin.world.network import build_network

# Two warehouses at one point and one region 100 km (straight line) away, one carrier, no cold
# chain, one service level with a promise no lane misses: an order by warehouse w costs its
# parcel (5 + 0.005 x road km, the same for both) + handling x 2 lines + CO2 price x CO2 (the
# same), so the warehouse with the cheaper handling takes all it can.
TINY = {
    "name": "tiny", "horizon_h": 10, "drain_h": 0,
    "warehouses": [
        {"name": "cheap", "lat": 30.0, "lon": 120.0, "handling_cost_per_line": 0.5,
         "pick": {"agvs": 10, "lines_per_agv_h": 10}},  # 100 lines/h -> 90 at the 0.9 cap: 45 orders/h
        {"name": "dear", "lat": 30.0, "lon": 120.0, "handling_cost_per_line": 2.0,
         "pick": {"agvs": 100, "lines_per_agv_h": 10}},
    ],
    "regions": [{"name": "city", "lat": 30.9, "lon": 120.0, "weight": 1}],
    "carriers": [{"name": "post", "capacity": 10000, "departure_interval_h": 1}],
    "demand": {"base_rate_per_h": 100, "lines_per_order": 2, "cold_chain_share": 0.0,
               "skus": {"count": 10, "cold_share": 0.0},
               "service_levels": {"standard": {"share": 1.0, "promise_h": 72}}},
}


def _tiny(**changes) -> twin.Scenario:  # noqa: ANN003
    return twin.load_scenario(twin.Scenario.model_validate(TINY), changes or None)


def test_shares_by_hand_on_a_tiny_network() -> None:
    res = replan(_tiny(), ["dear"])
    b, a = res.before, res.after
    # before: 100 orders/h; cheap picks 0.9 x 100 lines/h = 90 lines = 45 orders/h, dear the other 55
    assert b.orders_per_h == pytest.approx([45.0, 55.0])
    assert b.share == pytest.approx([0.45, 0.55])
    assert b.pick_utilization == pytest.approx([0.9, 110 / 1000])
    net = build_network(_tiny())
    per_order = 5 + 0.005 * net.distance_km[0, 0] + 1.0 * (0.05 + 0.0004 * net.distance_km[0, 0])
    assert b.objective_per_order == pytest.approx(per_order + (45 * 0.5 * 2 + 55 * 2.0 * 2) / 100)
    # after closing dear: cheap is full at 45 orders/h, 55/h unserved at the lost penalty (100 CNY)
    assert a.orders_per_h == pytest.approx([45.0, 0.0])
    assert a.unserved_per_h.sum() == pytest.approx(55.0)
    assert a.objective_per_order == pytest.approx((45 * (per_order + 1.0) + 55 * 100.0) / 100)
    assert res.notes and "55 orders/h unserved" in res.notes[0]


def test_a_late_lane_costs_the_late_penalty_times_the_late_share() -> None:
    # express (30%) promises 2 h: the lane's mean transit (4 h base + road km / 60) plus half a
    # departure interval misses it, standard (70%) does not
    sc = _tiny(**{"demand.service_levels": {"express": {"share": 0.3, "promise_h": 2},
                                            "standard": {"share": 0.7, "promise_h": 72}}})
    fast = replan(_tiny(), ["dear"])
    slow = replan(sc, ["dear"])
    assert slow.before.objective_per_order - fast.before.objective_per_order == pytest.approx(0.3 * 50.0)


def test_closing_a_region_takes_its_orders_out_and_keeps_its_shares() -> None:
    sc = _tiny(regions=[{"name": "city", "lat": 30.9, "lon": 120.0, "weight": 1},
                        {"name": "town", "lat": 30.0, "lon": 121.0, "weight": 3}])
    res = replan(sc, ["town"])
    assert res.before.orders_per_h.sum() == pytest.approx(100.0)
    assert res.after.orders_per_h.sum() == pytest.approx(25.0)  # city's quarter; town's 75/h wait
    assert res.after.waiting_per_h == pytest.approx([0.0, 75.0])
    assert res.after.orders_per_h == pytest.approx([25.0, 0.0])  # cheap has room for all of city now
    shares = res.region_shares_after
    assert shares[0] == pytest.approx([1.0, 0.0])
    assert shares[1] == pytest.approx(res.before.region_shares()[1])  # town routes as before when it reopens
    # the shares are what the allocation-shares policy routes by
    pol = AllocationShares(shares).bind(build_network(sc), np.random.default_rng(0))
    assert pol.shares == pytest.approx(shares)


def test_national_peak_closing_a_warehouse(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    res = replan("national_peak", ["guangzhou"])
    b, a = res.before, res.after
    gz = res.warehouses.index("guangzhou")
    assert b.share[gz] > 0.05 and a.share[gz] == 0.0
    assert a.share.sum() == pytest.approx(1.0) and len(res.warehouses) == 37
    # every order still goes somewhere, no warehouse above the cap, and the cost goes up
    assert a.unserved_per_h.sum() == pytest.approx(0.0, abs=1e-6)
    assert np.nanmax(a.pick_utilization) <= 0.9 + 1e-9
    assert a.objective_per_order > b.objective_per_order
    out = tmp_path / "replan.json"
    assert main(["replan", "national_peak", "--close", "guangzhou", "--top", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[2].split()[:3] == ["guangzhou", f"{b.share[gz]:.1%}", "0.0%"]  # largest change first
    doc = json.loads(out.read_text())
    assert doc["closed_warehouses"] == ["guangzhou"] and doc["after"]["share"][gz] == 0.0
    assert np.allclose(np.sum(doc["after"]["region_shares"], axis=1), 1.0, atol=1e-5)


def test_bad_closures_are_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["replan", "national_peak", "--close", "atlantis"]) == 2
    err = capsys.readouterr().err
    assert "--close 'atlantis': not a warehouse or a region of national_peak; warehouses: beijing_daxing" in err
    assert "regions: Beijing" in err and "Traceback" not in err
    assert main(["replan", "national_peak", "--close", "guangzhou", "--at", "99"]) == 2
    assert "--at must be an hour in 0..30" in capsys.readouterr().err
    assert main(["replan", "national_peak", "--close", "guangzhou", "--max-utilization", "1.5"]) == 2
    assert "--max-utilization must be in (0, 1]" in capsys.readouterr().err
