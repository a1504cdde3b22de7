"""A scenario that cannot work says so (issue 9): each lint warning on a scenario built to
trigger it, with its figures computed by hand here; clean scenarios give none; the CLI prints
them (``twin validate``, ``--strict``; ``twin run`` before it starts, without refusing)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

import scenarios
from tests.test_hardening_loader import _readme_scenario
from twin.cli import main
from twin.scenario.lint import CODES, LintWarning
from twin.scenario.loader import load_scenario, validate_scenario
from twin.world.lint import lint

# baseline's fleets: 390 AGVs (16+28+38+52+44+72+93+47) x 20 lines/h x battery duty 6/(6+1.5)
# x availability 150/(150+2) = 6,157.89 lines/h
BASELINE_AGVS = 16 + 28 + 38 + 52 + 44 + 72 + 93 + 47
BASELINE_PICK = BASELINE_AGVS * 20 * (6 / 7.5) * (150 / 152)
PICK_CAP = "the 8 warehouses can pick 6,158 lines/h (agvs x lines_per_agv_h x battery duty x availability)"
PICK_ADVICE = "add AGVs (warehouses.*.pick.agvs) or faster picks (lines_per_agv_h), or lower demand.base_rate_per_h"
WAREHOUSES = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]


def _codes(ws: list[LintWarning]) -> list[str]:
    return [w.code for w in ws]


def _only(sc: object, code: str) -> LintWarning:
    ws = lint(sc)
    assert _codes(ws) == [code], [str(w) for w in ws]
    return ws[0]


def _population(names: list[str]) -> tuple[float, float]:
    """The 2020 populations (millions) of ``names``, and of all 31 regions, read from the table."""
    with open(Path(scenarios.__file__).parent / "china_regions.csv", encoding="utf-8") as f:
        pop = {r["region"]: float(r["population_m_2020"]) for r in csv.DictReader(f)}
    return sum(pop[n] for n in names), sum(pop.values())


def _all_regions_but(*left_out: str) -> list[str]:
    return [r.name for r in scenarios.expand_regions(load_scenario("baseline").regions) if r.name not in left_out]


# --------------------------------------------------------------------------- clean scenarios
@pytest.mark.parametrize("name", ["baseline", "erlang_c"])
def test_builtin_reference_scenarios_lint_clean(name: str) -> None:
    assert lint(load_scenario(name)) == []


def test_the_readme_scenario_lints_clean() -> None:
    assert lint(validate_scenario(_readme_scenario(), "README.md")) == []


def test_every_code_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"`{code}`" in readme, code


# --------------------------------------------------------------------------- capacity
def test_pick_capacity_mean_over_capacity() -> None:
    # flat demand: 4,200 orders/h x 1.5 lines = 6,300 lines/h against 6,157.89: 1.0231x all 48 h;
    # the backlog grows by 142.1 lines/h to 6,821 at 48 h (1.1 h of picking)
    sc = load_scenario("baseline", {"demand.base_rate_per_h": 4200, "demand.diurnal_amplitude": 0})
    assert round(6300 / BASELINE_PICK, 2) == 1.02
    assert (round((6300 - BASELINE_PICK) * 48), round((6300 - BASELINE_PICK) * 48 / BASELINE_PICK, 1)) == (6821, 1.1)
    w = _only(sc, "pick-capacity")
    assert w.path == "warehouses.*.pick.agvs"
    assert w.message == (f"at the peak (t = 0 h) 4,200 orders/h x 1.5 lines need 6,300 pick lines/h; {PICK_CAP}: 1.02x "
                         "capacity at the peak, 1.02x on average over the 48 h horizon, above it for ~48 h; the backlog "
                         "would reach ~6,821 lines at t = 48 h, 1.1 h of work at capacity (the longest promise is 72 h); "
                         f"{PICK_ADVICE}")


# 1,500/h x 4 during [20, 24) h (the profile steps within 0.001 h, between the 0.25 h points):
# 9,000 lines/h against 6,157.89 (1.46x) for 4 h, so 4 x 2,842.1 = 11,368 lines queue by 24 h,
# 1.85 h of picking; the mean is 2,250 x (44 + 4 x 4) / 48 = 2,812.5 lines/h (0.46x)
STEP = {"demand.base_rate_per_h": 1500, "demand.diurnal_amplitude": 0,
        "demand.profile": [[0, 1], [19.999, 1], [20, 4], [23.999, 4], [24, 1]]}


def _promise(h: float) -> dict:
    return {"demand.service_levels": {"standard": {"share": 1.0, "promise_h": h}}}


def test_pick_capacity_peak_whose_backlog_outlasts_every_promise() -> None:
    assert round(4 * (9000 - BASELINE_PICK)) == 11_368 and round(4 * (9000 - BASELINE_PICK) / BASELINE_PICK, 2) == 1.85
    w = _only(load_scenario("baseline", {**STEP, **_promise(1.5)}), "pick-capacity")
    assert w.message == (f"at the peak (t = 20 h) 6,000 orders/h x 1.5 lines need 9,000 pick lines/h; {PICK_CAP}: 1.46x "
                         "capacity at the peak, 0.46x on average over the 48 h horizon, above it for ~4 h; the backlog "
                         "would reach ~11,368 lines at t = 24 h, 1.8 h of work at capacity (the longest promise is "
                         f"1.5 h); {PICK_ADVICE}")
    # the same peak is what a peak does when the backlog clears within a promise: no warning
    assert lint(load_scenario("baseline", {**STEP, **_promise(2)})) == []
    assert lint(load_scenario("baseline", STEP)) == []  # baseline's promises: 24 and 72 h


def test_pick_capacity_with_a_diurnal_cycle() -> None:
    # 5,000/h x (1 + 0.3 sin(2 pi (t - 6) / 24)) x 1.5: 9,750 lines/h at noon (1.58x), 7,500 on
    # average (1.22x); below 6,157.89 where sin(x) < -a, 7.12 h a day: above it ~33.8 h of 48
    sc = load_scenario("baseline", {"demand.base_rate_per_h": 5000})
    a = (1 - BASELINE_PICK / 7500) / 0.3
    below = (math.pi - 2 * math.asin(a)) / (2 * math.pi) * 24  # hours a day
    assert round(48 - 2 * below) == 34
    # the backlog: from the first upward crossing, t1 = 6 - asin(a) 24 / 2 pi (3.56 h), to the
    # last downward one, t2 = 42 + asin(a) 24 / 2 pi (44.44 h): the integral of 7,500 - 6,157.89
    # + 2,250 sin(x), i.e. 1,342.1 (t2 - t1) + 2,250 (24 / 2 pi) 2 cos(asin(a)) = 68,665 lines
    t1, t2 = 6 - math.asin(a) * 24 / (2 * math.pi), 42 + math.asin(a) * 24 / (2 * math.pi)
    backlog = (7500 - BASELINE_PICK) * (t2 - t1) + 2250 * 24 / (2 * math.pi) * 2 * math.cos(math.asin(a))
    assert round(backlog) == 68_665
    w = _only(sc, "pick-capacity")
    head = (f"at the peak (t = 12 h) 6,500 orders/h x 1.5 lines need 9,750 pick lines/h; {PICK_CAP}: 1.58x capacity at "
            "the peak, 1.22x on average over the 48 h horizon, above it for ~34 h; the backlog would reach ~")
    assert w.message.startswith(head) and w.message.endswith(f"(the longest promise is 72 h); {PICK_ADVICE}")
    lines, at = w.message[len(head):].split(" lines at t = ")
    assert abs(float(lines.replace(",", "")) - backlog) < 0.005 * backlog  # the 0.25 h grid against the integral
    assert at.startswith("44.5 h, 11.2 h of work at capacity")  # the end of the 0.25 h step that holds t2


ERLANG_SHORT = [  # erlang_c: 68 orders/h (a shipment and a parcel each) against 40/h: 1.70x for the whole 2,000 h,
    # 28/h queueing: 56,000 by the end, 1,400 h of work
    ({"warehouses.shanghai.pack.stations": 20, "warehouses.shanghai.pack.time_h": 0.5}, "pack-capacity",
     "warehouses.*.pack",
     ("at the peak (t = 0 h) 68 orders/h need at least 68 shipments/h packed; the 1 warehouse can pack 40 shipments/h "
     "(stations / time_h): 1.70x capacity at the peak, 1.70x on average over the 2000 h horizon, above it for "
     "~2,000 h; the backlog would reach ~56,000 shipments at t = 2000 h, 1400.0 h of work at capacity (the longest "
     "promise is 72 h); add pack stations (warehouses.*.pack.stations) or shorten pack.time_h, or lower "
     "demand.base_rate_per_h")),
    ({"carriers.sf_express.capacity": 40}, "carrier-capacity", "carriers.*.capacity",
     ("at the peak (t = 0 h) 68 orders/h need at least 68 parcels/h of linehaul; the departures of 1 carrier carry 40 "
     "parcels/h (capacity / departure_interval_h at each warehouse served, all carriers together): 1.70x capacity "
     "at the peak, 1.70x on average over the 2000 h horizon, above it for ~2,000 h; the backlog would reach "
     "~56,000 parcels at t = 2000 h, 1400.0 h of work at capacity (the longest promise is 72 h); raise carriers.*.capacity or "
     "depart more often (lower departure_interval_h), or lower demand.base_rate_per_h")),
]


@pytest.mark.parametrize(("overrides", "code", "path", "message"), ERLANG_SHORT, ids=[c[1] for c in ERLANG_SHORT])
def test_pack_and_carrier_capacity(overrides: dict, code: str, path: str, message: str) -> None:
    # pack: 20 stations / 0.5 h each; carrier: 40 parcels per hourly departure from the one warehouse
    w = _only(load_scenario("erlang_c", overrides), code)
    assert (w.path, w.message) == (path, message)


def test_carrier_capacity_counts_every_warehouse_a_carrier_departs_from() -> None:
    # baseline's room: sf 1,400/2 h x 8 + zto 2,800/4 h x 8 + jd_cold 150/3 h x 4 = 11,400 parcels/h;
    # at 1/10 of it (sf 140, zto 280, jd_cold 15) 1,140/h against 2,210 orders/h at noon (1.94x),
    # 1,700 on average (1.49x)
    sc = load_scenario("baseline", {"carriers.sf_express.capacity": 140, "carriers.zto.capacity": 280,
                                    "carriers.jd_cold.capacity": 15})
    w = _only(sc, "carrier-capacity")
    assert w.message.startswith(
        "at the peak (t = 12 h) 2,210 orders/h need at least 2,210 parcels/h of linehaul; the departures of 3 carriers "
        "carry 1,140 parcels/h (capacity / departure_interval_h at each warehouse served, all carriers together): "
        "1.94x capacity at the peak, 1.49x on average over the 48 h horizon")


def test_reefer_capacity() -> None:
    # reefer room from the 4 cold-storage sites: sf 10/2 h x 4 + jd_cold 12/3 h x 4 = 36 cold parcels/h;
    # 6% of 2,210 orders/h at noon = 132.6 (3.68x), of 1,700 on average = 102 (2.83x), all 48 h; the
    # backlog grows by (102 - 36) x 48 = 3,168 cold parcels (88 h of room)
    sc = load_scenario("baseline", {"carriers.sf_express.reefer_capacity": 10, "carriers.jd_cold.reefer_capacity": 12,
                                    "demand.cold_chain_share": 0.06})
    w = _only(sc, "reefer-capacity")
    assert w.path == "carriers.*.reefer_capacity"
    assert w.message == (
        "at the peak (t = 12 h) 2,210 orders/h x 0.06 cold-chain share need 133 reefer parcels/h; the departures from 4 "
        "cold-storage warehouses have reefer room for 36 parcels/h (reefer_capacity / departure_interval_h): 3.68x "
        "capacity at the peak, 2.83x on average over the 48 h horizon, above it for ~48 h; the backlog would reach ~3,168 "
        "cold parcels at t = 48 h, 88.0 h of work at capacity (the longest promise is 72 h); raise "
        "carriers.*.reefer_capacity at the cold-storage warehouses, or lower demand.cold_chain_share")


# --------------------------------------------------------------------------- lanes
def test_region_no_carrier() -> None:
    served = _all_regions_but("Tibet", "Qinghai")
    sc = load_scenario("baseline", {f"carriers.{c}.regions": served for c in ("sf_express", "zto", "jd_cold")})
    part, total = _population(["Tibet", "Qinghai"])  # 3.65 + 5.92 of 1,411.9 million
    share = part / total
    assert f"{share:.1%}" == "0.7%"
    w = _only(sc, "region-no-carrier")
    assert w.path == "carriers.*.regions"
    assert w.message == (f"2 of 31 regions have no carrier (Tibet, Qinghai): 0.7% of demand, ~{share * 81_600:,.0f} "
                         "orders over the 48 h horizon, are lost; add them to a carrier's regions (carriers.*.regions, "
                         "or regions: all)")
    assert f"{share * 81_600:,.0f}" == "554"


def test_warehouse_no_carrier() -> None:
    # shanghai: 16 AGVs x 20 x 0.8 x 150/152 = 252.6 lines/h
    others = WAREHOUSES[1:]
    sc = load_scenario("baseline", {"carriers.sf_express.warehouses": others, "carriers.zto.warehouses": others,
                                    "carriers.jd_cold.warehouses": ["guangzhou", "chengdu", "langfang"]})
    w = _only(sc, "warehouse-no-carrier")
    assert w.path == "warehouses[0]"
    assert w.message == ("no carrier departs from shanghai, so no order can be routed there (its 16 AGVs, 253 lines/h, "
                         "stand idle); add it to a carrier's warehouses (carriers.*.warehouses, or warehouses: all)")


def test_cold_no_reefer() -> None:
    # only jd_cold has reefer room, and it does not serve Tibet and Qinghai: their cold orders
    # (5% of their 0.7% of 81,600) have no lane
    sc = load_scenario("baseline", {"carriers.sf_express.reefer_capacity": 0,
                                    "carriers.jd_cold.regions": _all_regions_but("Tibet", "Qinghai"),
                                    "carriers.jd_cold.reefer_capacity": 300})
    part, total = _population(["Tibet", "Qinghai"])
    cold = part / total * 0.05 * 81_600
    w = _only(sc, "cold-no-reefer")
    assert w.message == (
        f"2 of 31 regions (Tibet, Qinghai; 0.7% of demand) have no lane with reefer room from a cold-storage warehouse: "
        f"their cold-chain orders (cold_chain_share 0.05, ~{cold:,.0f} over the 48 h horizon) are lost; give a carrier "
        "that serves them reefer_capacity from a cold_storage warehouse")
    assert f"{cold:,.0f}" == "28"


# --------------------------------------------------------------------------- stock
def test_stock_short_without_replenishment() -> None:
    # erlang_c: 68 orders/h x 2,000 h = 136,000 lines; 100 SKUs, Zipf s = 1 (p_s = 1 / (s H_100)),
    # 1,000 units each: SKU s runs short by 136,000 p_s - 1,000 while that is > 0 (s <= 26)
    sc = load_scenario("erlang_c", {"warehouses.shanghai.stock.units_per_sku": 1000})
    h100 = sum(1 / s for s in range(1, 101))
    short = [136_000 / (s * h100) - 1000 for s in range(1, 101)]
    short = [x for x in short if x > 0]
    assert len(short) == 26
    w = _only(sc, "stock-short")
    assert w.path == "warehouses.*.stock.units_per_sku"
    assert w.message == (
        f"with replenishment.mode none, 2000 h of demand ask for ~136,000 lines, the warehouses hold 100,000 units; 26 "
        f"of 100 SKUs run out: ~{sum(short):,.0f} lines ({sum(short) / 136_000:.1%}) cannot be served; raise "
        "warehouses.*.stock.units_per_sku (or sku_fraction), or set replenishment.mode to reorder_point")
    assert f"{sum(short):,.0f}" == "75,053"
    # replenished, the same stock gives no warning
    assert lint(load_scenario(sc, {"replenishment.mode": "reorder_point"})) == []


# --------------------------------------------------------------------------- windows
def test_disruptions_and_weather_events_outside_the_run() -> None:
    sc = load_scenario("baseline", {
        "disruptions": [
            {"type": "warehouse_outage", "warehouse": "wuhan", "start_h": 130, "end_h": 140},  # after the end (120 h)
            {"type": "demand_surge", "multiplier": 2, "start_h": 50, "end_h": 60},  # after orders stop (48 h)
            {"type": "agv_breakdown", "warehouse": "wuhan", "fraction": 0.5, "start_h": 60, "end_h": 70},  # drain: fine
            {"type": "carrier_capacity_loss", "carrier": "zto", "fraction": 0.5, "start_h": 120, "end_h": 130},
        ],
        "weather.events": [{"name": "typhoon", "regions": ["Zhejiang"], "start_h": 125, "end_h": 150,
                            "closes_lanes": True}],
    })
    ws = lint(sc)
    assert [(w.code, w.path) for w in ws] == [("disruption-outside-run", "disruptions[0]"),
                                              ("disruption-outside-run", "disruptions[1]"),
                                              ("disruption-outside-run", "disruptions[3]"),
                                              ("disruption-outside-run", "weather.events[0]")]
    ended = "after the run ends at 120 h (horizon_h 48 + drain_h 72): it never takes effect; move its start_h below 120"
    assert [w.message for w in ws] == [
        f"the warehouse_outage of wuhan starts at 130 h, {ended}",
        ("the demand_surge starts at 50 h, when orders have stopped arriving (horizon_h 48): it changes no demand; "
         "move its start_h below 48"),
        f"the carrier_capacity_loss of zto starts at 120 h, {ended}",
        f"the weather event 'typhoon' starts at 125 h, {ended}",
    ]


# --------------------------------------------------------------------------- the CLI
CARRIER_SHORT = ["--set", "carriers.sf_express.capacity=40"]


def test_validate_prints_the_warnings_after_the_estimate(capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", "erlang_c", *CARRIER_SHORT]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert cap.err == ""
    assert lines[0].startswith("erlang_c: valid (1 warehouses, 1 regions, 1 carriers")
    assert lines[1].startswith("run size: ~136,000 orders")
    assert lines[2:] == ["warning: carrier-capacity: carriers.*.capacity: " + lint(load_scenario(
        "erlang_c", {"carriers.sf_express.capacity": 40}))[0].message]
    assert "1.70x capacity at the peak" in lines[2]


def test_validate_strict_fails_on_warnings_only(capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", "erlang_c", "--strict", *CARRIER_SHORT]) == 1
    assert "warning: carrier-capacity" in capsys.readouterr().out
    assert main(["validate", "baseline", "--strict"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_run_prints_the_warnings_before_it_starts_and_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    rc = main(["run", "erlang_c", *CARRIER_SHORT, "--set", "horizon_h=4", "--set", "drain_h=4", "--out", str(out),
               "--no-report", "-q"])
    assert rc == 0 and (out / "kpis.json").is_file()  # a warning never refuses a run
    err = capsys.readouterr().err.splitlines()
    warn = [i for i, line in enumerate(err) if line.startswith("twin: warning: ")]
    assert len(warn) == 1 and err[warn[0]].startswith(
        "twin: warning: carrier-capacity: carriers.*.capacity: at the peak (t = 0 h) 68 orders/h need at least 68 "
        "parcels/h of linehaul; the departures of 1 carrier carry 40 parcels/h")
    assert "1.70x on average over the 4 h horizon, above it for ~4 h" in err[warn[0]]
    assert err[warn[0] + 1].startswith("twin: output directory")  # before the simulation


def test_no_capacity_at_all() -> None:
    w = _only(load_scenario("erlang_c", {"warehouses.shanghai.pick.agvs": 0}), "pick-capacity")
    assert w.message == (
        "at the peak (t = 0 h) 68 orders/h x 1 lines need 68 pick lines/h; the 1 warehouse can pick 0 lines/h (agvs x "
        f"lines_per_agv_h x battery duty x availability): none of it can be served in the 2000 h horizon; {PICK_ADVICE}")
