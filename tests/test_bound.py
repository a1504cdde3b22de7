"""The hindsight bound (``twin.results.bound``, ``twin bound``): the LP's optimum by hand on a
tiny network, below every built-in routing policy on a run, monotone in capacity, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.cli import main
from twin.results.bound import hindsight_bound, realised_objective
from twin.scenario.loader import load_scenario, scale_scenario, validate_scenario
from twin.scenario.schema import Scenario
from twin.world.costs import ObjectiveWeights


def _tiny(fast_capacity: int = 1, agvs: int = 100, lines_per_agv_h: float = 100.0, fast_co2: float = 0.0) -> Scenario:
    """One warehouse on top of its one region (0 km: transit = base_h), one service level
    promising 8 h, handling 1 CNY per line. ``fast``: 10 CNY a parcel, 4 h transit, departs
    every hour from 1 h with room for ``fast_capacity``; ``slow``: 2 CNY, 30 h transit (never
    on time), room for 1000. No battery, no breakdowns: the pick rate is agvs x lines/AGV-h."""
    def carrier(name: str, per_parcel: float, base_h: float, cap: int, co2: float) -> dict:
        return {"name": name, "departure_interval_h": 1.0, "first_departure_h": 1.0, "capacity": cap,
                "transit": {"base_h": base_h, "distribution": "deterministic"},
                "cost": {"per_parcel": per_parcel, "per_km": 0.0, "reefer_surcharge": 0.0},
                "co2": {"per_parcel_kg": co2, "per_km_kg": 0.0}}

    doc = {"name": "tiny", "horizon_h": 10.0, "drain_h": 40.0,
           "warehouses": [{"name": "w0", "lat": 30.0, "lon": 110.0, "handling_cost_per_line": 1.0,
                           "pick": {"agvs": agvs, "lines_per_agv_h": lines_per_agv_h, "pick_time": "deterministic"},
                           "pack": {"stations": 100, "time_h": 0.0}}],
           "regions": [{"name": "r0", "lat": 30.0, "lon": 110.0, "weight": 1.0}],
           "carriers": [carrier("fast", 10.0, 4.0, fast_capacity, fast_co2), carrier("slow", 2.0, 30.0, 1000, 0.0)],
           "demand": {"base_rate_per_h": 1.0, "lines_per_order": 1.0,
                      "service_levels": {"express": {"share": 1.0, "promise_h": 8.0}}},
           "replenishment": {"mode": "none"}}
    return validate_scenario(doc, "tiny")


def _orders(n: int, created: float = 0.0, promise_h: float = 8.0) -> pd.DataFrame:
    """``n`` one-line ambient express orders into ``r0``, all created at ``created`` (records as
    the engines write them for lost orders: the bound reads only the order columns)."""
    return pd.DataFrame({"order_id": np.arange(n), "region": ["r0"] * n, "cold_chain": np.zeros(n, bool),
                         "service_level": ["express"] * n, "lines": np.ones(n, np.int32),
                         "created_at": np.full(n, created), "promised_at": np.full(n, created + promise_h)})


# ---------------------------------------------------------------------------- (a) by hand
def test_linehaul_capacity_bound_equals_the_hand_calculation() -> None:
    """6 orders at t=0 due at 8 h. ``fast`` is on time at departures 1, 2, 3, 4 h (4 h transit):
    4 parcels of room at 1 each, so 4 orders on time at 10 + 1 handling + 0.5 kg x 1 CNY = 11.5;
    the other 2 are late, cheapest on ``slow``: 2 + 1 + 50 = 53 (lost would cost 100).
    Bound = (4 x 11.5 + 2 x 53) / 6."""
    b = hindsight_bound(_tiny(fast_capacity=1, fast_co2=0.5), _orders(6))
    assert b.status == 0
    assert b.objective_per_order == pytest.approx((4 * 11.5 + 2 * 53) / 6, abs=1e-9)
    assert b.late_rate == pytest.approx(2 / 6, abs=1e-9)
    assert b.lost_rate == pytest.approx(0.0, abs=1e-9)
    assert b.cost_per_order == pytest.approx((4 * 11 + 2 * 3) / 6, abs=1e-9)
    assert b.co2_per_order_kg == pytest.approx(4 * 0.5 / 6, abs=1e-9)
    # room for 2 a departure: all 6 on time
    assert hindsight_bound(_tiny(fast_capacity=2), _orders(6)).objective_per_order == pytest.approx(11.0, abs=1e-9)
    # other prices: late 200 > lost 100, so the 2 that miss are lost instead
    w = ObjectiveWeights(late_penalty_cny=200.0, lost_penalty_cny=100.0, co2_price_cny_per_kg=0.0)
    b = hindsight_bound(_tiny(fast_capacity=1), _orders(6), weights=w)
    assert b.objective_per_order == pytest.approx((4 * 11 + 2 * 100) / 6, abs=1e-9)
    assert b.lost_rate == pytest.approx(2 / 6, abs=1e-9)


def test_pick_capacity_bound_equals_the_hand_calculation() -> None:
    """One AGV at 2 lines/h, room on ``fast`` for all: 12 one-line orders at t=0 must be picked by
    the last on-time departure (4 h), i.e. in the 1 h buckets 0..4 (the departure's own bucket
    counts: a relaxation): 10 lines. So 10 on time at 11, 2 late at 53."""
    b = hindsight_bound(_tiny(fast_capacity=1000, agvs=1, lines_per_agv_h=2.0), _orders(12))
    assert b.objective_per_order == pytest.approx((10 * 11 + 2 * 53) / 12, abs=1e-9)
    # orders created later get their own window: 6 at t=0 and 6 at t=5 (due 13 h, departures up
    # to 9 h, buckets 5..9: 10 more lines): every one on time
    o = pd.concat([_orders(6), _orders(6, created=5.0).assign(order_id=np.arange(6, 12))], ignore_index=True)
    b = hindsight_bound(_tiny(fast_capacity=1000, agvs=1, lines_per_agv_h=2.0), o)
    assert b.objective_per_order == pytest.approx(11.0, abs=1e-9)


def test_bucket_h_is_checked() -> None:
    with pytest.raises(ValueError, match=r"bucket_h must be a finite number of hours > 0, got 0"):
        hindsight_bound(_tiny(), _orders(2), bucket_h=0)


# ---------------------------------------------------------------------------- (b), (c) on runs
SCALE = 0.05
#: a day of orders and two of drain keep the LPs small (their size follows the departures)
SHORT = {"horizon_h": 24.0, "drain_h": 48.0}


def _run(policy: str) -> tuple[Scenario, pd.DataFrame]:
    import twin

    sc = scale_scenario(load_scenario("baseline", {"policy.routing.name": policy, **SHORT}), SCALE)
    return sc, twin.simulate(sc, seed=1).orders


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[Scenario, pd.DataFrame]]:
    return {p: _run(p) for p in ("cheapest", "nearest_with_stock", "fastest")}


def test_bound_is_below_every_builtin_policy(runs: dict) -> None:
    for policy, (sc, orders) in runs.items():
        b = hindsight_bound(sc, orders)
        real = realised_objective(orders)
        assert b.status == 0 and b.orders == real["orders"] > 1000
        assert b.objective_per_order <= real["objective_per_order"], policy
        # the bound is not trivial: at least every order's cheapest lane
        assert b.objective_per_order > 5.0


def test_halving_a_carrier_does_not_lower_the_bound(runs: dict) -> None:
    sc, orders = runs["cheapest"]
    base = hindsight_bound(sc, orders).objective_per_order
    for carrier, field in (("sf_express", "capacity"), ("sf_express", "reefer_capacity")):
        i = [c.name for c in sc.carriers].index(carrier)
        cap = getattr(sc.carriers[i], field)
        halved = load_scenario(sc, {f"carriers.{carrier}.{field}": cap // 2})
        assert hindsight_bound(halved, orders).objective_per_order >= base - 1e-9, (carrier, field)
    # and a capacity loss window on every departure of every carrier raises it
    lost = load_scenario(sc, {"disruptions": [{"type": "carrier_capacity_loss", "carrier": c.name, "fraction": 0.9,
                                               "start_h": 0.0, "end_h": 72.0} for c in sc.carriers]})
    assert hindsight_bound(lost, orders).objective_per_order > base + 0.1


def test_realised_objective_counts_as_the_ledger() -> None:
    """Cost and CO2 of every shipment, 50 per order not on time (late or in flight), 100 per lost."""
    o = pd.DataFrame({
        "order_id": [0, 1, 1, 2, 3], "shipment_id": [0, 1, 2, -1, 3],
        "status": pd.Categorical(["delivered", "delivered", "delivered", "lost", "in_transit"]),
        "region": ["r0"] * 5, "warehouse": ["w0", "w0", "w1", None, "w0"],
        "created_at": [0.0, 0.0, 0.0, 1.0, 2.0], "promised_at": [8.0, 8.0, 8.0, 9.0, 10.0],
        "delivered_at": [5.0, 6.0, 9.0, np.nan, np.nan], "cost": [10.0, 4.0, 6.0, 0.0, 7.0],
        "co2_kg": [1.0, 0.5, 0.5, 0.0, 2.0]})
    r = realised_objective(o)
    # order 1 is late (its last parcel at 9 > 8), order 3 in flight: 2 late, 1 lost
    assert r["orders"] == 4
    assert r["objective_per_order"] == pytest.approx((27.0 + 4.0 + 2 * 50 + 100) / 4)
    assert r["late_rate"] == 0.5 and r["lost_rate"] == 0.25


# ---------------------------------------------------------------------------- (d) the CLI
def test_cli_bound_writes_bound_json_and_prints_the_gap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "baseline", "--out", str(out), "--no-report", "-q", "--scale", str(SCALE),
                 "--set", "policy.routing.name=cheapest", "--set", "horizon_h=24", "--set", "drain_h=48"]) == 0
    capsys.readouterr()
    assert main(["bound", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "bound.json").read_text())
    real, bound = doc["realised"]["objective_per_order"], doc["bound"]["objective_per_order"]
    assert bound <= real
    assert doc["gap"] == pytest.approx((real - bound) / bound)
    assert f"{doc['gap']:+.1%}" in printed and "objective per order" in printed
    assert f"{bound:.2f} CNY" in printed and f"{real:.2f} CNY" in printed
    # the same inputs again: the same result, written again
    assert main(["bound", str(out)]) == 0
    assert json.loads((out / "bound.json").read_text())["bound"]["objective_per_order"] == bound
    # other inputs: refused without --force, the file unchanged; with --force, rewritten
    capsys.readouterr()
    assert main(["bound", str(out), "--bucket-h", "2"]) == 2
    err = capsys.readouterr().err
    assert "holds the bound of other inputs" in err and "--force" in err
    assert json.loads((out / "bound.json").read_text())["inputs"]["bucket_h"] == 1.0
    assert main(["bound", str(out), "--bucket-h", "2", "--force"]) == 0
    assert json.loads((out / "bound.json").read_text())["inputs"]["bucket_h"] == 2.0


@pytest.mark.parametrize(("args", "message"), [
    (["no_such_dir"], "'no_such_dir' is not a run directory: no such directory"),
    (["."], "is not a run directory: no scenario.json in it"),
    ([".", "--bucket-h", "0"], "--bucket-h must be a finite number of hours > 0, got 0"),
    ([".", "--late-penalty-cny", "-1"], "--late-penalty-cny must be a finite number >= 0, got -1"),
])
def test_cli_bound_bad_input_is_one_line_exit_2(args: list[str], message: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bound", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_bound_unreadable_records_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    d = tmp_path / "run"
    d.mkdir()
    (d / "scenario.json").write_text(load_scenario("baseline").model_dump_json())
    (d / "orders.parquet").write_bytes(b"not parquet")
    assert main(["bound", str(d)]) == 2
    err = capsys.readouterr().err
    assert "orders.parquet' cannot be read" in err and err.count("\n") == 1
