"""``twin stress`` (issue 12): Monte Carlo over risk events on common random numbers, the KPI
distributions and per-day table from the runs, the events behind the worst runs, and the
exposure table whose time to survive is exact on a network built so it can be worked out by
hand; the same runs in one process and in spawned workers; the command's outputs and errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from twin.cli import main
from twin.scenario.loader import validate_scenario
from twin.studies.stress import busiest_hour, exposure_nodes, stress, write_stress


def _doc(**extra: object) -> dict:
    """One warehouse far beyond its demand; two regions; a 4 h promise against 2 h of transit
    and departures every 0.5 h: without disruptions every order is on time.

    By hand, a total loss from t0 = 2 h for d hours: parcels wait and leave at t0 + d (a
    departure time on the 0.5 h grid), delivered at t0 + d + 2, on time for an order created at
    t >= t0 iff t0 + d + 2 <= t + 4. On the 1.5 h grid: d = 1.5 keeps every order on time; d = 3
    makes the orders created in [t0, t0 + 1) late (all of them for the carrier, region B's half
    for B's lanes: hour t0 at 0 or 0.5 < 0.9). So TTS = 1.5 h for the carrier and for B's lanes;
    a warehouse outage loses every order created in it at once: TTS = 0."""
    doc = {
        "name": "two_regions", "horizon_h": 10, "drain_h": 30, "seed": 0,
        "warehouses": [{"name": "w1", "lat": 31.0, "lon": 121.0,
                        "pick": {"agvs": 500, "lines_per_agv_h": 5000, "pick_time": "deterministic"},
                        "stock": {"units_per_sku": 1_000_000}}],
        "regions": [{"name": "A", "lat": 31.2, "lon": 121.4, "weight": 1.0},
                    {"name": "B", "lat": 30.3, "lon": 120.2, "weight": 1.0}],
        "carriers": [{"name": "c1", "departure_interval_h": 0.5, "first_departure_h": 0.5, "capacity": 100_000,
                      "transit": {"base_h": 2.0, "speed_kmh": 1e4, "distribution": "deterministic"}}],
        "demand": {"base_rate_per_h": 300, "skus": {"count": 20},
                   "service_levels": {"standard": {"share": 1.0, "promise_h": 4}}, "unfulfillable": "lost"},
        "replenishment": {"mode": "none"},
        "risks": {"events": [
            {"name": "b_closed", "probability": 0.5, "window": {"start_h": 1, "end_h": 6}, "duration_h": 3,
             "disruption": {"type": "weather", "regions": ["B"], "closes_lanes": True}},
            {"name": "w1_down", "probability": 0.3, "window": {"start_h": 2, "end_h": 7},
             "duration_h": {"distribution": "uniform", "low_h": 1, "high_h": 2},
             "disruption": {"type": "warehouse_outage", "warehouse": "w1"}},
        ]},
    }
    doc.update(extra)
    return doc


@pytest.fixture(scope="module")
def result():
    sc = validate_scenario(_doc(), "test")
    return stress(sc, runs=8, seed=10, workers=1, tts_seeds=2, at_h=2.0, step_h=1.5)


def test_the_time_to_survive_by_hand(result) -> None:
    by = {(r["kind"], r["name"], r["seed"]): r for r in result.tts_runs}
    assert set(by) == {(k, n, s) for k, n in (("warehouse", "w1"), ("carrier", "c1"), ("lanes", "B"))
                       for s in (10, 11)}
    for s in (10, 11):
        assert by[("warehouse", "w1", s)]["tts_h"] == 0.0
        assert by[("carrier", "c1", s)]["tts_h"] == 1.5
        assert by[("lanes", "B", s)]["tts_h"] == 1.5
        assert not any(r["censored"] for r in by.values())
    ex = result.exposure.set_index(["kind", "node"])
    assert ex.loc[("lanes", "B"), "tts_h"] == 1.5 and ex.loc[("lanes", "B"), "tts_ci95"] == 0.0
    # TTR: the drawn durations of the events that take the node out (b_closed: always 3 h)
    fired_b = [r for r in result.runs if any(e["name"] == "b_closed" for e in r["events"])]
    assert ex.loc[("lanes", "B"), "ttr_h"] == 3.0 and ex.loc[("lanes", "B"), "ttr_n"] == len(fired_b) > 0
    downs = [e["duration_h"] for r in result.runs for e in r["events"] if e["name"] == "w1_down"]
    assert ex.loc[("warehouse", "w1"), "ttr_h"] == pytest.approx(np.mean(downs))
    assert ex.loc[("warehouse", "w1"), "p_hit"] == pytest.approx(
        sum(any(e["name"] == "w1_down" for e in r["events"]) for r in result.runs) / 8)
    # exposed: TTS < TTR for B's lanes (1.5 < 3) and the warehouse (0 < 1-2 h); the carrier has no TTR
    assert ex.loc[("lanes", "B"), "exposed"] and ex.loc[("warehouse", "w1"), "exposed"]
    assert not ex.loc[("carrier", "c1"), "exposed"] and ex.loc[("carrier", "c1"), "ttr_n"] == 0
    assert list(result.exposure["exposed"]) == sorted(result.exposure["exposed"], reverse=True)  # flagged first


def test_common_random_numbers_and_the_paired_calm_runs(result) -> None:
    t = result.table()
    assert list(t["seed"]) == list(range(10, 18))
    for r in result.runs:  # outages and closed lanes change no order: the calm run has the same ones
        assert r["kpis"]["orders_created"] == r["calm"]["kpis"]["orders_created"]
        assert r["day_created"] == r["calm"]["day_created"]
        assert r["calm"]["kpis"]["on_time_rate"] == 1.0 and r["calm"]["events"] == []
    # paired differences: what the events did to the same orders
    for _, row in t.iterrows():
        r = next(x for x in result.runs if x["seed"] == row["seed"])
        assert row["d_on_time_rate"] == pytest.approx(r["kpis"]["on_time_rate"] - 1.0)
        assert row["extra_late_or_lost"] == r["kpis"]["orders_created"] - round(
            r["kpis"]["on_time_rate"] * r["kpis"]["orders_created"])
        for e in ("b_closed", "w1_down"):
            assert row[f"event:{e}"] == int(any(x["name"] == e for x in r["events"]))


def test_distribution_daily_and_drivers_tables(result) -> None:
    t = result.table()
    on = t["on_time_rate"].to_numpy()
    k = result.kpis.loc["on_time_rate"]
    assert k["mean"] == pytest.approx(on.mean()) and k["n"] == 8
    assert k["best"] == on.max() and k["worst"] == on.min()  # higher is better
    lost = t["orders_lost"].to_numpy()
    assert result.kpis.loc["orders_lost", "best"] == lost.min() and result.kpis.loc["orders_lost", "worst"] == lost.max()
    assert k["ci95"] == pytest.approx(2.3646242510 * on.std(ddof=1) / math.sqrt(8))  # t(0.975, 7)
    # one day: its on-time rate per run is the run's on-time rate
    assert list(result.daily.index) == [0]
    assert result.daily.loc[0, "on_time_worst"] == pytest.approx(on.min())
    assert result.daily.loc[0, "lost_mean"] == pytest.approx(lost.mean())
    # the worst run (10% of 8: 1) is the one with the lowest on-time rate; drivers by hand
    assert result.worst == [int(t.loc[np.argmin(on), "seed"])]
    d = result.drivers
    for e in ("b_closed", "w1_down"):
        fired = t[f"event:{e}"].to_numpy().astype(bool)
        assert d.loc[e, "fired"] == pytest.approx(fired.mean())
        assert d.loc[e, "fired_in_worst"] == float(fired[np.argmin(on)])
        assert d.loc[e, "effect_on_on_time_rate"] == pytest.approx(on[fired].mean() - on[~fired].mean())


def test_outputs(result, tmp_path) -> None:
    out = write_stress(result, tmp_path / "s")
    for f in ("stress.json", "runs.csv", "kpis.csv", "daily.csv", "drivers.csv", "exposure.csv", "stress.md",
              "stress_quantiles.png", "stress_kpis.png", "stress_exposure.png"):
        assert (out / f).is_file(), f
    doc = json.loads((out / "stress.json").read_text())
    assert [r["seed"] for r in doc["runs"]] == list(range(10, 18))
    assert doc["runs"][0]["events"] == result.runs[0]["events"]  # the seed and its drawn events, per run
    assert pd.read_csv(out / "runs.csv")["on_time_rate"].tolist() == pytest.approx(
        result.table()["on_time_rate"].tolist())
    md = (out / "stress.md").read_text()
    assert "| lanes B | " in md and "**TTS < TTR**" in md


def test_the_same_runs_in_spawned_workers() -> None:
    sc = validate_scenario(_doc(), "test")
    one = stress(sc, runs=3, seed=10, workers=1, tts=False)
    two = stress(sc, runs=3, seed=10, workers=2, tts=False)
    assert [(r["seed"], r["events"], r["kpis"]) for r in one.runs] == [(r["seed"], r["events"], r["kpis"])
                                                                       for r in two.runs]


def test_nodes_and_the_busiest_hour() -> None:
    sc = validate_scenario(_doc(demand={"base_rate_per_h": 300, "profile": [[0, 1], [6, 3], [9, 1]],
                                        "service_levels": {"standard": {"share": 1.0, "promise_h": 4}}}), "t")
    assert busiest_hour(sc) == 5.0  # the rate at 5.5 h is the highest hour middle before the 6 h peak
    assert exposure_nodes(sc) == [("warehouse", "w1"), ("carrier", "c1"), ("lanes", "B")]
    assert exposure_nodes(sc, "all")[-2:] == [("lanes", "A"), ("lanes", "B")]


@pytest.mark.parametrize(("kw", "message"), [
    ({"runs": 0}, "--runs must be an integer >= 1, got 0"),
    ({"worst_by": "orders_created"}, "--worst-by must be a KPI with a better direction"),
    ({"tts_seeds": 9}, "--tts-seeds must be between 1 and --runs (3), got 9"),
    ({"at_h": 12.0}, "--tts-at must be within the horizon [0, 10), got 12"),
    ({"paired": False}, "the exposure table needs the paired calm runs"),
])
def test_bad_arguments_say_what_is_allowed(kw: dict, message: str) -> None:
    sc = validate_scenario(_doc(), "test")
    with pytest.raises(ValueError) as e:
        stress(sc, **{"runs": 3, **kw})
    assert message in str(e.value)


def test_the_command(tmp_path, capsys) -> None:
    import yaml

    f = tmp_path / "sc.yaml"
    f.write_text(yaml.safe_dump(_doc()))
    out = tmp_path / "out"
    assert main(["stress", str(f), "--runs", "3", "--tts-seeds", "1", "--tts-at", "2", "--tts-step-h", "1.5",
                 "-j", "1", "-q", "--no-plots", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "two_regions: 3 runs (seeds 0-2, engine kernel)" in text and "| lanes B |" in text
    assert (out / "exposure.csv").is_file() and not (out / "stress_kpis.png").exists()
    # user mistakes: one line, exit 2, no traceback
    calm = tmp_path / "calm.yaml"
    calm.write_text(yaml.safe_dump(_doc(risks={})))
    for argv, message in (
        (["stress", str(calm), "--runs", "2"], "has no risk events: add a risks: section or pass a risk file"),
        (["stress", str(f), "--runs", "2", "--risks", "nope"], "unknown risk file 'nope'"),
        (["stress", str(f), "--runs", "2", "--set", "risks.events.b_closed.probability=3"],
         "risks.events[0].probability: Input should be less than or equal to 1, got 3"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
