"""Issue 13, "every scenario that validates runs": one regression test per class the fuzzer found.

1. the loader lets only ScenarioError out, one line per problem naming the file and the line;
2. every number has finite bounds the engines honour, and a run that cannot fit is refused
   before it starts (the run-size estimate, the same for both engines);
3. what cannot mean anything (weights of inf/NaN or all 0, non-finite profiles) is refused.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import scenarios
from twin.cli import main
from twin.errors import ScenarioError
from twin.results.runs import simulate
from twin.scenario import schema
from twin.scenario.loader import MAX_DEPTH, MAX_FILE_BYTES, load_scenario, scale_scenario, validate_scenario
from twin.scenario.size import BYTES_PER_ORDER, BYTES_PER_SHIPMENT, Limits, estimate_run, run_limits
from twin.sim.model import FulfillmentModel

BASE = scenarios.builtin_path("baseline").read_text(encoding="utf-8")


def _file(tmp_path: Path, data: str | bytes, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def _problems(source, overrides=None) -> list[str]:  # noqa: ANN001
    with pytest.raises(ScenarioError) as exc:
        load_scenario(source, overrides)
    for p in exc.value.problems:
        assert "\n" not in p, p
    return exc.value.problems


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


# --------------------------------------------------------------------------- 1. the loader
BOMB = ("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n")

LOADER_CASES = [
    pytest.param("? [a, b]\n: 1\n", "at line 1, column 3: a key must be a name (a string), got the list [a, b]",
                 id="complex-key"),
    pytest.param("x:\n  ? {a: 1}\n  : 2\n", "at line 2, column 5: a key must be a name (a string), got the mapping {a: 1}",
                 id="mapping-key"),
    pytest.param("yes: 1\n", "at line 1, column 1: a key must be a name (a string), got True (bool) (YAML reads "
                 "yes/no/on/off/true/false as booleans: quote it)", id="boolean-key"),
    pytest.param("name: x\n12: 3\n", "at line 2, column 1: a key must be a name (a string), got 12 (int) (quote it)",
                 id="number-key"),
    pytest.param(b"name: x\nhorizon_h: 1\ndescription: \xff\xfe\n", "not UTF-8 text: byte 0xff at line 3, column 14 "
                 "cannot be decoded (save the file as UTF-8)", id="not-utf8"),
    pytest.param("name: x\n".encode("utf-16"), "not UTF-8 text: byte 0xff at line 1, column 1 cannot be decoded "
                 "(save the file as UTF-8)", id="utf16"),
    pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", f"at line 1, column {3 + MAX_DEPTH}: lists and mappings "
                 f"nested more than {MAX_DEPTH} deep", id="deep-flow"),  # the file's own mapping is the first
    pytest.param("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
                 f"at line {MAX_DEPTH + 1}, column {2 * MAX_DEPTH + 1}: lists and mappings nested more than "
                 f"{MAX_DEPTH} deep", id="deep-block"),
    pytest.param(BOMB, "at line 6, column 4: the document expands to more than 1,000,000 values (aliases *name "
                 "repeat their anchor &name: an alias bomb?)", id="alias-bomb"),
    pytest.param("a: &a [1, *a]\n", "at line 1, column 4: an alias refers to a list or mapping that contains it "
                 "(the value would be infinite)", id="recursive-alias"),
    pytest.param("a: *nowhere\n", "not valid YAML at line 1, column 4: found undefined alias 'nowhere'",
                 id="undefined-alias"),
    pytest.param("horizon_h: " + "9" * 5000 + "\n", "at line 1, column 12: cannot read the value "
                 f"'{'9' * 54}....': an integer of more than 4300 digits", id="huge-int"),
    pytest.param("horizon_h: 2020-13-45\n", "at line 1, column 12: cannot read the value '2020-13-45': month must "
                 "be in 1..12", id="bad-date"),
    pytest.param("name: a\x00b\n", "not valid YAML at line 1, column 8: character U+0000 is not allowed (special "
                 "characters are not allowed)", id="nul"),
    pytest.param("x: !!python/object:os.system ls\n", "not valid YAML at line 1, column 4: could not determine a "
                 "constructor for the tag 'tag:yaml.org,2002:python/object:os.system'", id="python-tag"),
    pytest.param("a: 1\n---\nb: 2\n", "not valid YAML at line 2, column 1: but found another document",
                 id="two-documents"),
    pytest.param("- a\n- b\n", "the file must hold a mapping of fields, got list", id="top-level-list"),
    pytest.param("42\n", "the file must hold a mapping of fields, got int", id="top-level-scalar"),
    pytest.param("", "the file is empty: it must hold a mapping of fields (name, horizon_h, warehouses, ...)",
                 id="empty"),
    pytest.param("# only a comment\n", "the file is empty: it must hold a mapping of fields (name, horizon_h, "
                 "warehouses, ...)", id="only-comment"),
]


@pytest.mark.parametrize("data,problem", LOADER_CASES)
def test_a_bad_file_gets_one_line_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         data: str | bytes, problem: str) -> None:
    path = _file(tmp_path, data)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    assert exc.value.problems == [problem]
    assert exc.value.source == str(path)
    assert str(exc.value) == f"invalid scenario {path}:\n  {problem}"
    rc, out, err = _cli(capsys, "validate", str(path))
    assert rc == 2 and out == "" and err == f"twin: error: invalid scenario {path}:\n  {problem}\n"


def test_a_file_too_large_is_refused_unread(tmp_path: Path) -> None:
    path = _file(tmp_path, b"#" * (MAX_FILE_BYTES + 1))
    assert _problems(path) == ["the file is larger than 16 MiB (a scenario file is a few kB)"]


def test_paths_that_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").mkdir()
    assert _problems(tmp_path / "d.yaml") == [f"file not found: '{tmp_path / 'd.yaml'}'"]
    long = "a" * 5000 + ".yaml"
    assert _problems(long) == [f"cannot read '{long[:54]}....': File name too long"]
    assert _problems(42) == ["expected a built-in scenario name, a YAML file path or a Scenario, got int"]


def test_merge_keys_and_aliases_still_work(tmp_path: Path) -> None:
    doc = BASE.replace("warehouses:\n", "fleet: &fleet {agvs: 10, lines_per_agv_h: 20}\nwarehouses:\n", 1)
    assert _problems(_file(tmp_path, doc))[0].startswith("fleet: unknown field 'fleet'")  # anchors parse
    text = ("name: merged\nhorizon_h: 4\nwarehouses:\n  - &w {name: a, lat: 30, lon: 120, pick: {agvs: 4}}\n"
            "  - {<<: *w, name: b}\nregions: [{name: R, lat: 31, lon: 121, weight: 1}]\ncarriers: [{name: c}]\n"
            "demand: {base_rate_per_h: 10}\n")
    sc = load_scenario(_file(tmp_path, text, "m.yaml"))
    assert [w.name for w in sc.warehouses] == ["a", "b"] and sc.warehouses[1].pick.agvs == 4


OVERRIDE_CASES = [
    pytest.param(["seed=" + "[" * 100 + "]" * 100], [f"--set seed: at line 1, column {MAX_DEPTH + 1}: lists and "
                                                     f"mappings nested more than {MAX_DEPTH} deep"], id="deep"),
    pytest.param(["description=&a [*a]"], ["--set description: at line 1, column 1: an alias refers to a list or "
                                           "mapping that contains it (the value would be infinite)"], id="cycle"),
    pytest.param(["demand.service_levels={[a]: 1}"], ["--set demand.service_levels: at line 1, column 2: a key must "
                                                      "be a name (a string), got the list [a]"], id="complex-key"),
    pytest.param(["seed=" + "9" * 5000], [f"--set seed: at line 1, column 1: cannot read the value '{'9' * 54}....': "
                                          "an integer of more than 4300 digits"], id="huge-int"),
    pytest.param(["=5"], ["--set '=5': expected KEY=VALUE, e.g. warehouses.shanghai.pick.agvs=150"], id="no-key"),
    pytest.param([5], ["--set 5: expected KEY=VALUE, e.g. warehouses.shanghai.pick.agvs=150"], id="not-a-string"),
    pytest.param({5: 1}, ["--set 5: the key must be a dotted path such as warehouses.shanghai.pick.agvs"],
                 id="mapping-int-key"),
    pytest.param(["warehouses.²=1"], ["--set warehouses.²: no element '²' at warehouses.²; allowed: shanghai, "
                                      "hangzhou, nanjing, guangzhou, wuhan, chengdu, langfang, zhengzhou"],
                 id="unicode-digit"),
    pytest.param(["warehouses." + "9" * 30 + ".pick.agvs=1"],
                 [f"--set warehouses.{'9' * 30}.pick.agvs: no element '{'9' * 30}' at warehouses.{'9' * 30}; allowed: "
                  "shanghai, hangzhou, nanjing, guangzhou, wuhan, chengdu, langfang, zhengzhou"], id="huge-index"),
    pytest.param(["drain_h=.inf"], ["drain_h: Input should be a finite number, got inf; allowed: finite numbers >= 0 "
                                    "and <= 8760"], id="inf"),
]


@pytest.mark.parametrize("overrides,problems", OVERRIDE_CASES)
def test_a_bad_override_gets_a_scenario_error(overrides, problems: list[str]) -> None:  # noqa: ANN001
    assert _problems("baseline", overrides) == problems


def test_an_override_that_is_not_yaml_stays_text() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_scenario("baseline", ["horizon_h=[a: b"])
    assert exc.value.problems == ["horizon_h: Input should be a valid number, unable to parse string as a number, "
                                  "got '[a: b'"]


# --------------------------------------------------------------------------- 2. bounds
BOUND_CASES = [  # the brief's examples: each validated before and then overflowed, hung or raised in a run
    ({"drain_h": float("inf")}, "drain_h: Input should be a finite number, got inf; allowed: finite numbers >= 0 and "
     "<= 8760"),
    ({"drain_h": float("nan")}, "drain_h: Input should be a finite number, got nan; allowed: finite numbers >= 0 and "
     "<= 8760"),
    ({"demand.base_rate_per_h": 1e12}, "demand.base_rate_per_h: Input should be less than or equal to 100000000, "
     "got 1000000000000.0"),
    ({"carriers.0.departure_interval_h": 1e-9}, "carriers[0].departure_interval_h: Input should be greater than or "
     "equal to 0.01, got 1e-09"),
    ({"tick_h": 1e-300}, "tick_h: Input should be greater than or equal to 0.01, got 1e-300"),
    ({"warehouses.0.pick.mtbf_h": 1e-9}, "warehouses[0].pick.mtbf_h: Input should be greater than or equal to 0.01, "
     "got 1e-09"),
    ({"warehouses.0.pick.mttr_h": 1e-9}, "warehouses[0].pick.mttr_h: Input should be greater than or equal to 0.01, "
     "got 1e-09"),
    ({"warehouses.0.pick.battery_h": float("inf")}, "warehouses[0].pick.battery_h: Input should be a finite number, "
     "got inf; allowed: finite numbers >= 0.01 and <= 87600"),
    ({"warehouses.0.stock.units_per_sku": 2**63}, "warehouses[0].stock.units_per_sku: Input should be less than or "
     "equal to 1000000000, got 9223372036854775808"),
    ({"carriers.0.capacity": 2**63}, "carriers[0].capacity: Input should be less than or equal to 1000000000, got "
     "9223372036854775808"),
    ({"carriers.0.transit.speed_kmh": 1e-300}, "carriers[0].transit.speed_kmh: Input should be greater than or equal "
     "to 1, got 1e-300"),
    ({"warehouses.0.pick.lines_per_agv_h": 1e-300}, "warehouses[0].pick.lines_per_agv_h: Input should be greater than "
     "or equal to 0.01, got 1e-300"),
    ({"demand.backorder_retry_h": 1e-9}, "demand.backorder_retry_h: Input should be greater than or equal to 0.01, "
     "got 1e-09"),
    ({"disruptions": [{"type": "warehouse_outage", "warehouse": "wuhan", "start_h": 1, "end_h": float("inf")}]},
     "disruptions[0].end_h: Input should be a finite number, got inf; allowed: finite numbers >= 0 and <= 87600"),
    ({"seed": 2**63}, "seed: Input should be less than or equal to 9223372036854775807, got 9223372036854775808"),
    ({"regions": []}, "regions: must list at least one region, or name a preset ({preset: china_provinces})"),
    ({"regions.include": []}, "regions.include: List should have at least 1 item after validation, not 0"),
    ({"carriers.0.regions": []}, "carriers[0].regions: must name at least one region, or be 'all'"),
    ({"carriers.0.warehouses": []}, "carriers[0].warehouses: must name at least one warehouse, or be 'all'"),
    ({"weather.events": [{"name": "t", "regions": [], "start_h": 1, "end_h": 2}]},
     "weather.events[0].regions: List should have at least 1 item after validation, not 0"),
    ({"disruptions": [{"type": "demand_surge", "regions": [], "multiplier": 2, "start_h": 1, "end_h": 2}]},
     "disruptions[0].regions: must name at least one region, or be 'all'"),
    ({"demand.service_levels": {f"s{i}": {"share": 1 / 128, "promise_h": 24} for i in range(128)}},
     "demand.service_levels: at most 127 service levels (a record keeps the level in one byte), got 128"),
]


@pytest.mark.parametrize("overrides,problem", BOUND_CASES, ids=[next(iter(c[0])) for c in BOUND_CASES])
def test_every_number_has_finite_bounds_named_in_the_error(overrides: dict, problem: str) -> None:
    assert _problems("baseline", overrides) == [problem]


def test_the_kernels_service_level_limit_is_the_schemas_and_both_engines_run_it() -> None:
    levels = {f"s{i}": {"share": 1 / 127, "promise_h": 1 + i} for i in range(127)}
    sc = scale_scenario(load_scenario("baseline", {"demand.service_levels": levels, "horizon_h": 4, "drain_h": 4}), 0.05)
    for engine in ("kernel", "simpy"):
        res = simulate(sc, engine=engine)
        assert res.kpis["orders_created"] > 0
        assert res.orders["service_level"].cat.categories.size <= 127


def test_scaling_past_the_bounds_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError) as exc:
        scale_scenario(load_scenario("baseline"), 1e300)
    assert exc.value.source == "baseline (scaled x1e+300)"
    assert "demand.base_rate_per_h: Input should be less than or equal to 100000000, got 1.7e+303" in exc.value.problems
    assert any(p.startswith("warehouses[0].pick.agvs: Input should be less than or equal to 100000, got 1600000")
               for p in exc.value.problems)
    with pytest.raises(ScenarioError) as exc:  # past the floats: inf, which the schema names
        scale_scenario(load_scenario("baseline", {"carriers.0.capacity": 10**9}), 1e305)
    assert "carriers[0].capacity: Input should be a finite number, got inf; allowed: finite numbers >= 0 and <= 1e+09" \
        in exc.value.problems


# --------------------------------------------------------------------------- 2. the run-size estimate
def _refusal(overrides: dict, **limits: float) -> list[str]:
    sc = load_scenario("baseline", overrides)
    with pytest.raises(ScenarioError) as exc:
        estimate_run(sc).check(Limits(**limits) if limits else None)
    return exc.value.problems


def test_the_estimate_uses_the_engines_demand_formula() -> None:
    for name in ("baseline", "singles_day", "typhoon", "erlang_c"):
        sc = load_scenario(name)
        model = FulfillmentModel(sc, timeseries=False)
        assert estimate_run(sc).orders == pytest.approx(model.demand.expected_orders(), rel=1e-12)
    peak = estimate_run(load_scenario("national_peak"))
    assert peak.orders == pytest.approx(10.06e6, rel=0.01) and peak.orders_max == peak.orders


@pytest.mark.parametrize("name", scenarios.builtin_names())
def test_every_builtin_fits(name: str) -> None:
    size = estimate_run(load_scenario(name)).check()
    assert size.problems() == []
    assert str(size).startswith("run size: ~")


def _readme_scenario() -> dict:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text.split("## Writing a scenario", 1)[1], re.S)
    assert block is not None
    return yaml.safe_load(block.group(1))


def test_the_readme_scenario_validates_fits_and_runs_on_both_engines() -> None:
    sc = validate_scenario(_readme_scenario(), "README.md")
    estimate_run(sc).check()
    small = scale_scenario(load_scenario(sc, {"horizon_h": 8, "drain_h": 8}), 0.05)
    for engine in ("kernel", "simpy"):
        assert simulate(small, engine=engine).kpis["orders_created"] > 0


def test_too_many_orders_are_refused_with_the_figures_and_a_scale() -> None:
    problems = _refusal({"demand.base_rate_per_h": 1e7}, memory_bytes=1e15)
    assert problems == [
        "demand.base_rate_per_h: the run would create up to 480 million orders; at most 50 million fit one run: "
        "lower demand.base_rate_per_h or horizon_h, or run it scaled down (--scale 0.09)",
        "demand.base_rate_per_h: the run would process ~4.08 billion events (orders 4.08 billion, departures 880, "
        "AGV breakdowns 616); at most 1 billion: lower demand.base_rate_per_h or horizon_h, or run it scaled down "
        "(--scale 0.09)",
    ]
    ok = scale_scenario(load_scenario("baseline", {"demand.base_rate_per_h": 1e7}), 0.09)
    assert estimate_run(ok).problems(Limits(memory_bytes=1e15)) == []  # the suggested --scale fits


def test_records_over_the_memory_budget_are_refused() -> None:
    problems = _refusal({"demand.base_rate_per_h": 1e5}, memory_bytes=2**30)
    assert problems == ["demand.base_rate_per_h: the run would need ~2.06 GiB of memory (records 2.06 GiB, stock "
                        "tables 289 kiB, time series 258 kiB); the budget is 1 GiB (the limit set): run it scaled down "
                        "(--scale 0.4) or shorten horizon_h"]
    size = estimate_run(load_scenario("baseline", {"demand.base_rate_per_h": 1e5}))
    assert size.orders_max == pytest.approx(4.8e6) and size.shipments_max == pytest.approx(1.5 * 4.8e6)  # 1.5 lines
    assert size.memory["records"] == pytest.approx(4.8e6 * BYTES_PER_ORDER + 2.4e6 * BYTES_PER_SHIPMENT)


def test_stock_tables_over_the_budget_are_refused_and_the_default_budget_is_the_machines() -> None:
    from twin.scenario.size import MEMORY_SHARE, machine_memory_bytes

    assert Limits().memory == MEMORY_SHARE * machine_memory_bytes() > 2**30
    assert _refusal({"demand.skus.count": 1_000_000, "demand.base_rate_per_h": 10}, memory_bytes=2**28) == [
        "demand.skus.count: the run would need ~565 MiB of memory (stock tables 565 MiB, time series 258 kiB, delivery "
        "calendar 245 kiB); the budget is 256 MiB (the limit set): fewer SKUs (demand.skus.count) or warehouses"]


def test_agv_breakdowns_are_counted_and_refused_before_the_schedule_is_drawn() -> None:
    ov = {"horizon_h": 8760, "drain_h": 8760, "warehouses.0.pick.agvs": 100_000, "warehouses.0.pick.mtbf_h": 0.01,
          "warehouses.0.pick.mttr_h": 0.01}
    sc = load_scenario("baseline", ov)
    size = estimate_run(sc)
    assert size.events["AGV breakdowns"] == pytest.approx(100_000 * 2 * 17_520 / 0.02)
    for engine in ("kernel", "simpy"):  # both engines refuse it, before drawing 1.75e11 breakdowns
        t0 = time.perf_counter()
        with pytest.raises(ScenarioError) as exc:
            FulfillmentModel(sc, engine=engine)
        assert time.perf_counter() - t0 < 2
        assert exc.value.problems[0] == (
            "warehouses[0].pick.mtbf_h: the run would process ~175 billion events (AGV breakdowns 175 billion, orders "
            "127 million, departures 128,480); at most 1 billion: raise warehouses[0].pick.mtbf_h and mttr_h, or use "
            "fewer AGVs")
        assert exc.value.problems[2].startswith("warehouses[0].pick.mtbf_h: the run would need ~11.5 TiB of memory "
                                                "(AGV schedules 11.5 TiB,")


@pytest.mark.parametrize("overrides,limits,first", [
    ({"carriers.0.departure_interval_h": 0.01, "demand.base_rate_per_h": 10}, {"max_events": 5e4},
     "carriers[0].departure_interval_h: the run would process ~100,556 events (departures 95,600, orders 4,080, AGV "
     "breakdowns 616); at most 50,000: raise departure_interval_h (carriers[0] departs 95,200 times)"),
    ({"tick_h": 0.01, "horizon_h": 8760, "drain_h": 8760}, {},
     "tick_h: the run would have 1.75 million ticks (horizon_h + drain_h = 17520 h); at most 1 million: raise tick_h"),
    ({"demand.unfulfillable": "backorder", "demand.backorder_retry_h": 0.01, "demand.backorder_max_h": 87_600,
      "drain_h": 200}, {},
     "demand.backorder_retry_h: the run would process ~2.02 billion events (backorder retries 2.02 billion, orders "
     "693,600, departures 1,820); at most 1 billion: raise demand.backorder_retry_h or lower backorder_max_h"),
    ({"replenishment.review_interval_h": 0.01, "demand.skus.count": 1_000_000}, {},
     "replenishment.review_interval_h: the run's array steps would touch ~576 billion cells (stock reviews 576 "
     "billion, network 8 million, weather updates 11,160); at most 100 billion: raise "
     "replenishment.review_interval_h, or use fewer SKUs"),
    ({"carriers.0.transit.speed_kmh": 1, "carriers.0.transit.distribution": "exponential",
      "weather.states.2.transit_multiplier": 100}, {},
     "carriers[0].transit: a parcel may be delivered as late as t = 51.9 million h (base_h 4 + up to 25,019 km at "
     "speed_kmh 1, x100 in the worst weather, a 1-in-a-billion exponential draw); the kernel's hourly delivery calendar "
     "spans at most 10 million h: raise speed_kmh, lower base_h or the weather transit multipliers"),
], ids=["departures", "ticks", "backorder-retries", "stock-reviews", "delivery-calendar"])
def test_each_size_driver_is_named_with_what_to_change(overrides: dict, limits: dict, first: str) -> None:
    assert _refusal(overrides, **{"memory_bytes": 1e15, **limits})[0] == first


def test_both_engines_refuse_the_same_run_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ov = {"tick_h": 0.01, "horizon_h": 8760, "drain_h": 8760}
    sc = load_scenario("baseline", ov)
    seen = []
    for engine in ("kernel", "simpy"):
        t0 = time.perf_counter()
        with pytest.raises(ScenarioError) as exc:
            simulate(sc, engine=engine)
        assert time.perf_counter() - t0 < 2
        seen.append(exc.value.problems)
    assert seen[0] == seen[1] and seen[0][0].startswith("tick_h: the run would have 1.75 million ticks")
    out = tmp_path / "out"
    sets = [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]
    rc, stdout, err = _cli(capsys, "run", "baseline", *sets, "--out", str(out), "-q")
    assert rc == 2 and "Traceback" not in err and not out.exists()
    assert err.startswith("twin: error: invalid scenario baseline:\n  tick_h: the run would have 1.75 million ticks")
    rc, stdout, err = _cli(capsys, "validate", "baseline", *sets)
    assert rc == 2 and stdout == "" and "tick_h: the run would have 1.75 million ticks" in err


def test_validate_prints_the_estimate(capsys: pytest.CaptureFixture) -> None:
    rc, out, err = _cli(capsys, "validate", "baseline")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "baseline: valid (8 warehouses, 31 regions, 3 carriers, 500 SKUs, horizon 48 h)"
    assert re.fullmatch(r"run size: ~81,600 orders, ~695,356 events, 120 ticks of 1 h, ~36\.\d MiB of memory "
                        r"\(budget [\d.]+ GiB\)", lines[1]), lines[1]


def test_run_limits_apply_within_the_block_only() -> None:
    sc = scale_scenario(load_scenario("baseline", {"horizon_h": 4, "drain_h": 2}), 0.05)
    with run_limits(max_orders=10):
        with pytest.raises(ScenarioError, match=r"demand.base_rate_per_h: the run would create up to \d+ orders"):
            FulfillmentModel(sc)
    FulfillmentModel(sc)


# --------------------------------------------------------------------------- 3. what cannot mean anything
MEANINGLESS = [
    ({"policy.routing.name": "weighted", "policy.routing.weights": {"cost": 0, "time_h": 0, "co2_kg": 0}},
     ["policy.routing.weights: weighted routing needs at least one of cost, time_h, co2_kg > 0, got all 0"]),
    ({"policy.routing.name": "weighted", "policy.routing.weights.cost": float("inf")},
     ["policy.routing.weights.cost: Input should be a finite number, got inf; allowed: finite numbers >= 0 and "
      "<= 1e+06"]),
    ({"policy.routing.name": "weighted", "policy.routing.weights.time_h": float("nan")},
     ["policy.routing.weights.time_h: Input should be a finite number, got nan; allowed: finite numbers >= 0 and "
      "<= 1e+06"]),
    ({"regions": [{"name": "A", "lat": 30, "lon": 120, "weight": float("inf")},
                  {"name": "B", "lat": 31, "lon": 121, "weight": 1}]},
     ["regions[0].weight: Input should be a finite number, got inf; allowed: finite numbers > 0 and <= 1e+12"]),
    ({"regions": [{"name": "A", "lat": 30, "lon": 120, "weight": 0}, {"name": "B", "lat": 31, "lon": 121, "weight": 0}]},
     ["regions[0].weight: Input should be greater than 0, got 0", "regions[1].weight: Input should be greater than 0, "
      "got 0"]),
    ({"demand.profile": [[0, 1], [24, float("nan")]]},
     ["demand.profile[1][1]: Input should be a finite number, got nan; allowed: finite numbers >= 0 and <= 1000"]),
    ({"demand.profile": [[float("-inf"), 1]]},
     ["demand.profile[0][0]: Input should be a finite number, got -inf; allowed: finite numbers >= 0 and <= 87600"]),
    ({"weather.transition.0": [float("nan"), 0.5, 0.5]},
     ["weather.transition[0][0]: Input should be a finite number, got nan"]),
]


@pytest.mark.parametrize("overrides,problems", MEANINGLESS, ids=[
    "weights-all-0", "weight-inf", "weight-nan", "region-weight-inf", "region-weights-all-0", "profile-nan",
    "profile-time-inf", "transition-nan"])
def test_what_cannot_mean_anything_is_refused(overrides: dict, problems: list[str]) -> None:
    assert _problems("baseline", overrides) == problems


def test_a_zero_criterion_under_weighted_routing_is_valid() -> None:
    """An all-electric fleet (CO2 0 on every lane) means something: the CO2 term adds nothing
    (twin.policies.heuristics.WeightedScore), so the schema accepts it."""
    ov = {"policy.routing.name": "weighted", **{f"carriers.{i}.co2": {"per_parcel_kg": 0, "per_km_kg": 0}
                                               for i in range(3)}}
    sc = scale_scenario(load_scenario("baseline", {**ov, "horizon_h": 4, "drain_h": 4}), 0.05)
    assert simulate(sc).kpis["orders_lost"] == 0


def test_the_limits_are_exported_and_consistent() -> None:
    assert schema.MAX_SERVICE_LEVELS == 127
    assert schema.Scenario.model_config["allow_inf_nan"] is False
    from twin.scenario import size
    from twin.world.network import ROAD_FACTOR

    assert size.MAX_ROAD_KM == pytest.approx(ROAD_FACTOR * np.pi * 6371.0)


# --------------------------------------------------------------------------- engines: what fuzzing found there
def test_a_finished_model_can_be_freed() -> None:
    """Mesa 3 kept every model in ``mesa.Agent._ids`` (a dict keyed by the model): 3,000 fuzzed
    runs of a 1M-SKU scenario held ~330 MB each until the machine ran out of memory."""
    import gc
    import weakref

    sc = scale_scenario(load_scenario("baseline", {"horizon_h": 2, "drain_h": 2}), 0.01)
    for engine in ("kernel", "simpy"):
        model = FulfillmentModel(sc, engine=engine)
        model.run()
        ref = weakref.ref(model)
        del model
        gc.collect()
        assert ref() is None, engine
