"""Shadow replay of an order history (issue 11): the history schema and its errors, the
reference engine playing an order table, the logged replay reproducing the run that wrote the
history, the counterfactual KPIs per block and the go-live rule, and the two commands."""

from __future__ import annotations

import json
import math
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin
from twin.policies.export import export_heuristic
from twin.results.history import COLUMNS, HistoryError, arrival_table, read_history, twin_history, write_history
from twin.results.kpis import order_table
from twin.results.shadow import SHADOW_KPIS, go_live, replay, shadow
from twin.scenario.loader import scale_scenario
from twin.sim.engine import ArrivalTable
from twin.sim.model import FulfillmentModel
from twin.world.network import build_network

SEED = 7


def _scenario(**over: object) -> twin.Scenario:
    return scale_scenario(twin.load_scenario("singles_day", {"horizon_h": 10, "drain_h": 30, **over}), 0.05)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A history written from a run of the twin, its run's records, and packages."""
    d = tmp_path_factory.mktemp("shadow")
    sc = _scenario()
    lines, info = twin_history(sc, SEED)
    write_history(lines, d / "h.parquet")
    same = export_heuristic("nearest_with_stock", d / "same", sc)  # the scenario's own policy
    other = export_heuristic("cheapest", d / "cheapest", sc)
    return {"dir": d, "sc": sc, "lines": lines, "info": info, "same": same, "other": other}


# ------------------------------------------------------------------------------ the schema
@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_every_format_reads_back_the_history_it_wrote(made: dict, suffix: str) -> None:
    lines = made["lines"]
    p = write_history(lines, made["dir"] / f"round.{suffix}")
    h = read_history(p)
    got = h.lines[list(COLUMNS)].reset_index(drop=True)
    want = lines[list(COLUMNS)].reset_index(drop=True)
    assert h.n_orders == made["info"]["orders"] > 500
    for c in COLUMNS:
        if c == "created_at":  # ISO text keeps nanoseconds
            assert (got[c].to_numpy() == want[c].to_numpy()).all()
        else:
            assert got[c].tolist() == want[c].tolist(), c
    if suffix == "jsonl":
        ev = json.loads(p.read_text().splitlines()[0])
        assert ev["type"] == "com.fulfillmenttwin.order.created.v1" and ev["subject"] == f"order/{ev['data']['order_id']}"
        assert ev["data"]["lines"][0]["warehouse_id"] in [w.name for w in made["sc"].warehouses]


def _csv(tmp_path: Path, rows: list[dict], name: str = "h.csv") -> Path:
    p = tmp_path / name
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


ROW = {"order_id": "A", "created_at": "2026-11-10T01:00:00Z", "region": "Shanghai", "service_level": "standard",
       "line": 0, "sku": "sku-3", "qty": 2, "cold_chain": "false", "warehouse_id": "shanghai"}


@pytest.mark.parametrize("change, message", [
    ({"qty": 0}, "row 1: qty must be an integer >= 1, got '0'"),
    ({"created_at": "yesterday"}, "row 1: created_at must be an ISO 8601 date-time"),
    ({"cold_chain": "maybe"}, "row 1: cold_chain must be true or false, got 'maybe'"),
    ({"order_id": ""}, "row 1: order_id must be a non-empty text"),
])
def test_a_bad_field_is_named_with_its_row(tmp_path: Path, change: dict, message: str) -> None:
    p = _csv(tmp_path, [{**ROW, **change}])
    with pytest.raises(HistoryError, match=message.replace("(", r"\(")):
        read_history(p)


def test_structural_errors_of_a_history(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="missing column.*warehouse_id"):
        read_history(_csv(tmp_path, [{k: v for k, v in ROW.items() if k != "warehouse_id"}]))
    with pytest.raises(HistoryError, match="row 2: order 'A' has region Beijing, its first line Shanghai"):
        read_history(_csv(tmp_path, [ROW, {**ROW, "line": 1, "region": "Beijing"}]))
    with pytest.raises(HistoryError, match="row 2: order 'A' has line 0 twice"):
        read_history(_csv(tmp_path, [ROW, ROW]))
    with pytest.raises(HistoryError, match="suffix must be one of"):
        read_history(tmp_path / "h.xlsx")
    bad = tmp_path / "h.jsonl"
    bad.write_text(json.dumps({"type": "something.else", "data": {}}) + "\n")
    with pytest.raises(HistoryError, match="event 1: type must be 'com.fulfillmenttwin.order.created.v1'"):
        read_history(bad)


def test_names_the_network_lacks_are_refused_with_what_is_allowed(tmp_path: Path) -> None:
    net = build_network(_scenario())
    for change, message in (({"region": "atlantis"}, "row 1: region 'atlantis' is not a region of the scenario"),
                            ({"sku": "sku-999999"}, "row 1: sku 'sku-999999' is not one of the network's"),
                            ({"warehouse_id": "paris"}, "row 1: warehouse_id 'paris' is not a warehouse"),
                            ({"service_level": "teleport"}, "row 1: service_level 'teleport' is not a service level"),
                            ({"created_at": "2026-11-10T12:00:00Z"}, "not before the scenario's horizon_h 10")):
        h = read_history(_csv(tmp_path, [{**ROW, **change}]))
        with pytest.raises(HistoryError, match=message):
            arrival_table(h, net)
    from datetime import datetime

    h = read_history(_csv(tmp_path, [ROW]))
    with pytest.raises(HistoryError, match="before the replay's start"):
        arrival_table(h, net, start=datetime(2026, 11, 10, 2, tzinfo=UTC))
    # lines of one SKU are merged (the twin keeps one line per SKU), a cold line makes the order cold
    h = read_history(_csv(tmp_path, [ROW, {**ROW, "line": 1, "qty": 3, "cold_chain": "true"}]))
    a = arrival_table(h, net).arrivals
    assert a.sku.tolist() == [3] and a.qty.tolist() == [5] and a.cold.tolist() == [True]
    assert a.created_h.tolist() == [1.0]  # hour 0 = midnight UTC of the first order's day


# ------------------------------------------------------------------------------ the engine
def test_the_engine_refuses_a_table_it_cannot_play() -> None:
    sc = _scenario()
    a = ArrivalTable(np.array([1.0]), np.array([0]), np.array([False]), np.array([0]), np.array([0, 1]),
                     np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="engine 'kernel' cannot play an order table.*simpy"):
        FulfillmentModel(sc, engine="kernel", arrivals=a)
    bad = ArrivalTable(np.array([1.0]), np.array([99]), np.array([False]), np.array([0]), np.array([0, 1]),
                       np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="arrivals.region: index 99 is not one of the scenario's 0..30"):
        FulfillmentModel(sc, engine="simpy", arrivals=bad)
    with pytest.raises(ValueError, match="created_h must be finite hours >= 0, sorted"):
        ArrivalTable(np.array([2.0, 1.0]), np.array([0, 0]), np.array([False, False]), np.array([0, 0]),
                     np.array([0, 1, 2]), np.array([0, 0]), np.array([1, 1]))


def test_the_logged_replay_is_the_run_that_wrote_the_history(made: dict) -> None:
    """The table's orders at their times with the logged decisions, on the run's seed: every
    order's cost, CO2, delivery and status are the run's own (the demand stream is not drawn;
    every other stream draws as in the run)."""
    sc = made["sc"]
    rep = arrival_table(read_history(made["dir"] / "h.parquet"), build_network(sc))
    out = replay(sc, SEED, rep, logged=True)
    assert out["followed"] == len(rep.order_ids) and out["infeasible"] == out["unrouted"] == 0
    a, b = order_table(out["orders"]), order_table(made["info"]["records"])
    assert len(a) == len(b) == len(rep.order_ids)
    for c in ("cost", "co2_kg", "delivered_at", "promised_at"):
        np.testing.assert_allclose(a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float), rtol=0, atol=1e-9,
                                   err_msg=c)
    for c in ("on_time", "lost", "shipments"):
        assert (a[c].to_numpy() == b[c].to_numpy()).all(), c
    assert (a["region"].astype(str).to_numpy() == b["region"].astype(str).to_numpy()).all()
    # the same orders with another policy: same times, regions and lines (common random numbers)
    other = replay(sc, SEED, rep, routing=twin.policies.Cheapest())
    c = order_table(other["orders"])
    np.testing.assert_array_equal(c["created_at"].to_numpy(), a["created_at"].to_numpy())
    assert not np.allclose(c["cost"].to_numpy(), a["cost"].to_numpy())  # and it really routes otherwise


def test_logged_decisions_the_twin_cannot_follow_are_routed_by_the_scenario_policy(made: dict) -> None:
    """Replayed in a world where langfang is closed during [2, 5) h, every order the OMS sent
    there in that window is infeasible; none ships from langfang out of that window's routing."""
    sc = _scenario(disruptions=[{"type": "warehouse_outage", "warehouse": "langfang", "start_h": 2, "end_h": 5}])
    net = build_network(sc)
    rep = arrival_table(read_history(made["dir"] / "h.parquet"), net)
    w = net.warehouses.index("langfang")
    ls, t = rep.arrivals.line_start, rep.arrivals.created_h
    sent = [i for i in range(len(t)) if 2 <= t[i] < 5 and w in rep.logged[ls[i]:ls[i + 1]]]
    assert len(sent) > 10
    out = replay(sc, SEED, rep, logged=True)
    assert out["infeasible"] >= len(sent)
    assert out["followed"] + out["infeasible"] == len(t)
    o = out["orders"]
    routed = o["routed_at"].to_numpy(dtype=float)
    during = (routed >= 2) & (routed < 5)
    assert not ((o["warehouse"].astype(str).to_numpy() == "langfang") & during).any()
    assert all(out["chosen"][i] and w not in out["chosen"][i] for i in sent)


# ------------------------------------------------------------------------------ the report and the rule
def test_the_same_policy_agrees_everywhere_and_passes(made: dict) -> None:
    doc = shadow(made["same"], made["dir"] / "h.parquet", made["sc"], seed=SEED, block_h=2)
    assert doc["agreement"]["rate"] == 1.0 and doc["agreement"]["orders"] == doc["orders"]
    for v in doc["go_live"]["kpis"].values():
        assert v["difference"]["mean"] == 0.0 and v["difference"]["half_width"] == 0.0
    assert doc["go_live"]["passed"] and doc["go_live"]["no_worse_share"] == 1.0
    assert doc["go_live"]["blocks"] == 5  # orders over 10 h in blocks of 2 h


def test_block_kpis_and_intervals_by_hand(made: dict) -> None:
    from scipy.stats import t as student_t

    sc, hist = made["sc"], read_history(made["dir"] / "h.parquet")
    doc = shadow(made["other"], hist, sc, seed=SEED, block_h=2)
    rep = arrival_table(hist, build_network(sc))
    per = {}
    for name, kw in (("logged", {"logged": True}), ("candidate", {"routing": twin.policies.Cheapest()})):
        o = replay(sc, SEED, rep, **kw)["orders"]
        g = o.groupby("order_id").agg(created=("created_at", "first"), promised=("promised_at", "first"),
                                      cost=("cost", "sum"), co2=("co2_kg", "sum"),
                                      delivered=("delivered_at", "max"),
                                      lost=("status", lambda s: (s.astype(str) == "lost").any()),
                                      done=("status", lambda s: (s.astype(str) == "delivered").all()))
        g["on_time"] = g["done"] & ~g["lost"] & (g["delivered"] <= g["promised"] + 1e-9)
        g["block"] = (g["created"] // 2).astype(int)
        b = g.groupby("block").agg(n=("cost", "size"), cost=("cost", "sum"), co2=("co2", "sum"),
                                   lost=("lost", "sum"), on_time=("on_time", "sum"))
        late = b["n"] - b["lost"] - b["on_time"]
        per[name] = pd.DataFrame({"objective_per_order": (b["cost"] + 50 * late + 100 * b["lost"] + b["co2"]) / b["n"],
                                  "cost_per_order": b["cost"] / b["n"], "co2_per_order_kg": b["co2"] / b["n"],
                                  "on_time_rate": b["on_time"] / b["n"], "lost_rate": b["lost"] / b["n"]})
    for k in SHADOW_KPIS:
        for who in ("logged", "candidate"):
            np.testing.assert_allclose([r[f"{who}_{k}"] for r in doc["blocks"]], per[who][k].to_numpy(), atol=1e-9)
        d = (per["candidate"][k] - per["logged"][k]).to_numpy()
        ci = doc["go_live"]["kpis"][k]["difference"]
        half = student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
        assert ci["mean"] == pytest.approx(d.mean(), abs=1e-12) and ci["half_width"] == pytest.approx(half, abs=1e-12)
    # cheapest is cheaper but later on every block: its on-time interval is worse, so it fails
    r = doc["go_live"]
    assert r["kpis"]["cost_per_order"]["difference"]["high"] < 0
    assert r["kpis"]["on_time_rate"]["ci_worse"] is True and not r["passed"]
    assert "on_time_rate: the interval is worse" in r["reasons"]


def _blocks(obj: list[float], on_time: list[float] | None = None) -> pd.DataFrame:
    n = len(obj)
    return pd.DataFrame({"block": range(n), "orders": [100] * n, "objective_per_order": obj, "cost_per_order": obj,
                         "co2_per_order_kg": [0.3] * n, "on_time_rate": on_time or [0.9] * n, "lost_rate": [0.0] * n})


def test_the_go_live_rule_on_constructed_blocks() -> None:
    base = _blocks([10.0] * 10)
    # better on 9 blocks, a little worse on 1: 90% no worse, no interval worse -> pass
    nine = _blocks([9.0] * 9 + [10.5])
    r = go_live(base, nine)
    assert r["passed"] and r["no_worse_blocks"] == 9 and r["no_worse_share"] == 0.9
    # worse on 2 of 10 -> 80% < 90% -> fail
    r = go_live(base, _blocks([9.0] * 8 + [10.5, 10.5]))
    assert not r["passed"] and r["reasons"] == ["no worse on 80.0% of the blocks, the rule needs 90%"]
    # no worse on every block by the objective, but the on-time rate is worse on all: its interval is worse
    r = go_live(base, _blocks([10.0] * 10, [0.85, 0.86, 0.84, 0.85, 0.85, 0.86, 0.84, 0.85, 0.85, 0.86]))
    assert not r["passed"] and r["no_worse_share"] == 1.0
    assert r["reasons"] == ["on_time_rate: the interval is worse"]
    # one block: no interval
    r = go_live(_blocks([10.0]), _blocks([9.0]))
    assert not r["passed"] and "an interval needs at least 2" in r["reasons"][0]
    # blocks without orders are left out
    empty = _blocks([9.0] * 9 + [50.0])
    b2 = base.copy()
    b2.loc[9, "orders"] = 0
    assert go_live(b2, empty)["blocks"] == 9 and go_live(b2, empty)["passed"]


# ------------------------------------------------------------------------------ the commands
def test_history_and_shadow_commands(made: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from twin.cli import main

    run = tmp_path / "run"
    assert main(["run", "singles_day", "--scale", "0.05", "--set", "horizon_h=10", "--set", "drain_h=30",
                 "--engine", "simpy", "--seed", str(SEED), "--out", str(run), "--no-report", "-q"]) == 0
    h = tmp_path / "h.jsonl"
    assert main(["history", str(run), "--out", str(h)]) == 0
    out = capsys.readouterr().out
    assert f"{made['info']['orders']:,} orders" in out and f"seed {SEED}" in out
    assert main(["history", str(run), "--out", str(h)]) == 2  # exists
    assert "exists; add --force" in capsys.readouterr().err
    rc = main(["shadow", str(made["same"]), "--history", str(h), "--scenario", str(run), "--block-h", "2",
               "--out", str(tmp_path / "sh")])
    out = capsys.readouterr().out
    assert rc == 0 and "go-live: PASS" in out and "(100.0%) go to the same warehouse(s)" in out
    doc = json.loads((tmp_path / "sh" / "shadow.json").read_text())
    assert doc["seed"] == SEED and doc["go_live"]["passed"]
    assert main(["shadow", str(made["other"]), "--history", str(h), "--scenario", str(run), "--block-h", "2"]) == 1
    assert "go-live: FAIL" in capsys.readouterr().out
    assert main(["shadow", str(made["same"]), "--history", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    assert main(["shadow", str(made["same"]), "--history", str(h), "--block-h", "0"]) == 2
    assert "--block-h must be a finite number of hours > 0" in capsys.readouterr().err
