"""Property-based fuzzing of scenario files (issue 13, "every scenario that validates runs").

Documents start from the built-ins' YAML and are mutated: wrong types, boundary values,
infinities and NaN, empties, unknown and duplicate names, deep nesting, bad encodings,
aliases, huge values; some also get ``--set`` overrides. The properties:

* ``load_scenario`` raises only :class:`ScenarioError` (one line per problem), and the CLI
  (``twin validate`` / ``twin run``) exits 2 on it with ``twin: error:`` and no traceback;
* every accepted scenario, cut to a short horizon and scaled down, either runs to the end on
  both engines within a time budget, or is refused before it starts with ScenarioError (by
  the run-size estimate, checked here against small limits: :func:`twin.scenario.size.run_limits`)
  and the CLI refuses it the same way.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (default: 160 and 60 examples, about a minute), ``long`` (10,000
examples of each property; ``HYPOTHESIS_SEED`` picks the seed; ``FUZZ_EXAMPLES=N`` any other
length). The example database is off and hypothesis's other storage goes to a temporary
directory: nothing is written into the repository.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import math
import os
import resource
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# nothing of hypothesis's goes into the repository: its storage (the constants cache; the example
# database is off) lives in a temporary directory unless HYPOTHESIS_STORAGE_DIRECTORY says where
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="twin-hypothesis-"))
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import scenarios  # noqa: E402
from twin.cli import main  # noqa: E402
from twin.errors import ScenarioError  # noqa: E402
from twin.results.runs import simulate  # noqa: E402
from twin.scenario import schema  # noqa: E402
from twin.scenario.loader import load_scenario, scale_scenario  # noqa: E402
from twin.scenario.size import estimate_run, run_limits  # noqa: E402

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
_EXAMPLES = {"ci": (160, 60), "long": (10_000, 10_000)}.get(PROFILE, (160, 60))
if os.environ.get("FUZZ_EXAMPLES"):  # a custom length: FUZZ_EXAMPLES=300
    _EXAMPLES = (int(os.environ["FUZZ_EXAMPLES"]),) * 2
_SEED = os.environ.get("HYPOTHESIS_SEED")


def _settings(n: int) -> Any:
    kw: dict[str, Any] = {"max_examples": n, "deadline": None, "database": None, "derandomize": _SEED is None
                          and PROFILE == "ci", "suppress_health_check": list(HealthCheck), "print_blob": True,
                          # no "explain" phase: its line tracing makes a run of the twin crawl
                          "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]}
    return settings(**kw)


def _seeded(f):  # noqa: ANN001, ANN202
    return hypothesis.seed(int(_SEED))(f) if _SEED is not None else f


#: Small limits for the scaled-down runs: what they admit finishes in seconds on either engine.
TEST_LIMITS = {"max_orders": 5_000, "max_events": 200_000, "max_cells": 2e8, "max_ticks": 5_000,
               "max_delivery_h": 1e6, "memory_bytes": 2**30}
#: A scaled-down run's orders, horizon and drain.
TARGET_ORDERS, SHORT_H = 300, 6.0
#: A run admitted by TEST_LIMITS that takes more CPU time than this (either engine) is a bug.
RUN_BUDGET_S = 30.0

BUILTINS = {n: scenarios.builtin_path(n).read_text(encoding="utf-8") for n in scenarios.builtin_names()}
DOCS = {n: yaml.safe_load(t) for n, t in BUILTINS.items()}

NASTY: list[Any] = [
    0, -1, 1, 2, 127, 128, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63), 10**40, 0.0, -0.0, 1e-9, 1e-300, 5e-324,
    0.01, 0.009, 0.5, 1.0000001, 1e6, 1e9, 1e12, 1e300, math.inf, -math.inf, math.nan, True, False, None,
    "", "all", "x", "clear", "standard", "backorder", "shanghai", "Zhejiang", "nowhere", "é", "a" * 70, "1e-9",
    ".inf", "nan", "12", [], {}, [[]], [1, 2], [0, math.inf], [[0, 1], [0, 2]], {"x": 1}, ["all"], [None],
    ["shanghai", "shanghai"], {"preset": "china_provinces", "include": []},
    schema.MAX_TIME_H, schema.MAX_TIME_H + 1, schema.MAX_HORIZON_H, schema.MIN_INTERVAL_H,
    schema.MIN_INTERVAL_H / 2, schema.MAX_UNITS, schema.MAX_UNITS + 1, schema.MAX_RATE_PER_H, schema.MAX_SEED + 1,
]
FACTORS = [0.0, -1.0, 1e-12, 1e-3, 0.5, 2.0, 10.0, 1e3, 1e6, 1e12, math.inf, math.nan]
TEXT_PATCHES = [
    b"\xff\xfe", b"\xc3\x28", b"\x00", b"\t", b"\r", b"\xef\xbb\xbf", b"&a", b"*a", b"*undefined", b"!!binary",
    b"!!python/object:os.system", b"? [a, b]\n: 1\n", b"[" * 200, b"{", b"'", b'"', b"%YAML 1.1\n", b"---\n",
]
TEXT_WHOLE = [
    b"", b"~\n", b"42\n", b"- a\n- b\n", b"[1, 2]\n", b"just text\n", b"a: &a [*a]\n", b"? [a, b]\n: 1\n",
    b"yes: 1\n", b"horizon_h: " + b"9" * 5000 + b"\n", b"horizon_h: 2020-13-45\n", b"a: " + b"[" * 100000,
    b"\xff" * 10, "name: ü".encode("utf-16"), b"x: !!float abc\n",
    b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
]
SET_VALUES = ["", "=", ".inf", ".nan", "-1", "1e400", "[a: b", "{", "[" * 100 + "]" * 100, "&a [*a]", "? [a]: 1",
              "yes", "~", "[]", "{}", "0.001", "1e12", "2e9", "'x'", "\x00", "é", "9" * 5000]


# --------------------------------------------------------------------------- document mutations
def _schema_bounds(outside: bool) -> dict[str, list[float]]:
    """Field name -> the number bounds the schema gives it (any model) and values just inside,
    or (``outside``) values just past them."""
    from typing import Annotated, Union, get_args, get_origin

    from pydantic import BaseModel

    out: dict[str, set[float]] = {}
    for model in vars(schema).values():
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, f in model.model_fields.items():
            stack = [Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation]
            while stack:
                t = stack.pop()
                if get_origin(t) is Union or type(t).__name__ == "UnionType":
                    stack.extend(get_args(t))
                elif get_origin(t) is Annotated:
                    stack.append(get_args(t)[0])
                    for m in get_args(t)[1:]:
                        for c in getattr(m, "metadata", [m]):
                            for attr in ("ge", "gt", "le", "lt"):
                                b = getattr(c, attr, None)
                                if b is not None:
                                    step = max(abs(b) * 1e-9, 1e-12)
                                    inside = b + step if attr == "gt" else b - step if attr == "lt" else b
                                    past = b - step if attr in ("ge", "gt") else b + step
                                    out.setdefault(name, set()).update({past} if outside else {inside, b})
    return {k: sorted(v) for k, v in out.items()}


BOUNDS, PAST_BOUNDS = _schema_bounds(False), _schema_bounds(True)
#: Features a built-in may not use, at extreme but valid settings.
FEATURES: list[tuple[tuple, list[Any]]] = [
    (("demand", "unfulfillable"), ["backorder"]),
    (("demand", "backorder_retry_h"), [schema.MIN_INTERVAL_H, 0.5]),
    (("demand", "backorder_max_h"), [0.01, 100.0, schema.MAX_TIME_H]),
    (("tick_h",), [schema.MIN_INTERVAL_H, 0.1, 7.0, 100.0]),
    (("replenishment", "mode"), ["scheduled", "reorder_point", "none"]),
    (("replenishment", "review_interval_h"), [schema.MIN_INTERVAL_H, 0.25]),
    (("policy", "reallocation"), [{"name": "rebalance", "interval_h": schema.MIN_INTERVAL_H},
                                  {"name": "rebalance", "interval_h": 1, "lead_time_h": 0}]),
    (("policy", "routing"), [{"name": n, "allow_split": b} for n in ("cheapest", "fastest", "greenest", "weighted")
                             for b in (True, False)] + [{"name": "weighted", "weights": {"cost": 0, "time_h": 0,
                                                                                          "co2_kg": 1e6}}]),
    (("weather", "update_interval_h"), [schema.MIN_INTERVAL_H]),
    (("disruptions",), [[{"type": "demand_surge", "multiplier": 100, "start_h": 0, "end_h": 1e4}],
                        [{"type": "demand_surge", "multiplier": 0, "start_h": 0, "end_h": 3}],
                        [{"type": "demand_surge", "regions": ["Zhejiang"], "multiplier": 100, "start_h": 1,
                          "end_h": 2}] * 3,
                        [{"type": "carrier_capacity_loss", "carrier": "sf_express", "fraction": 1, "start_h": 0,
                          "end_h": 100}],
                        [{"type": "agv_breakdown", "warehouse": "shanghai", "fraction": 1, "start_h": 0, "end_h": 5}],
                        [{"type": "warehouse_outage", "warehouse": "shanghai", "start_h": 0, "end_h": 87600}]]),
    (("demand", "skus", "count"), [1, schema.MAX_SKUS]),
    (("demand", "lines_per_order"), [1, 50]),
    (("demand", "diurnal_amplitude"), [0.999999]),
    (("demand", "cold_chain_share"), [1.0]),
    (("demand", "skus", "cold_share"), [0.0, 1.0]),
]


def _feature(draw: Any, doc: Any) -> Any:
    path, values = draw(st.sampled_from(FEATURES))
    node = doc
    for p in path[:-1]:
        if not isinstance(node, dict):
            return doc
        node = node.setdefault(p, {})
    if isinstance(node, dict):
        node[path[-1]] = _pick(draw, values)
    return doc


def _paths(root: Any) -> list[tuple]:
    """Every place in the document (the root is ``()``), depth first."""
    out: list[tuple] = []
    stack: list[tuple[tuple, Any]] = [((), root)]
    while stack:
        here, node = stack.pop()
        out.append(here)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend(reversed([((*here, k), v) for k, v in items]))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _put(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _names(doc: dict) -> list[str]:
    out = []
    for key in ("warehouses", "carriers", "regions"):
        v = doc.get(key)
        if isinstance(v, list):
            out += [e.get("name") for e in v if isinstance(e, dict) and isinstance(e.get("name"), str)]
    return out or ["x"]


KINDS = ["nasty", "nasty", "factor", "delete", "unknown_key", "duplicate", "empty", "rename", "nest", "swap", "many",
         "service_levels", "weights", "profile", "bound", "bound", "bound", "feature", "feature"]
#: For the run property: mostly mutations that keep a document valid, at its extremes.
RUN_KINDS = ["bound"] * 6 + ["feature"] * 6 + ["factor", "nasty", "service_levels", "profile", "delete"]


def _pick(draw: Any, values: list[Any]) -> Any:
    """A copy of a drawn value: the pools must never change (the strategy would be flaky)."""
    return copy.deepcopy(draw(st.sampled_from(values)))


def _mutate(draw: Any, doc: Any, runs: bool = False) -> Any:
    """One mutation of the document at a drawn place."""
    paths = _paths(doc)
    path = paths[draw(st.integers(0, len(paths) - 1))]
    node = _get(doc, path)
    kind = draw(st.sampled_from(RUN_KINDS if runs else KINDS))
    if kind == "feature":
        return _feature(draw, doc)
    if kind == "bound":  # a schema bound of a number field, or just inside or past it
        leaves = [p for p in paths if p and isinstance(p[-1], str) and p[-1] in BOUNDS
                  and isinstance(_get(doc, p), (int, float)) and not isinstance(_get(doc, p), bool)]
        if leaves:
            p = leaves[draw(st.integers(0, len(leaves) - 1))]
            past = draw(st.integers(0, 9)) < (1 if runs else 5)
            v = draw(st.sampled_from((PAST_BOUNDS if past else BOUNDS)[p[-1]]))
            return _put(doc, p, int(v) if isinstance(_get(doc, p), int) and float(v).is_integer() else v)
        return doc
    if kind == "nasty":
        return _put(doc, path, _pick(draw, NASTY))
    if kind == "factor" and isinstance(node, (int, float)) and not isinstance(node, bool):
        f = draw(st.sampled_from(FACTORS))
        v = node * f if not (f != f or math.isinf(f)) or node else f
        if isinstance(node, int) and isinstance(v, float) and math.isfinite(v) and draw(st.booleans()):
            v = int(v)
        return _put(doc, path, v)
    if kind == "delete" and path:
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc
    if kind == "unknown_key" and isinstance(node, dict):
        node[draw(st.sampled_from(["agv", "extra", "Name", "type", "weight", "preset", "all"]))] = 1
        return doc
    if kind == "duplicate" and isinstance(node, list) and node:
        node.append(copy.deepcopy(node[draw(st.integers(0, len(node) - 1))]))
        return doc
    if kind == "empty" and isinstance(node, (list, dict)):
        return _put(doc, path, type(node)())
    if kind == "rename" and isinstance(node, str) and path:
        return _put(doc, path, draw(st.sampled_from([*_names(doc), "nowhere", "Lhasa", "1abc", "a b"])))
    if kind == "nest":
        depth = draw(st.sampled_from([2, 10, 62, 63, 64, 65, 100]))  # MAX_DEPTH is 64
        v = node
        for _ in range(depth):
            v = [v] if draw(st.booleans()) else {"k": v}
        return _put(doc, path, v)
    if kind == "swap":
        v = {int: str, float: str, str: lambda s: [s], list: lambda x: {"x": x}, dict: lambda x: list(x)}
        f = v.get(type(node))
        return _put(doc, path, f(node)) if f else doc
    if kind == "many" and isinstance(node, list) and node:
        n = draw(st.sampled_from([30, 200, 1001]))
        return _put(doc, path, [copy.deepcopy(node[i % len(node)]) for i in range(n)])
    if kind == "service_levels" and isinstance(doc, dict) and isinstance(doc.get("demand"), dict):
        n = draw(st.sampled_from([1, 2, 126, 127, 128, 300]))
        doc["demand"]["service_levels"] = {f"s{i}": {"share": 1.0 / n, "promise_h": 24.0} for i in range(n)}
        return doc
    if kind == "weights" and isinstance(doc, dict) and isinstance(doc.get("regions"), list):
        w = draw(st.sampled_from([0, math.inf, math.nan, 1e-300, 1e300, -1]))
        for r in doc["regions"]:
            if isinstance(r, dict):
                r["weight"] = w
        return doc
    if kind == "profile" and isinstance(doc, dict) and isinstance(doc.get("demand"), dict):
        doc["demand"]["profile"] = _pick(draw, [
            [], [[0, math.inf]], [[0, math.nan]], [[math.inf, 1]], [[0, 1], [0, 2]], [[5, 1], [1, 1]],
            [[0, 0]], [[0, 1000]], [[0, 1001]], [[i, 1.0] for i in range(10_001)]])
        return doc
    return _put(doc, path, _pick(draw, NASTY))


def _dotted(draw: Any, doc: Any) -> str:
    """A ``--set`` key: a path of the document (list elements by index or name), or a made-up one."""
    paths = [p for p in _paths(doc) if p]
    if not paths or draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["", "x", "warehouses.nowhere.pick.agvs", "warehouses.99.pick", "name.x",
                                     "warehouses.²", "warehouses." + "9" * 30, "a..b", "demand.", "."]))
    path = paths[draw(st.integers(0, len(paths) - 1))]
    parts, node = [], doc
    for p in path:
        if isinstance(p, int) and isinstance(node[p], dict) and isinstance(node[p].get("name"), str) \
                and draw(st.booleans()):
            parts.append(node[p]["name"])
        else:
            parts.append(str(p))
        node = node[p]
    return ".".join(parts)


@st.composite
def scenario_files(draw: Any, runs: bool = False) -> tuple[bytes, list[str]]:
    """(file bytes, --set overrides): a mutated built-in. ``runs``: mostly documents with one or
    two mutations (more of them validate, to be run)."""
    base = draw(st.sampled_from(sorted(BUILTINS)))
    how = draw(st.sampled_from(["doc"] * 8 + ["clean"] if runs else ["doc"] * 4 + ["text", "whole", "clean"]))
    if how == "whole":
        data = draw(st.sampled_from(TEXT_WHOLE))
    elif how == "text":
        data = BUILTINS[base].encode("utf-8")
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(data)))
            op = draw(st.sampled_from(["insert", "truncate", "replace"]))
            patch = draw(st.sampled_from(TEXT_PATCHES))
            if op == "insert":
                data = data[:at] + patch + data[at:]
            elif op == "truncate":
                data = data[:at]
            else:
                data = data[:at] + patch + data[at + len(patch):]
    else:
        doc = yaml.safe_load(BUILTINS[base])
        if how == "doc":
            for _ in range(draw(st.integers(1, 4))):
                doc = _mutate(draw, doc, runs)
        data = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")
    overrides: list[str] = []
    if draw(st.integers(0, 11 if runs else 3)) == 0:
        doc0 = DOCS[base]
        for _ in range(draw(st.integers(1, 2))):
            value = draw(st.one_of(st.sampled_from(SET_VALUES),
                                   st.sampled_from(NASTY).map(lambda v: yaml.safe_dump(v, default_flow_style=True)
                                                              .removesuffix("\n...\n").strip())))
            overrides.append(f"{_dotted(draw, doc0)}={value}")
    return data, overrides


# --------------------------------------------------------------------------- helpers
#: A wall-clock backstop, times the CPU budget: a block that waits instead of computing.
WALL_BACKSTOP = 10.0


@contextlib.contextmanager
def _time_limit(seconds: float, what: str) -> Iterator[None]:
    """Fail the test (instead of hanging) if the block uses more than ``seconds`` of this
    process's CPU time (``ITIMER_PROF``: a run that never ends burns CPU, whatever else the
    machine runs; a wall-clock budget failed runs on a loaded shared machine that were merely
    slow), or more than ``WALL_BACKSTOP`` times that in wall-clock time."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        t0 = time.process_time()
        yield
        assert time.process_time() - t0 <= seconds, f"{what} took more than {seconds} s of CPU"
        return

    def _cpu(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what} ran past its budget of {seconds} s of CPU time")

    def _wall(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what} ran past {WALL_BACKSTOP * seconds:g} s of wall-clock time")

    old_prof, old_alrm = signal.signal(signal.SIGPROF, _cpu), signal.signal(signal.SIGALRM, _wall)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, WALL_BACKSTOP * seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, old_prof)
        signal.signal(signal.SIGALRM, old_alrm)


def _cli_refuses(args: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with one ``twin: error:`` message, no traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    text = err.getvalue()
    assert rc == 2, (args, rc, text, out.getvalue())
    assert "Traceback" not in text and "twin: error:" in text, text
    return text


def _rss() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    """This process's peak resident memory so far, in bytes (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _assert_one_line_problems(exc: ScenarioError) -> None:
    assert exc.problems, exc
    for p in exc.problems:
        assert isinstance(p, str) and p.strip() and "\n" not in p, exc.problems
    assert "Traceback" not in str(exc)


def _load(path: Path, overrides: list[str]) -> Any:
    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:  # the only exception allowed
        _assert_one_line_problems(exc)
        return exc


# --------------------------------------------------------------------------- properties
@_seeded
@_settings(_EXAMPLES[0])
@given(scenario_files())
def test_loading_raises_only_scenario_error_and_the_cli_says_so(tmp_path_factory: Any, case: tuple) -> None:
    data, overrides = case
    path = tmp_path_factory.mktemp("fuzz") / "scenario.yaml"
    path.write_bytes(data)
    got = _load(path, overrides)
    event("refused" if isinstance(got, ScenarioError) else "accepted")
    if isinstance(got, ScenarioError):
        sets = [a for o in overrides for a in ("--set", o)]
        msg = _cli_refuses(["validate", str(path), *sets])
        assert got.problems[0][:40] in msg


def _small(sc: Any) -> Any:
    """The scenario cut to a short horizon and drain, then scaled to about TARGET_ORDERS orders."""
    cut = load_scenario(sc, {"horizon_h": min(sc.horizon_h, SHORT_H), "drain_h": min(sc.drain_h, SHORT_H)})
    n = estimate_run(cut).orders_max
    return scale_scenario(cut, TARGET_ORDERS / n) if n > TARGET_ORDERS else cut


@_seeded
@_settings(_EXAMPLES[1])
@given(scenario_files(runs=True))
def test_every_accepted_scenario_runs_or_is_refused_up_front(tmp_path_factory: Any, case: tuple) -> None:
    data, overrides = case
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "scenario.yaml"
    path.write_bytes(data)
    sc = _load(path, overrides)
    if isinstance(sc, ScenarioError):
        event("load: refused")
        return
    small = _small(sc)  # scaling an accepted scenario down must work
    linux = Path("/proc/self/statm").exists()
    with run_limits(**TEST_LIMITS):
        for engine in ("kernel", "simpy"):
            t0 = time.perf_counter()
            before, peak_before = (_rss(), _peak()) if linux else (0, 0)
            try:
                with _time_limit(RUN_BUDGET_S, f"simulate({engine})"):
                    res = simulate(small, engine=engine)
            except ScenarioError as exc:  # refused: before any work, with the figures
                assert time.perf_counter() - t0 < 5.0, "a refusal must come before the run starts"
                _assert_one_line_problems(exc)
                event(f"run: refused ({exc.problems[0].split(':')[0]})")
                small_file = tmp / "small.yaml"
                small_file.write_text(yaml.safe_dump(small.model_dump(mode="json"), sort_keys=False))
                _cli_refuses(["run", str(small_file), "--engine", engine, "-q", "--no-report", "--out",
                              str(tmp / "out")])
                _cli_refuses(["validate", str(small_file)])
                break  # the estimate does not depend on the engine
            if linux and _peak() > peak_before:  # a new peak: the run used at least this much
                used, planned = _peak() - before, estimate_run(small).total_memory
                assert used < planned + 2**30, f"{engine} used {used / 2**20:.0f} MiB, estimated {planned / 2**20:.0f}"
            event(f"run: finished ({engine})")
            event(f"run: wall {engine} {'<1' if res.wall_s < 1 else '<5' if res.wall_s < 5 else '>=5'} s")
            assert res.kpis["orders_created"] >= 0
            assert res.timeseries["time_h"].iloc[-1] == pytest.approx(small.horizon_h + small.drain_h)
            del res
            gc.collect()  # a model is a cycle (agents, processes): free its arrays before the next run
