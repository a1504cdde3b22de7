"""`twin evaluate DIR` for an exported package: the package's policy and every baseline on
common seeds, paired 95% CIs (checked against runs made by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import t as student_t

from twin.policies import Cheapest, PromiseAware
from twin.policies.export import export_heuristic
from twin.results.gate import evaluate_package
from twin.results.runs import simulate
from twin.scenario.loader import load_scenario, scale_scenario

OVER = ["horizon_h=6", "drain_h=24"]


def _sc():
    return scale_scenario(load_scenario("singles_day", OVER), 0.05)


def test_differences_are_the_paired_ci_of_runs_made_by_hand(tmp_path: Path) -> None:
    from twin.results.bound import realised_objective

    pkg = export_heuristic("cheapest", tmp_path / "pkg", _sc())
    doc = evaluate_package(pkg, _sc(), replications=3, seed=11, baselines=["promise_aware", "cheapest"])
    assert list(doc["differences"]) == ["promise_aware"]  # the package's own heuristic is no baseline of it
    assert doc["seeds"] == [11, 12, 13]
    mine = [realised_objective(simulate(_sc(), seed=s, routing=Cheapest()).orders) for s in doc["seeds"]]
    base = [realised_objective(simulate(_sc(), seed=s, routing=PromiseAware()).orders) for s in doc["seeds"]]
    for k in ("objective_per_order", "cost_per_order", "co2_per_order_kg", "lost_rate"):
        assert [r[k] for r in doc["runs"]["cheapest"]] == [m[k] for m in mine], k  # the package routes as cheapest
        assert [r[k] for r in doc["runs"]["promise_aware"]] == [b[k] for b in base], k
        d = [m[k] - b[k] for m, b in zip(mine, base)]
        mean = sum(d) / 3
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
        ci = doc["differences"]["promise_aware"][k]
        assert ci["mean"] == pytest.approx(mean, abs=1e-12)
        assert ci["half_width"] == pytest.approx(student_t.ppf(0.975, 2) * sd / math.sqrt(3), abs=1e-12)
    # cheapest is cheaper than promise_aware on every seed of this day
    assert doc["differences"]["promise_aware"]["cost_per_order"]["high"] < 0


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from twin.cli import main

    pkg = export_heuristic("cheapest", tmp_path / "pkg", _sc())
    out = tmp_path / "ev"
    args = ["evaluate", str(pkg), "--scale", "0.05", "-r", "2", "--out", str(out)]
    for o in OVER:
        args += ["--set", o]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "cheapest - baseline (95% CI)" in text and "promise_aware" in text
    doc = json.loads((out / "eval.json").read_text())
    assert doc["package"] == "cheapest" and len(doc["differences"]) == 5 and "cheapest" not in doc["differences"]
    assert main(["evaluate", str(pkg), "--env", "twin/Routing-v0"]) == 2
    assert "--env is for a model zip" in capsys.readouterr().err
    assert main(["evaluate", str(pkg), "--scenario", "national_peak", "-r", "2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "routes on" in err and "Traceback" not in err
