"""twin size: the smallest AGV fleet meeting a pick-wait target, against Erlang C on the erlang_c
network (one warehouse, Poisson orders at 68/h, exponential picks at 10 lines/h per AGV)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.cli import main
from twin.results.theory import mmc_mean_wait
from twin.studies.size import parse_target, size

SHORT = {"horizon_h": 300, "drain_h": 2}  # ~20k orders a run: the mean wait within a few per cent
FIELD = "warehouses.*.pick.agvs"


def _wq(c: int) -> float:
    return mmc_mean_wait(68.0, 10.0, c) if c * 10.0 > 68.0 else math.inf  # c <= 6: unstable


def _erlang_answer(target_h: float, low: int, high: int) -> int:
    return min(c for c in range(low, high + 1) if _wq(c) <= target_h)


@pytest.mark.parametrize("between", [(7, 8), (8, 9)])
def test_size_finds_the_erlang_c_threshold(tmp_path: Path, between: tuple[int, int]) -> None:
    # a target halfway (geometrically) between the Erlang C waits of c-1 and c AGVs: c is the answer
    lo_c, hi_c = between
    target = math.sqrt(_wq(lo_c) * _wq(hi_c))
    want = _erlang_answer(target, 6, 12)
    assert want == hi_c
    res = size("erlang_c", FIELD, f"pick_wait_mean_h<={target:.5f}", low=6, high=12, overrides=SHORT,
               store=tmp_path, batch=3, max_seeds=12, workers=1)
    assert res.answer == want
    # every verdict agrees with theory, and the answer's neighbour below was checked and failed
    for c, check in res.checks.items():
        assert check.verdict == ("meets" if _wq(c) <= target else "fails"), (c, check)
    assert res.checks[want - 1].verdict == "fails" and res.checks[want].verdict == "meets"
    # the bounds of the answer bracket Erlang C's wait (the runs estimate it)
    assert res.checks[want].low <= _wq(want) <= res.checks[want].high


def test_the_procedure_constants_and_the_store(tmp_path: Path) -> None:
    res = size("erlang_c", FIELD, "pick_wait_mean_h<=0.15", low=6, high=12, overrides=SHORT, store=tmp_path,
               batch=3, max_seeds=12, workers=1)
    k_checks = 1 + math.ceil(math.log2(12 - 6 + 1))  # 4: the top, then bisection of 7 values
    looks = 1 + math.ceil((12 - 3) / 3)  # 4: batches of 3 up to 12 seeds
    assert res.alpha_per_look == pytest.approx(0.05 / (k_checks * looks))
    assert len(res.checks) <= k_checks
    assert all(c.n % 3 == 0 and 3 <= c.n <= 12 for c in res.checks.values())
    # the same question again: every run is in the store
    again = size("erlang_c", FIELD, "pick_wait_mean_h<=0.15", low=6, high=12, overrides=SHORT, store=tmp_path,
                 batch=3, max_seeds=12, workers=1)
    assert again.computed == 0 and again.cached == res.computed and again.answer == res.answer == 8


def test_no_value_in_the_range_meets_the_target(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["size", "erlang_c", "--field", FIELD, "--target", "pick_wait_mean_h<=0.01", "--min", "7", "--max", "9",
            "--set", "horizon_h=300", "--set", "drain_h=2", "--store", str(tmp_path), "-j", "1", "-q",
            "--batch", "3", "--max-seeds", "6"]
    assert main(args) == 1  # Erlang C: 9 AGVs wait 0.0155 h
    out = capsys.readouterr().out
    assert "answer: none in the range" in out and "warehouses.*.pick.agvs=9 (--max) was not shown to meet" in out
    args[args.index("--max") + 1] = "11"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"answer: {FIELD} = {_erlang_answer(0.01, 7, 11)}" in out  # 10 AGVs: 0.0060 h


@pytest.mark.parametrize(("text", "message"), [
    ("on_time_rate=0.95", "expected KPI>=VALUE or KPI<=VALUE"),
    ("speed>=3", "'speed' is not a scalar KPI; allowed: orders_created"),
    ("utilization>=0.5", "'utilization' is not a scalar KPI"),
])
def test_bad_targets_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_target(text)
    assert message in str(e.value)


def test_parse_target() -> None:
    t = parse_target("on_time_rate >= 0.95")
    assert (t.kpi, t.op, t.value, t.higher_is_better) == ("on_time_rate", ">=", 0.95, True)
    assert not parse_target("pick_wait_mean_h<0.05").higher_is_better


def test_bad_fields_are_refused_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["size", "erlang_c", "--target", "on_time_rate>=0.9", "--store", str(tmp_path), "-q"]
    assert main([*base, "--field", "warehouses.*.pick.lines_per_agv_h"]) == 2
    err = capsys.readouterr().err
    assert "size searches integer fields; warehouses.shanghai.pick.lines_per_agv_h is 10.0" in err
    assert main([*base, "--field", "warehouses.*.pick.robots"]) == 2
    assert "no field 'robots' in warehouses.shanghai.pick.robots; allowed: agvs" in capsys.readouterr().err
    assert main([*base, "--field", FIELD, "--min", "9", "--max", "3"]) == 2
    assert "0 <= min <= max, got min=9, max=3" in capsys.readouterr().err
