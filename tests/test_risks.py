"""Risk events (issue 12): the ``risks:`` section is validated with errors naming the field;
draws follow their probabilities, windows, durations, dependencies and correlation groups
(frequencies within binomial bounds over many draws, without simulating); each run draws from
its own ``risk`` stream, records what fired, and plays the drawn events exactly as scripted
disruptions, on common random numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import twin
from twin.errors import ScenarioError
from twin.scenario.loader import scale_scenario, validate_scenario
from twin.scenario.risks import (
    DrawnEvent,
    disruption_windows,
    draw_risks,
    duration_from_uniform,
    load_risks,
    realise_risks,
    realised_doc,
    with_risks,
)
from twin.scenario.schema import RiskDuration
from twin.sim.rng import RunStreams

#: Draws per frequency test, and the z of the bounds: 4.0 sigma keeps a correct sampler inside
#: them (the seeds are fixed, so the test is deterministic; a wrong probability by 0.03 is out).
N = 6000
Z = 4.0


def _doc(risks: dict, **extra: object) -> dict:
    doc = twin.load_scenario("singles_day").model_dump(mode="json")
    doc["risks"] = risks
    doc.update(extra)
    return doc


def _sc(risks: dict, **extra: object) -> twin.Scenario:
    return validate_scenario(_doc(risks, **extra), "test")


def _outage(w: str = "nanjing") -> dict:
    return {"type": "warehouse_outage", "warehouse": w}


RISKS = {
    "groups": [{"name": "storm", "probability": 0.4, "window": {"start_h": 10, "end_h": 30},
                "duration_h": {"distribution": "uniform", "low_h": 6, "high_h": 18}}],
    "events": [
        {"name": "a", "probability": 0.3, "window": {"start_h": 0, "end_h": 40},
         "duration_h": {"distribution": "uniform", "low_h": 24, "high_h": 72}, "disruption": _outage()},
        {"name": "b", "only_if": "a", "probability": 0.5, "duration_h": {"distribution": "exponential", "mean_h": 5},
         "disruption": {"type": "carrier_capacity_loss", "carrier": "zto", "fraction": 0.5}},
        {"name": "c", "after": "a", "window": {"start_h": 2, "end_h": 5}, "duration_h": 3,
         "disruption": {"type": "demand_surge", "multiplier": 1.2}},
        {"name": "zj", "group": "storm", "disruption": {"type": "weather", "regions": ["Zhejiang"],
                                                           "closes_lanes": True}},
        {"name": "sh", "group": "storm", "probability": 0.5, "lag_h": 3,
         "disruption": {"type": "weather", "regions": ["Shanghai"], "closes_lanes": True}},
        {"name": "cut", "group": "storm", "probability": 0.25, "lag_h": 1,
         "duration_h": {"distribution": "lognormal", "mean_h": 8, "cv": 0.5}, "disruption": _outage("hangzhou")},
    ],
}


@pytest.fixture(scope="module")
def draws() -> list[dict[str, DrawnEvent]]:
    sc = _sc(RISKS)
    return [{d.name: d for d in draw_risks(sc, RunStreams(seed).risk)} for seed in range(N)]


def _within(count: int, n: int, p: float) -> None:
    """``count`` of ``n`` is within Z binomial standard deviations of ``n p``."""
    sd = math.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= Z * sd + 1e-9, f"{count}/{n} against p={p} (±{Z * sd / n:.4f})"


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("risks", "message"), [
    ({"events": [{"name": "a", "probability": 1.5, "duration_h": 5, "disruption": _outage()}]},
     "risks.events[0].probability: Input should be less than or equal to 1, got 1.5"),
    ({"events": [{"name": "a", "duration_h": 5, "disruption": _outage("nanjin")}]},
     "risks.events[0].disruption.warehouse: unknown warehouse 'nanjin'; allowed: shanghai"),
    ({"events": [{"name": "a", "duration_h": 5, "disruption": {**_outage(), "start_h": 3}}]},
     "risks.events[0].disruption.start_h: not allowed in a risk event"),
    ({"events": [{"name": "a", "duration_h": 5, "disruption": {"type": "outage", "warehouse": "nanjing"}}]},
     ("risks.events[0].disruption.type: unknown type 'outage'; allowed: warehouse_outage, carrier_capacity_loss, "
      "agv_breakdown, cold_chain_failure, demand_surge, weather")),
    ({"events": [{"name": "a", "disruption": _outage()}]},
     "risks.events[0].duration_h: field required"),
    ({"events": [{"name": "a", "duration_h": -4, "disruption": _outage()}]},
     "risks.events[0].duration_h: must be a finite duration > 0 and <= 87600 hours"),
    ({"events": [{"name": "a", "duration_h": {"distribution": "uniform", "low_h": 5}, "disruption": _outage()}]},
     "risks.events[0].duration_h.low_h: a uniform duration needs low_h and high_h"),
    ({"events": [{"name": "a", "duration_h": {"distribution": "lognormal"}, "disruption": _outage()}]},
     "risks.events[0].duration_h.mean_h: a lognormal duration needs mean_h"),
    ({"events": [{"name": "a", "duration_h": 2, "only_if": "z", "disruption": _outage()}]},
     "risks.events[0].only_if: unknown event 'z'; allowed: a"),
    ({"events": [{"name": "a", "duration_h": 2, "after": "b", "disruption": _outage()},
                 {"name": "b", "duration_h": 2, "only_if": "a", "disruption": _outage()}]},
     "risks.events: dependencies go round in a circle: a -> b -> a"),
    ({"events": [{"name": "a", "group": "g", "disruption": _outage()}]},
     "risks.events[0].group: unknown group 'g'; allowed: (none)"),
    ({"groups": [{"name": "g", "probability": 1, "duration_h": 4}],
      "events": [{"name": "a", "group": "g", "window": {"start_h": 1, "end_h": 2}, "disruption": _outage()}]},
     "risks.events[0].window: a member of group 'g' starts at the group's time"),
    ({"events": [{"name": "a", "duration_h": 2, "lag_h": 3, "disruption": _outage()}]},
     "risks.events[0].lag_h: only a member of a group"),
    ({"events": [{"name": "a", "duration_h": 2, "disruption": {"type": "weather", "regions": ["Atlantis"]}}]},
     "risks.events[0].disruption.regions[0]: unknown region 'Atlantis'"),
    ({"events": [{"name": "a", "duration_h": 2, "disruption": _outage()},
                 {"name": "a", "duration_h": 2, "disruption": _outage()}]},
     "risks.events: names must be unique, got ['a', 'a']"),
])
def test_bad_risks_name_the_field(risks: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        validate_scenario(_doc(risks), "test")
    assert message in str(e.value)


@pytest.mark.parametrize(("recovery", "message"), [
    ({"failure": 0.95, "recovery": 0.9}, "recovery: must be >= failure for the on-time rate, got failure=0.95, recovery=0.9"),
    ({"failure": 1.5}, "recovery.failure: an on-time rate is a share 0..1, got 1.5"),
    ({"metric": "backlog", "failure": 100, "recovery": 200}, "recovery: must be <= failure for the backlog (shipments), got failure=100"),
    ({"metric": "lateness"}, "recovery.metric: Input should be 'on_time_rate' or 'backlog'"),
])
def test_bad_recovery_thresholds_name_the_field(recovery: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        validate_scenario(_doc({}, recovery=recovery), "test")
    assert message in str(e.value)


def test_risks_round_trip_and_take_overrides() -> None:
    sc = _sc(RISKS)
    again = validate_scenario(sc.model_dump(mode="json"), "again")
    assert again.risks == sc.risks
    assert twin.load_scenario(sc, {"risks.events.a.probability": 0.9}).risks.events[0].probability == 0.9
    assert twin.load_scenario(sc, {"risks.groups.storm.probability": 0.1}).risks.groups[0].probability == 0.1


# --------------------------------------------------------------------------- draws
def test_probabilities_dependencies_and_groups_within_binomial_bounds(draws) -> None:
    n_a = sum("a" in d for d in draws)
    _within(n_a, N, 0.3)
    # only_if: never without a; given a, with its own probability
    assert not any("b" in d and "a" not in d for d in draws)
    _within(sum("b" in d for d in draws if "a" in d), n_a, 0.5)
    # after: exactly when a fired (probability 1)
    assert all(("c" in d) == ("a" in d) for d in draws)
    # the group: zj fires with the storm (0.4), sh given the storm 0.5, cut 0.25
    n_storm = sum("zj" in d for d in draws)
    _within(n_storm, N, 0.4)
    assert not any(("sh" in d or "cut" in d) and "zj" not in d for d in draws)
    _within(sum("sh" in d for d in draws), n_storm, 0.5)
    _within(sum("cut" in d for d in draws), n_storm, 0.25)
    # correlated, not independent: P(zj and sh) = 0.4 * 0.5 = 0.2, against 0.4 * 0.2 = 0.08 independent
    _within(sum("zj" in d and "sh" in d for d in draws), N, 0.2)
    # independent events stay independent: a and the storm
    _within(sum("a" in d and "zj" in d for d in draws), N, 0.3 * 0.4)


def _mean_within(x: np.ndarray, mean: float, sd: float) -> None:
    half = Z * sd / math.sqrt(len(x))
    assert abs(x.mean() - mean) <= half, f"mean {x.mean():.4f} against {mean} ± {half:.4f}"


def test_times_and_durations_follow_their_windows_and_distributions(draws) -> None:
    a = [d["a"] for d in draws if "a" in d]
    start = np.array([x.start_h for x in a])
    dur = np.array([x.end_h - x.start_h for x in a])
    assert start.min() >= 0 and start.max() < 40 and dur.min() >= 24 and dur.max() <= 72
    _mean_within(start, 20.0, 40 / math.sqrt(12))  # uniform on [0, 40)
    _mean_within(dur, 48.0, 48 / math.sqrt(12))  # uniform on [24, 72]
    b = np.array([d["b"].end_h - d["b"].start_h for d in draws if "b" in d])
    _mean_within(b, 5.0, 5.0)  # exponential, mean 5
    for d in draws:
        if "c" in d:  # after a: 2-5 h after a ends, for 3 h
            off = d["c"].start_h - d["a"].end_h
            assert 2 <= off < 5 and d["c"].end_h - d["c"].start_h == pytest.approx(3.0)
        if "zj" in d:  # the group: one start in its window, one duration; members lag
            assert 10 <= d["zj"].start_h < 30 and 6 <= d["zj"].end_h - d["zj"].start_h <= 18
            if "sh" in d:
                assert d["sh"].start_h == pytest.approx(d["zj"].start_h + 3)
                assert d["sh"].end_h - d["sh"].start_h == pytest.approx(d["zj"].end_h - d["zj"].start_h)
            if "cut" in d:
                assert d["cut"].start_h == pytest.approx(d["zj"].start_h + 1)
    cut = np.array([d["cut"].end_h - d["cut"].start_h for d in draws if "cut" in d])
    sigma = math.sqrt(math.log1p(0.25))
    _mean_within(np.log(cut), math.log(8) - sigma**2 / 2, sigma)  # lognormal, mean 8, cv 0.5


def test_durations_by_inversion_by_hand() -> None:
    assert duration_from_uniform(RiskDuration(distribution="uniform", low_h=24, high_h=72), 0.25) == 36.0
    assert duration_from_uniform(RiskDuration(mean_h=7), 0.9) == 7.0
    assert duration_from_uniform(RiskDuration(distribution="exponential", mean_h=10), 0.5) == pytest.approx(
        10 * math.log(2))
    # the lognormal's median: exp(mu) = mean / sqrt(1 + cv^2)
    assert duration_from_uniform(RiskDuration(distribution="lognormal", mean_h=8, cv=0.5), 0.5) == pytest.approx(
        8 / math.sqrt(1.25))


def test_each_event_keeps_its_draws_when_another_changes() -> None:
    """Three uniforms per group and event, whatever fires: raising b's probability or changing
    a's duration moves no other event's times."""
    base = _sc(RISKS)
    doc = _doc(RISKS)
    doc["risks"]["events"][1]["probability"] = 1.0
    doc["risks"]["events"][0]["duration_h"] = 30
    other = validate_scenario(doc, "other")
    for seed in range(200):
        a = {d.name: d for d in draw_risks(base, RunStreams(seed).risk)}
        b = {d.name: d for d in draw_risks(other, RunStreams(seed).risk)}
        assert ("a" in a) == ("a" in b)
        for name in ("zj", "sh", "cut"):
            assert (name in a) == (name in b)
            if name in a:
                assert a[name].disruption == b[name].disruption
        if "a" in a:
            assert a["a"].start_h == b["a"].start_h and b["a"].end_h == b["a"].start_h + 30


# --------------------------------------------------------------------------- runs
def _small(risks: dict) -> twin.Scenario:
    sc = _sc(risks, horizon_h=10, drain_h=30)
    return scale_scenario(sc, 0.05)


SMALL = {"events": [
    {"name": "out", "probability": 0.7, "window": {"start_h": 1, "end_h": 5}, "duration_h": 3,
     "disruption": _outage("langfang")},
    {"name": "storm", "probability": 0.7, "window": {"start_h": 2, "end_h": 4}, "duration_h": 4,
     "disruption": {"type": "weather", "regions": ["Beijing", "Hebei"], "closes_lanes": True}},
]}


def test_a_run_records_its_draws_and_plays_them_as_scripted_disruptions() -> None:
    sc = _small(SMALL)
    seed = next(s for s in range(50) if len(draw_risks(sc, RunStreams(s).risk)) == 2)
    res = twin.simulate(sc, seed=seed)
    drawn = draw_risks(sc, RunStreams(seed).risk)
    assert res.kpis["risk_events"] == [d.as_dict() for d in drawn]
    assert [e["name"] for e in res.kpis["risk_events"]] == ["out", "storm"]
    assert res.kpis["risk_events"][1]["disruption"]["name"] == "storm"
    # the realised scenario, scripted, run on the same seed: the very same run
    realised, again = realise_risks(sc, RunStreams(seed).risk)
    assert again == drawn and not realised.risks.events
    assert len(realised.disruptions) == 1 and realised.weather.events[-1].name == "storm"
    for engine in ("kernel", "simpy"):
        a = twin.simulate(sc, seed=seed, engine=engine)
        b = twin.simulate(realised, seed=seed, engine=engine)
        cols = ["order_id", "created_at", "warehouse", "shipped_at", "delivered_at", "status"]
        assert a.orders[cols].equals(b.orders[cols])
        assert a.kpis["on_time_rate"] == b.kpis["on_time_rate"]
    # the recovery KPIs name the drawn events by name
    assert set(res.kpis["time_to_recover_h_by_disruption"]) == {"out", "storm"}
    # the report's windows: the scenario's document with the drawn events added
    doc = realised_doc(sc.model_dump(mode="json"), res.kpis["risk_events"])
    assert doc["disruptions"][-1] == drawn[0].disruption.model_dump(mode="json")
    assert doc["weather"]["events"][-1] == drawn[1].disruption.model_dump(mode="json")
    assert [w.label for w in disruption_windows(sc, drawn)] == ["out", "storm"]


def test_the_same_orders_whatever_events_fire() -> None:
    """Common random numbers: the risk stream is the run's own, so a run with an outage drawn
    and a run without risks see the same orders on the same seed."""
    sc = _small(SMALL)
    calm = _small({})
    for seed in range(3):
        a, b = twin.simulate(sc, seed=seed), twin.simulate(calm, seed=seed)
        assert "risk_events" in a.kpis and "risk_events" not in b.kpis
        if any(e["type"] == "weather" for e in a.kpis["risk_events"]):
            continue  # a storm closes lanes, not the orders: still the same
        for col in ("order_id", "created_at", "region"):
            assert a.orders.drop_duplicates("order_id")[col].reset_index(drop=True).equals(
                b.orders.drop_duplicates("order_id")[col].reset_index(drop=True))


def test_the_built_in_peak_risk_file() -> None:
    risks = load_risks("peak")
    sc = with_risks(twin.load_scenario("singles_day"), risks)
    assert len(sc.risks.events) == 12 and sc.risks.groups[0].name == "east_typhoon"
    assert sc.recovery.failure == 0.9 and sc.recovery.recovery == 0.95
    assert "(with risks from peak.yaml)" in sc.description
    # nanjing_closure asks the planners' question: 40% probability, 1-3 days
    n = 2000
    hits = [d for s in range(n) for d in draw_risks(sc, RunStreams(s).risk) if d.name == "nanjing_closure"]
    _within(len(hits), n, 0.4)
    assert all(24 <= d.end_h - d.start_h <= 72 for d in hits)
    with pytest.raises(ScenarioError, match="unknown risk file 'nope': not a file and not a built-in; built-ins: peak"):
        load_risks("nope")


def test_a_risk_file_with_a_bad_field_names_it(tmp_path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("risks: {events: []}\nrecovry: {}\n")
    with pytest.raises(ScenarioError, match="recovry: unknown field in a risk file; allowed: risks, recovery"):
        load_risks(f)
    f.write_text("risks: {events: [{name: a, duration_h: 3, disruption: {type: warehouse_outage, warehouse: x}}]}\n")
    with pytest.raises(ScenarioError, match=r"risks.events\[0\].disruption.warehouse: unknown warehouse 'x'"):
        with_risks(twin.load_scenario("singles_day"), load_risks(f))
