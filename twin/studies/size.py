"""Sizing: the smallest value of an integer scenario field that meets a KPI target with a stated
confidence, by a sequential feasibility check inside a bisection.

The procedure (``twin size``):

1. **Candidates** are the integers ``low..high`` of the field (``warehouses.*.pick.agvs``: the
   same value at every warehouse). Meeting the target is assumed monotone in the value (more
   AGVs never make the pick wait longer): once met, met for every larger value.
2. **Search**: check ``high`` first (if it does not meet the target, no value in the range
   does), then bisect: the midpoint of the values known not to meet and known to meet. At most
   ``K = 1 + ceil(log2(high - low + 1))`` candidates are checked.
3. **Each check is sequential**: the candidate runs on seeds ``seed, seed+1, ...`` in batches
   of ``batch`` (every candidate on the same seeds: common random numbers), up to ``max_seeds``.
   After each batch, the mean ``m`` and standard deviation ``s`` of the KPI over the ``n``
   runs give one-sided Student-t bounds ``m -/+ t_{1-a, n-1} s / sqrt(n)``. For a target
   ``KPI >= v`` the candidate **meets** it when the lower bound is ``>= v`` and **fails** when
   the upper bound is ``< v`` (``<=``: the mirror image); otherwise another batch runs. After
   ``max_seeds`` runs still straddling ``v`` it is **undecided**, and counted as not shown to
   meet the target (the answer errs upwards, never below a value that was not shown to meet).
4. **Confidence**: each look uses ``a = (1 - confidence) / (K * L)`` with ``L`` the most looks a
   check can take (Bonferroni over every look of every check), so with probability at least
   ``confidence`` no check's verdict is wrong; then the answer meets the target and the value
   below it does not, or was undecided (the replications' KPI means taken as normal: each is
   a mean over many orders).

This is a feasibility check in the sense of ranking-and-selection (Andradottir & Kim's
feasibility determination, with Bonferroni instead of their indifference-zone constants),
applied along a monotone one-dimensional family rather than to every system.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.results.kpis import KPIS
from twin.scenario.loader import load_scenario, scale_scenario
from twin.scenario.schema import Scenario
from twin.studies.store import RunStore, code_version, run_id, scenario_hash
from twin.studies.sweep import Task, expand_overrides, run_tasks

__all__ = ["Target", "Check", "SizeResult", "parse_target", "size", "format_size"]

_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Target:
    """``kpi op value``: ``on_time_rate>=0.95``, ``pick_wait_mean_h<=0.05``."""

    kpi: str
    op: str
    value: float

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">=", ">")

    def __str__(self) -> str:
        return f"{self.kpi}{self.op}{self.value:g}"


def parse_target(text: str) -> Target:
    """Parse ``KPI>=VALUE`` (or ``<=``, ``>``, ``<``) with a scalar KPI of the registry."""
    m = _TARGET.match(text or "")
    allowed = [k.name for k in KPIS.values() if not k.per_warehouse]
    if not m:
        raise ValueError(f"--target {text!r}: expected KPI>=VALUE or KPI<=VALUE, e.g. on_time_rate>=0.95")
    kpi, op, v = m.groups()
    if kpi not in allowed:
        raise ValueError(f"--target {text!r}: {kpi!r} is not a scalar KPI; allowed: {', '.join(allowed)}")
    try:
        value = float(v)
    except ValueError:
        raise ValueError(f"--target {text!r}: {v!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"--target {text!r}: the value must be finite")
    return Target(kpi, op, value)


@dataclass
class Check:
    """One candidate's sequential check: its KPI values by seed and the verdict."""

    value: int
    values: list[float] = field(default_factory=list)
    verdict: str = "open"  # meets | fails | undecided
    low: float = math.nan
    high: float = math.nan

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan


@dataclass
class SizeResult:
    """What :func:`size` found: the ``answer`` (None: no value in the range was shown to meet
    the target), every check by value, and the procedure's constants."""

    field: str
    target: Target
    answer: int | None
    checks: dict[int, Check]
    low: int
    high: int
    confidence: float
    alpha_per_look: float
    computed: int = 0
    cached: int = 0
    notes: list[str] = field(default_factory=list)


def _walk(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if isinstance(node, list):
            names = [e.get("name") for e in node if isinstance(e, Mapping)]
            if part in names:
                node = node[names.index(part)]
            elif part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ValueError(f"--field: no element {part!r} in {path}; allowed: {', '.join(map(str, names))}")
        elif isinstance(node, Mapping):
            if part not in node:
                raise ValueError(f"--field: no field {part!r} in {path}; allowed: {', '.join(map(str, node))}")
            node = node[part]
        else:
            raise ValueError(f"--field {path}: {part!r} is below a value, not a section")
    return node


def _bounds(mean: float, sd: float, n: int, alpha: float) -> tuple[float, float]:
    from scipy.stats import t

    if n < 2:
        return -math.inf, math.inf
    half = float(t.ppf(1 - alpha, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def size(scenario: Scenario | str | Path, field_path: str, target: Target | str, low: int | None = None,
         high: int | None = None, overrides: Iterable[str] | Mapping[str, Any] | None = None,
         scale: float | None = None, confidence: float = 0.95, batch: int = 5, max_seeds: int = 30, seed: int = 0,
         engine: str = "kernel", store: str | Path = "runs/store", backend: str = "local", workers: int | None = None,
         address: str | None = None, progress: bool = False) -> SizeResult:
    """The smallest integer value of ``field_path`` in ``low..high`` that meets ``target`` with
    ``confidence`` (the procedure of the module docstring). Runs go through the store (each
    computed once) on ``backend``.

    Args:
        field_path: a ``--set`` path of an integer field; ``*`` for every named element.
        target: a :class:`Target` or its text (``pick_wait_mean_h<=0.05``).
        low, high: the range searched (default: 1 to twice the largest current value).
        batch: seeds added per look; max_seeds: the most seeds one candidate gets.
    """
    tgt = parse_target(target) if isinstance(target, str) else target
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence!r}")
    if batch < 2 or max_seeds < batch:
        raise ValueError(f"--batch must be >= 2 and --max-seeds >= --batch, got batch={batch}, max_seeds={max_seeds}")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    base = load_scenario(scenario, overrides)
    doc = base.model_dump(mode="json")
    paths = list(expand_overrides(doc, {field_path: 0}))
    current = [_walk(doc, p) for p in paths]
    bad = [(p, v) for p, v in zip(paths, current) if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise ValueError(f"--field {field_path}: size searches integer fields; {bad[0][0]} is {bad[0][1]!r}")
    lo = 1 if low is None else int(low)
    hi = max(lo, 2 * max(current)) if high is None else int(high)
    if lo < 0 or hi < lo:
        raise ValueError(f"--min and --max must satisfy 0 <= min <= max, got min={lo}, max={hi}")
    k_checks = 1 + math.ceil(math.log2(hi - lo + 1))
    looks = 1 + math.ceil((max_seeds - batch) / batch)
    alpha = (1 - confidence) / (k_checks * looks)
    st = RunStore(store)
    code = code_version()
    res = SizeResult(field_path, tgt, None, {}, lo, hi, confidence, alpha)

    def scenario_at(v: int) -> Scenario:
        sc = load_scenario(base, {p: v for p in paths})
        return scale_scenario(sc, scale) if scale is not None else sc

    def check(v: int) -> Check:
        if v in res.checks:
            return res.checks[v]
        c = Check(v)
        sc = scenario_at(v)
        h = scenario_hash(sc)
        while c.verdict == "open":
            seeds = range(seed + c.n, seed + min(c.n + batch, max_seeds))
            tasks = [Task(run_id(h, s, engine, code), sc, h, s, engine, str(st.root), code=code) for s in seeds]
            rep = run_tasks(tasks, st, backend, workers, address, progress, desc=f"{field_path}={v}")
            res.computed += rep.computed
            res.cached += rep.cached
            vals = st.kpi_rows([t.run_id for t in tasks], [sc.name] * len(tasks),
                               known=rep.rows).column(tgt.kpi).to_pylist()
            if any(x is None or (isinstance(x, float) and math.isnan(x)) for x in vals):
                raise ValueError(f"{tgt.kpi} is undefined (NaN) at {field_path}={v}: no orders it could be "
                                 "computed from (a longer horizon?)")
            c.values += [float(x) for x in vals]
            c.low, c.high = _bounds(c.mean, float(np.std(c.values, ddof=1)), c.n, alpha)
            good_side, bad_side = (c.low, c.high) if tgt.higher_is_better else (-c.high, -c.low)
            v_t = tgt.value if tgt.higher_is_better else -tgt.value
            if good_side >= v_t:
                c.verdict = "meets"
            elif bad_side < v_t:
                c.verdict = "fails"
            elif c.n >= max_seeds:
                c.verdict = "undecided"
        res.checks[v] = c
        return c

    if check(hi).verdict != "meets":
        res.notes.append(f"{field_path}={hi} (--max) was not shown to meet {tgt}: raise --max")
        return res
    below, above = lo - 1, hi  # below: not shown to meet (or outside the range); above: meets
    while above - below > 1:
        mid = (below + above) // 2
        if check(mid).verdict == "meets":
            above = mid
        else:
            below = mid
    res.answer = above
    contradictions = [v for v, c in res.checks.items() if v > above and c.verdict == "fails"]
    if contradictions:
        res.notes.append(f"not monotone: {field_path}={contradictions[0]} fails although {above} meets")
    if below in res.checks and res.checks[below].verdict == "undecided":
        res.notes.append(f"{field_path}={below} was undecided after {max_seeds} seeds (within noise of the target): "
                         "more --max-seeds may show that it meets")
    return res


def format_size(res: SizeResult) -> str:
    """The checks as a table (value, runs, mean, one-sided bounds, verdict) and the answer."""
    kpi = KPIS[res.target.kpi]
    lines = [f"  {'value':>7}  {'runs':>4}  {'mean':>12}  {'bounds':>27}  verdict"]
    for v in sorted(res.checks):
        c = res.checks[v]
        lines.append(f"  {v:>7}  {c.n:>4}  {kpi.fmt.format(c.mean):>12}  "
                     f"[{c.low:>11.5g}, {c.high:>11.5g}]  {c.verdict}")
    head = (f"{res.field}: smallest value in {res.low}..{res.high} meeting {res.target} with {res.confidence:.0%} "
            f"confidence (sequential t checks, alpha {res.alpha_per_look:.2g} per look; "
            f"{res.computed} runs computed, {res.cached} from the store)")
    tail = (f"answer: {res.field} = {res.answer}" if res.answer is not None else "answer: none in the range")
    return "\n".join([head, *lines, tail, *(f"note: {n}" for n in res.notes)])
