"""Risk events: drawing which of a scenario's ``risks`` fire in a run, and the concrete scenario
they make (the drawn events as ordinary scripted disruptions and weather events).

Each run draws from its own ``risk`` stream (:class:`twin.sim.rng.RunStreams`), in one block of
three uniforms per group and per event (fire, start, duration), groups first, in the file's
order, whatever fires: an event's draws do not move when another event's probability or
duration changes, so what-ifs on the risk file stay paired. Durations are drawn by inversion
from their uniform (:func:`duration_from_uniform`). The engines then play the drawn events
exactly as scripted ones (:func:`realise_risks`), which also keeps every other stream (the
orders, pick times, weather) the same with or without them: common random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from twin.errors import ScenarioError
from twin.scenario.distributions import dist_spec
from twin.scenario.schema import (
    MAX_TIME_H,
    MIN_INTERVAL_H,
    RiskDuration,
    RiskEvent,
    Risks,
    Scenario,
    WeatherEvent,
    WeatherRisk,
)

__all__ = [
    "DisruptionWindow",
    "DrawnEvent",
    "disruption_target",
    "disruption_windows",
    "draw_risks",
    "duration_from_uniform",
    "load_risks",
    "realise_risks",
    "realised_doc",
    "risk_names",
    "risk_path",
    "with_risks",
]

_RISKS_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios" / "risks"
#: Uniforms are kept this far inside (0, 1) before an inverse CDF.
_EPS = 1e-12


@dataclass(frozen=True)
class DrawnEvent:
    """A risk event that fired in a run: its name, its group (or None), and the disruption
    (or weather event) it became, with its times."""

    name: str
    group: str | None
    disruption: Any  #: a schema disruption, or a :class:`~twin.scenario.schema.WeatherEvent`

    @property
    def start_h(self) -> float:
        return float(self.disruption.start_h)

    @property
    def end_h(self) -> float:
        return float(self.disruption.end_h)

    @property
    def kind(self) -> str:
        return "weather" if isinstance(self.disruption, WeatherEvent) else str(self.disruption.type)

    def as_dict(self) -> dict[str, Any]:
        """The record of ``kpis.json``'s ``risk_events``."""
        doc = self.disruption.model_dump(mode="json")
        if self.kind == "weather":
            doc = {"type": "weather", **doc}
        return {"name": self.name, "group": self.group, "type": self.kind, "target": disruption_target(doc),
                "start_h": self.start_h, "end_h": self.end_h, "duration_h": self.end_h - self.start_h,
                "disruption": doc}


def duration_from_uniform(d: float | RiskDuration, u: float) -> float:
    """The duration (hours) at quantile ``u`` of ``d``: a number is itself; otherwise the inverse
    CDF of its distribution (a lognormal's normal quantile from :class:`statistics.NormalDist`)."""
    if not isinstance(d, RiskDuration):
        return float(d)
    u = min(max(float(u), _EPS), 1.0 - _EPS)
    if d.distribution == "uniform":
        return float(d.low_h + u * (d.high_h - d.low_h))
    spec = dist_spec(d.distribution, d.cv)
    if spec.kind == "deterministic":
        return float(d.mean_h)
    if spec.kind == "exponential":
        return float(-d.mean_h * math.log1p(-u))
    return float(d.mean_h * math.exp(spec.mu + spec.sigma * NormalDist().inv_cdf(u)))


def _order(events: Sequence[RiskEvent]) -> list[int]:
    """Event indices with every event after the ones it depends on (file order otherwise)."""
    index = {e.name: i for i, e in enumerate(events)}
    done: list[int] = []
    seen: set[int] = set()

    def visit(i: int) -> None:
        if i in seen:
            return
        seen.add(i)
        for dep in (events[i].only_if, events[i].after):
            if dep is not None:
                visit(index[dep])
        done.append(i)

    for i in range(len(events)):
        visit(i)
    return done


def _between(lo: float, hi: float, u: float) -> float:
    return lo + u * (hi - lo)


def draw_risks(scenario: Scenario, rng: np.random.Generator) -> list[DrawnEvent]:
    """Which of ``scenario.risks`` fire, when and for how long, drawn from ``rng`` (a run's
    ``risk`` stream); in the order they are listed. Needs no simulation.

    A group fires when its uniform is below its probability; an event fires when its
    dependencies fired (``only_if``, ``after``, its group) and its own uniform is below its
    probability. Start times are uniform in the window (default ``[0, horizon_h)``), after a
    dependency's end for ``after``, the group's start plus ``lag_h`` for a member. A duration is
    at least :data:`~twin.scenario.schema.MIN_INTERVAL_H` and no window ends after
    :data:`~twin.scenario.schema.MAX_TIME_H`.
    """
    risks = scenario.risks
    groups, events = risks.groups, risks.events
    if not events:
        return []
    u = rng.random((len(groups) + len(events), 3))
    horizon = (0.0, float(scenario.horizon_h))
    g_fired: dict[str, tuple[float, float]] = {}  # name -> (start, duration)
    for i, g in enumerate(groups):
        if u[i, 0] < g.probability:
            lo, hi = (g.window.start_h, g.window.end_h) if g.window is not None else horizon
            g_fired[g.name] = (_between(lo, hi, u[i, 1]), duration_from_uniform(g.duration_h, u[i, 2]))
    fired: dict[str, tuple[float, float]] = {}  # name -> (start, end)
    for i in _order(events):
        e, (uf, us, ud) = events[i], u[len(groups) + i]
        if e.only_if is not None and e.only_if not in fired:
            continue
        if e.after is not None and e.after not in fired:
            continue
        if e.group is not None and e.group not in g_fired:
            continue
        if not uf < e.probability:
            continue
        if e.group is not None:
            g_start, g_dur = g_fired[e.group]
            start = g_start + e.lag_h
            dur = g_dur if e.duration_h is None else duration_from_uniform(e.duration_h, ud)
        else:
            if e.after is not None:
                base = fired[e.after][1]
                start = base + (_between(e.window.start_h, e.window.end_h, us) if e.window is not None else 0.0)
            else:
                lo, hi = (e.window.start_h, e.window.end_h) if e.window is not None else horizon
                start = _between(lo, hi, us)
            dur = duration_from_uniform(e.duration_h, ud)
        start = min(start, MAX_TIME_H - MIN_INTERVAL_H)
        fired[e.name] = (start, min(start + max(dur, MIN_INTERVAL_H), MAX_TIME_H))
    out = []
    for e in events:  # in the file's order
        if e.name in fired:
            start, end = fired[e.name]
            out.append(DrawnEvent(e.name, e.group, _concrete(e, start, end)))
    return out


def _concrete(e: RiskEvent, start: float, end: float) -> Any:
    d = e.disruption
    if isinstance(d, WeatherRisk):
        doc = d.model_dump()
        doc.pop("type")
        return WeatherEvent(**{**doc, "name": e.name, "start_h": start, "end_h": end})
    return d.model_copy(update={"start_h": start, "end_h": end})


def realise_risks(scenario: Scenario, rng: np.random.Generator) -> tuple[Scenario, list[DrawnEvent]]:
    """The scenario a run plays and the events it drew: ``scenario`` with its drawn risk events
    appended to its disruptions (weather events to ``weather.events``) and no ``risks`` left
    (the same object when it has none)."""
    if not scenario.risks.events:
        return scenario, []
    drawn = draw_risks(scenario, rng)
    disruptions = [*scenario.disruptions, *(d.disruption for d in drawn if d.kind != "weather")]
    weather = [*scenario.weather.events, *(d.disruption for d in drawn if d.kind == "weather")]
    return scenario.model_copy(update={
        "disruptions": disruptions, "weather": scenario.weather.model_copy(update={"events": weather}),
        "risks": Risks()}), drawn


def realised_doc(scenario: Mapping[str, Any], risk_events: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """A scenario document (``scenario.json``) with the drawn ``risk_events`` of a run's
    ``kpis.json`` added as the disruptions and weather events they were (for plots)."""
    doc = dict(scenario)
    events = [e for e in (risk_events or []) if isinstance(e, Mapping) and isinstance(e.get("disruption"), Mapping)]
    if not events:
        return doc
    dis = [dict(e["disruption"]) for e in events if e["disruption"].get("type") != "weather"]
    wx = [{k: v for k, v in e["disruption"].items() if k != "type"} for e in events
          if e["disruption"].get("type") == "weather"]
    doc["disruptions"] = [*(doc.get("disruptions") or []), *dis]
    weather = dict(doc.get("weather") or {})
    weather["events"] = [*(weather.get("events") or []), *wx]
    doc["weather"] = weather
    return doc


# --------------------------------------------------------------------------- windows
def disruption_target(d: Mapping[str, Any]) -> str:
    """What a disruption (as a document) hits: its warehouse, carrier, or regions (``a+b``, ``all``)."""
    if "warehouse" in d:
        return str(d["warehouse"])
    if "carrier" in d:
        return str(d["carrier"])
    regions = d.get("regions", "all")
    return regions if isinstance(regions, str) else "+".join(str(r) for r in regions)


@dataclass(frozen=True)
class DisruptionWindow:
    """A disruption of a run, ``[start_h, end_h)``: its ``label`` (the risk event's name for a
    drawn one, ``type:target@start`` for a scripted one), kind, target and the risk event (None:
    scripted)."""

    label: str
    kind: str
    target: str
    start_h: float
    end_h: float
    event: str | None = None


def disruption_windows(scenario: Scenario, drawn: Sequence[DrawnEvent] = ()) -> list[DisruptionWindow]:
    """The disruptions of a run: the scenario's scripted disruptions and weather events, then
    its drawn risk events (``scenario`` as declared, with its ``risks``; or the realised
    scenario and no ``drawn``: then every window is scripted)."""
    out: list[DisruptionWindow] = []
    seen: dict[str, int] = {}

    def add(kind: str, d: Any, event: str | None) -> None:
        doc = d.model_dump(mode="json")
        target = doc.get("name", "?") if kind == "weather" and event is None else disruption_target(doc)
        label = event if event is not None else f"{kind}:{target}@{float(d.start_h):g}h"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}#{seen[label]}"
        out.append(DisruptionWindow(label, kind, str(target), float(d.start_h), float(d.end_h), event))

    for d in scenario.disruptions:
        add(str(d.type), d, None)
    for e in scenario.weather.events:
        add("weather", e, None)
    for x in drawn:
        add(x.kind, x.disruption, x.name)
    return out


# --------------------------------------------------------------------------- risk files
def risk_names() -> list[str]:
    """The built-in risk files (``scenarios/risks/*.yaml``), by name."""
    return sorted(p.stem for p in _RISKS_DIR.glob("*.yaml"))


def risk_path(name_or_path: str | Path) -> Path:
    """The file of a built-in risk file's name, or a path to one."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        if not p.is_file():
            raise ScenarioError(f"risk file not found: {str(p)!r}", source=str(p))
        return p
    found = _RISKS_DIR / f"{name_or_path}.yaml"
    if not found.is_file():
        raise ScenarioError(f"unknown risk file {str(name_or_path)!r}: not a file and not a built-in; built-ins: "
                            f"{', '.join(risk_names()) or '(none)'}")
    return found


def load_risks(name_or_path: str | Path) -> dict[str, Any]:
    """A risk file: a YAML mapping with a ``risks`` section (groups, events) and optionally a
    ``recovery`` section (and a ``description``); returned as a document for :func:`with_risks`."""
    from twin.scenario.loader import _parse_yaml, _read_text

    path = risk_path(name_or_path)
    doc = _parse_yaml(_read_text(path), str(path))
    if not isinstance(doc, Mapping):
        raise ScenarioError(f"a risk file must hold a mapping with a 'risks' section, got {type(doc).__name__}",
                            str(path))
    extra = sorted(set(doc) - {"risks", "recovery", "description", "scenario"})
    if extra:
        raise ScenarioError(f"{extra[0]}: unknown field in a risk file; allowed: risks, recovery, description, "
                            "scenario", str(path))
    if "risks" not in doc:
        raise ScenarioError("risks: field required (the risk events: {groups: [...], events: [...]})", str(path))
    return {**doc, "source": str(path)}


def with_risks(scenario: Scenario, risks: Mapping[str, Any]) -> Scenario:
    """``scenario`` with the ``risks`` (and ``recovery``, if given) of a risk file
    (:func:`load_risks`) in place of its own, validated against its network."""
    from twin.scenario.loader import annotate_description, validate_scenario

    doc = scenario.model_dump(mode="json")
    doc["risks"] = risks["risks"]
    if "recovery" in risks:
        doc["recovery"] = risks["recovery"]
    src = str(risks.get("source", "risk file"))
    doc["description"] = annotate_description(doc.get("description", ""), f"risks from {Path(src).name}")
    return validate_scenario(doc, f"{scenario.name} with {src}")

