"""The built-in scenario library, and the errors a malformed scenario or override gets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import scenarios
from twin.errors import ScenarioError
from twin.scenario.loader import load_scenario
from twin.scenario.schema import Scenario

BUILTINS = scenarios.builtin_names()
WAREHOUSES = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]


# --------------------------------------------------------------------------- built-ins
def test_the_library_has_the_expected_scenarios() -> None:
    for name in ("baseline", "singles_day", "typhoon", "warehouse_outage", "carrier_capacity_loss",
                 "cold_chain_failure", "erlang_c"):
        assert name in BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_and_describes_itself(name: str) -> None:
    sc = load_scenario(name)
    assert isinstance(sc, Scenario)
    assert sc.name == name
    desc = sc.description.strip()
    assert desc and "\n" not in desc and len(desc) <= 200
    assert dict(scenarios.describe_builtins())[name] == desc
    # the file starts with its name and description (after the comment header)
    keys = list(yaml.safe_load(scenarios.builtin_path(name).read_text(encoding="utf-8")))
    assert keys[:2] == ["name", "description"]


@pytest.mark.parametrize("name", [n for n in BUILTINS if n not in ("erlang_c", "national_peak", "singles_day_national")])
def test_network_scenarios_use_real_geography(name: str) -> None:
    sc = load_scenario(name)
    assert 6 <= len(sc.warehouses) <= 8
    for w in sc.warehouses:  # mainland China
        assert 18 <= w.lat <= 46 and 97 <= w.lon <= 125, w
    assert len(scenarios.expand_regions(sc.regions)) == 31
    assert 2 <= len(sc.carriers) <= 3
    assert sum(c.reefer_capacity > 0 for c in sc.carriers) >= 2
    assert 3 <= sum(w.cold_storage for w in sc.warehouses) <= 4
    assert [s.name for s in sc.weather.states] == ["clear", "rain", "storm"]
    assert {k: v.promise_h for k, v in sc.demand.service_levels.items()} == {"express": 24, "standard": 72}


def test_disruption_scenarios_are_singles_day_plus_one_event() -> None:
    base = load_scenario("singles_day")
    assert base.disruptions == [] and base.weather.events == []
    for name in ("warehouse_outage", "carrier_capacity_loss", "cold_chain_failure", "typhoon"):
        sc = load_scenario(name)
        assert sc.warehouses == base.warehouses and sc.carriers == base.carriers and sc.demand == base.demand
        assert sc.replenishment == base.replenishment and sc.start == base.start
        assert len(sc.disruptions) + len(sc.weather.events) >= 1
    ty = load_scenario("typhoon").weather.events[0]
    assert ty.closes_lanes and ty.transit_multiplier == 2.5
    assert {"Zhejiang", "Shanghai", "Fujian"} <= set(ty.regions)
    assert load_scenario("warehouse_outage").disruptions[0].warehouse == "langfang"
    loss = load_scenario("carrier_capacity_loss").disruptions[0]
    assert loss.carrier == "zto"  # the ambient carrier of cheapest routing
    cold = load_scenario("cold_chain_failure")
    failed = cold.disruptions[0].warehouse
    assert next(w for w in cold.warehouses if w.name == failed).cold_storage


def test_erlang_c_is_an_mmc_queue() -> None:
    sc = load_scenario("erlang_c")
    (w,) = sc.warehouses
    assert len(sc.regions) == 1 and len(sc.carriers) == 1
    assert (w.pick.agvs, w.pick.lines_per_agv_h, w.pick.pick_time) == (8, 10, "exponential")
    assert w.pick.battery_h is None and w.pick.mtbf_h is None
    assert sc.demand.lines_per_order == 1 and sc.demand.diurnal_amplitude == 0
    assert sc.demand.base_rate_per_h == pytest.approx(0.85 * 8 * 10)
    assert sc.demand.cold_chain_share == 0 and sc.replenishment.mode == "none"
    assert len(sc.weather.states) == 1 and sc.disruptions == []
    assert sc.horizon_h == 2000


# --------------------------------------------------------------------------- malformed files
def _baseline_doc() -> dict:
    return yaml.safe_load(scenarios.builtin_path("baseline").read_text(encoding="utf-8"))


def _write(tmp_path: Path, doc: dict | str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return p


def _problem(exc: pytest.ExceptionInfo[ScenarioError], path: str) -> str:
    """The one problem line that starts with ``path:``."""
    lines = [p for p in exc.value.problems if p.startswith(path + ":")]
    assert len(lines) == 1, (path, exc.value.problems)
    return lines[0]


def _set(doc: dict, keys: list, value: object) -> dict:
    node = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return doc


# (how to break the baseline, the path the error must name, what else the message must say)
MALFORMED = [
    pytest.param(["warehouses", 0, "pick", "agvs"], -3,
                 "warehouses[0].pick.agvs", ["-3", "greater than or equal to 0"], id="negative-agvs"),
    pytest.param(["disruptions"], [{"type": "meteor_strike", "start_h": 1, "end_h": 2}],
                 "disruptions[0].type", ["'meteor_strike'", "warehouse_outage", "demand_surge"],
                 id="unknown-disruption-type"),
    pytest.param(["weather", "transition", 0], [0.5, 0.035, 0.005],
                 "weather.transition[0]", ["sum to 1", "0.54"], id="transition-row-sum"),
    pytest.param(["disruptions"], [{"type": "warehouse_outage", "warehouse": "suzhou", "start_h": 1, "end_h": 9}],
                 "disruptions[0].warehouse", ["'suzhou'", "allowed: " + ", ".join(WAREHOUSES)],
                 id="unknown-warehouse"),
    pytest.param(["demand", "service_levels", "express", "share"], 0.5,
                 "demand.service_levels", ["sum to 1", "1.2"], id="shares-sum"),
    pytest.param(["warehouses", 1, "pick", "agv"], 3,
                 "warehouses[1].pick.agv", ["unknown field 'agv'", "allowed: agvs, lines_per_agv_h"],
                 id="misspelled-field"),
    pytest.param(["disruptions"], [{"type": "carrier_capacity_loss", "carrier": "zto", "start_h": 1, "end_h": 2}],
                 "disruptions[0].fraction", ["field required"], id="missing-field-in-union"),
    pytest.param(["disruptions"], [{"type": "agv_breakdown", "warehouse": "wuhan", "fraction": 0.5,
                                    "start_h": 9, "end_h": 3}],
                 "disruptions[0]", ["end_h must be > start_h", "start_h=9", "end_h=3"], id="window-in-union"),
    pytest.param(["carriers", 2, "warehouses"], ["shanghai", "xian"],
                 "carriers[2].warehouses[1]", ["'xian'", "allowed: shanghai"], id="carrier-unknown-warehouse"),
    pytest.param(["regions"], {"preset": "usa_states"},
                 "regions.preset", ["'usa_states'", "china_provinces"], id="unknown-preset"),
    pytest.param(["regions"], [{"name": "Nowhere", "lat": 100, "lon": 0, "weight": 1}],
                 "regions[0].lat", ["100", "less than or equal to 90"], id="region-list-bad-lat"),
    pytest.param(["demand", "service_levels"], {"Express": {"share": 2, "promise_h": 24}},
                 "demand.service_levels.Express.share", ["2", "less than or equal to 1"], id="capitalised-key"),
    pytest.param(["weather", "initial"], "snow",
                 "weather.initial", ["'snow'", "allowed: ['clear', 'rain', 'storm']"], id="unknown-weather-state"),
    pytest.param(["horizon_h"], "two days",
                 "horizon_h", ["'two days'", "valid number"], id="wrong-type"),
]


@pytest.mark.parametrize("keys,value,path,says", MALFORMED)
def test_malformed_file_names_path_and_value(tmp_path: Path, keys: list, value: object, path: str,
                                             says: list[str]) -> None:
    bad = _write(tmp_path, _set(_baseline_doc(), keys, value))
    with pytest.raises(ScenarioError, match=re.escape(path + ":")) as exc:
        load_scenario(bad)
    line = _problem(exc, path)
    for s in says:
        assert s in line, (s, line)
    assert str(bad) in str(exc.value)  # the message names the file
    assert exc.value.source == str(bad)


def test_union_problems_do_not_leak_pydantic_tags(tmp_path: Path) -> None:
    doc = _baseline_doc()
    doc["disruptions"] = [{"type": "warehouse_outage", "warehouse": "nanjing", "start_h": 5, "end_h": 1}]
    doc["regions"] = [{"name": "Nowhere", "lat": 10, "weight": 1}]
    with pytest.raises(ScenarioError) as exc:
        load_scenario(_write(tmp_path, doc))
    text = str(exc.value)
    for tag in ("warehouse_outage:", "list[", "RegionPreset", "WarehouseOutage", "literal["):
        assert tag not in text, text
    assert sorted(exc.value.problems) == [
        "disruptions[0]: end_h must be > start_h, got start_h=5.0, end_h=1.0",
        "regions[0].lon: field required",
    ]


def test_missing_required_field(tmp_path: Path) -> None:
    doc = _baseline_doc()
    del doc["demand"]["base_rate_per_h"]
    del doc["carriers"]
    with pytest.raises(ScenarioError) as exc:
        load_scenario(_write(tmp_path, doc))
    assert "demand.base_rate_per_h: field required" in exc.value.problems
    assert "carriers: field required" in exc.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = _baseline_doc()
    doc["warehouses"][0]["pick"]["agvs"] = -3
    doc["warehouses"][2]["lat"] = 123
    with pytest.raises(ScenarioError) as exc:
        load_scenario(_write(tmp_path, doc))
    assert len(exc.value.problems) == 2
    assert _problem(exc, "warehouses[2].lat").endswith("got 123")


def test_not_yaml_names_line_and_column(tmp_path: Path) -> None:
    bad = _write(tmp_path, "name: broken\nwarehouses:\n  - name: a\n   lat: [1, 2\n")
    with pytest.raises(ScenarioError, match=r"not valid YAML at line \d+, column \d+") as exc:
        load_scenario(bad)
    assert str(bad) in str(exc.value)
    tabbed = _write(tmp_path, "name: x\n\thorizon_h: 3\n")
    with pytest.raises(ScenarioError, match=r"not valid YAML at line 2, column 1"):
        load_scenario(tabbed)


def test_not_a_mapping_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="must hold a mapping of fields, got list"):
        load_scenario(_write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match=r"unknown scenario 'no_such_builtin'.*baseline"):
        load_scenario("no_such_builtin")


# --------------------------------------------------------------------------- overrides
def test_override_by_warehouse_name() -> None:
    sc = load_scenario("baseline", ["warehouses.shanghai.pick.agvs=150"])
    agvs = {w.name: w.pick.agvs for w in sc.warehouses}
    assert agvs["shanghai"] == 150
    base = {w.name: w.pick.agvs for w in load_scenario("baseline").warehouses}
    assert {k: v for k, v in agvs.items() if k != "shanghai"} == {k: v for k, v in base.items() if k != "shanghai"}


def test_override_mapping_index_and_scenario_object() -> None:
    sc = load_scenario("baseline", {"warehouses.1.pick.agvs": 7, "demand.base_rate_per_h": 10, "seed": 3})
    assert sc.warehouses[1].pick.agvs == 7 and sc.demand.base_rate_per_h == 10 and sc.seed == 3
    again = load_scenario(sc, ["carriers.zto.capacity=5"])
    assert next(c for c in again.carriers if c.name == "zto").capacity == 5
    assert load_scenario(sc) is sc


def test_override_unknown_warehouse_lists_allowed_names() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_scenario("baseline", ["warehouses.suzhou.pick.agvs=150"])
    msg = str(exc.value)
    assert "'suzhou'" in msg and "warehouses.suzhou" in msg
    assert "allowed: " + ", ".join(WAREHOUSES) in msg


def test_override_bad_value_is_reported_with_its_path() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_scenario("baseline", ["warehouses.shanghai.pick.agvs=-1"])
    assert _problem(exc, "warehouses[0].pick.agvs").endswith("got -1")


def test_override_without_equals_sign() -> None:
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        load_scenario("baseline", ["warehouses.shanghai.pick.agvs"])


def test_national_peak_is_a_national_ten_million_order_day() -> None:
    sc = load_scenario("national_peak")
    assert len(sc.warehouses) == 37
    for w in sc.warehouses:  # real hubs in China (Urumqi and Lhasa included)
        assert 18 <= w.lat <= 47 and 85 <= w.lon <= 127, w
    assert len(scenarios.expand_regions(sc.regions)) == 31
    assert 10 <= sum(w.cold_storage for w in sc.warehouses) <= 14
    d = sc.demand
    assert sc.horizon_h == 24 and sc.drain_h <= 12 and d.profile == [(0.0, 1.0)]
    assert d.base_rate_per_h * sc.horizon_h == pytest.approx(10e6, rel=0.05)  # the diurnal cycle averages to 1
    jd = next(c for c in sc.carriers if c.name == "jd_cold")
    assert set(jd.warehouses) == {w.name for w in sc.warehouses if w.cold_storage}


def test_singles_day_national_is_singles_day_on_national_peaks_network() -> None:
    sd, peak, sc = load_scenario("singles_day"), load_scenario("national_peak"), load_scenario("singles_day_national")
    # national_peak's 37 sites, where they are, with its cold sites; JD Cold serves exactly those
    assert [(w.name, w.lat, w.lon, w.cold_storage) for w in sc.warehouses] == \
        [(w.name, w.lat, w.lon, w.cold_storage) for w in peak.warehouses]
    jd = next(c for c in sc.carriers if c.name == "jd_cold")
    assert set(jd.warehouses) == {w.name for w in sc.warehouses if w.cold_storage}
    # singles_day's clock, demand shape and mix, replenishment and weather, at a larger base rate
    assert (sc.horizon_h, sc.drain_h, sc.start) == (sd.horizon_h, sd.drain_h, sd.start)
    assert sc.demand.profile == sd.demand.profile
    assert sc.demand.model_dump(exclude={"base_rate_per_h"}) == sd.demand.model_dump(exclude={"base_rate_per_h"})
    assert sc.replenishment == sd.replenishment and sc.weather == sd.weather and sc.disruptions == []
    # ~1.9M orders: the profile's integral (with the diurnal cycle) times the base rate
    t = np.linspace(0, sc.horizon_h, 48 * 600 + 1)
    rate = sc.demand.base_rate_per_h * np.interp(t, *zip(*sc.demand.profile)) * (
        1 + sc.demand.diurnal_amplitude * np.sin(2 * np.pi * (t - 6) / 24))
    assert np.trapezoid(rate, t) == pytest.approx(1.93e6, rel=0.01)
    # peak-season carriers: SF hourly, every price singles_day's surcharge above national_peak's
    sf = next(c for c in sc.carriers if c.name == "sf_express")
    assert sf.departure_interval_h == 1
    for c in sc.carriers:
        base = next(b for b in peak.carriers if b.name == c.name)
        assert c.cost.per_parcel == pytest.approx(base.cost.per_parcel + 0.5)



# --------------------------------------------------------------------------- descriptions
OUTAGE_DESC = ("Singles' Day with the Langfang warehouse (the busiest) down for 12 h from the midnight the sale "
               "opens; its load spills to Zhengzhou.")


def test_overrides_are_named_in_the_description() -> None:
    """The file's description says "down for 12 h"; after --set disruptions.0.end_h=30 the
    recorded description must not state that alone: it names the overrides."""
    assert load_scenario("warehouse_outage").description == OUTAGE_DESC
    sc = load_scenario("warehouse_outage", ["disruptions.0.end_h=30", "policy.routing.name=cheapest"])
    assert sc.disruptions[0].end_h == 30
    assert sc.description == OUTAGE_DESC + " (with overrides: disruptions.0.end_h=30, policy.routing.name=cheapest)"
    # overrides of a Scenario object join the same list; non-string values as they are typed
    again = load_scenario(sc, {"disruptions.0.start_h": 26, "policy.routing.allow_split": False})
    assert again.description == OUTAGE_DESC + (" (with overrides: disruptions.0.end_h=30, "
                                               "policy.routing.name=cheapest, disruptions.0.start_h=26, "
                                               "policy.routing.allow_split=false)")
    # an override of the description itself is the user's text, as given
    own = load_scenario("warehouse_outage", ["disruptions.0.end_h=30", "description=Langfang down for 6 h"])
    assert own.description == "Langfang down for 6 h"


def test_scaling_is_named_in_the_description() -> None:
    from twin.scenario.loader import scale_scenario

    sc = scale_scenario(load_scenario("warehouse_outage", ["drain_h=24"]), 0.1)
    assert sc.description == OUTAGE_DESC + " (with overrides: drain_h=24; scale x0.1)"
    assert scale_scenario(load_scenario("warehouse_outage"), 0.5).description == OUTAGE_DESC + " (with scale x0.5)"


@pytest.mark.parametrize("factor", [float("inf"), float("nan"), 0.0, -1.0, True, "2"])
def test_scale_factor_must_be_a_finite_positive_number(factor: object) -> None:
    from twin.scenario.loader import scale_scenario

    with pytest.raises(ValueError) as exc:
        scale_scenario(load_scenario("baseline"), factor)  # type: ignore[arg-type]
    assert str(exc.value) == f"scale factor must be a finite number > 0, got {factor!r}"
