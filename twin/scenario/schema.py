"""The scenario schema: what a scenario YAML file may say, validated with pydantic.

Times are hours from the scenario start, distances kilometres, costs in CNY, CO2 in kg.

Every number has finite bounds that both engines honour (the ``MAX_*``/``MIN_*`` limits
below; infinities and NaN are refused everywhere), and counts that the engines store in
fixed-width fields are limited here too (at most 127 service levels: a record keeps the level
in one byte). Whether a whole run fits in time and memory is :mod:`twin.scenario.size`'s
estimate, checked before a run starts.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_serializer, field_validator, model_validator

from twin.scenario.distributions import DISTRIBUTIONS

# --------------------------------------------------------------------------- limits
MAX_TIME_H = 87_600.0  #: the latest time, and the longest duration, a scenario may name (10 years)
MAX_HORIZON_H = 8_760.0  #: the longest horizon, and the longest drain (a year)
MIN_INTERVAL_H = 0.01  #: the shortest recurring interval (ticks, departures, reviews, retries...): 36 s
MAX_INTERVAL_H = 8_760.0  #: the longest recurring interval
MAX_RATE_PER_H = 1e8  #: orders per hour
MAX_MULTIPLIER = 1_000.0  #: a demand profile's multiplier
MAX_UNITS = 1_000_000_000  #: stock units per SKU, parcels per departure
MAX_AGVS = 100_000  #: AGVs, and pack stations, per warehouse
MAX_MONEY = 1e6  #: CNY per parcel / line
MAX_WEIGHT = 1e12  #: a region's demand weight (a population, say)
MAX_SEED = 2**63 - 1
MAX_WAREHOUSES = 1_000
MAX_REGIONS = 10_000
MAX_CARRIERS = 100
MAX_SKUS = 1_000_000
MAX_SERVICE_LEVELS = 127  #: the records keep a service level in one signed byte
MAX_WEATHER_STATES = 64
MAX_EVENTS = 1_000  #: scripted weather events, and disruptions, each
MAX_PROFILE_POINTS = 10_000

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_' -]*$")]
#: A point in time or a duration that may be 0.
Hours = Annotated[float, Field(ge=0, le=MAX_TIME_H)]
#: A duration that must be > 0.
Duration = Annotated[float, Field(gt=0, le=MAX_TIME_H)]
#: The period of something that recurs (each period is an event of the run).
Interval = Annotated[float, Field(ge=MIN_INTERVAL_H, le=MAX_INTERVAL_H)]
Money = Annotated[float, Field(ge=0, le=MAX_MONEY)]
#: A service-time distribution by name (what each means: :mod:`twin.scenario.distributions`).
Distribution = Literal[*DISTRIBUTIONS]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


def _non_empty(v: object, what: str) -> object:
    """A list of names that must name something (``"all"`` passes)."""
    if isinstance(v, list) and not v:
        raise ValueError(f"must name at least one {what}, or be 'all'")
    return v


class Window(_Strict):
    """A time window ``[start_h, end_h)``."""

    start_h: Hours
    end_h: Hours

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end_h <= self.start_h:
            raise ValueError(f"end_h must be > start_h, got start_h={self.start_h}, end_h={self.end_h}")
        return self


# --------------------------------------------------------------------------- network
#: The orders in which a warehouse's pick queue may be served: ``fifo`` (first routed, first
#: picked), ``express_first`` (service levels with shorter promises first, FIFO within one) or
#: ``earliest_promise`` (the earliest promised delivery time first, FIFO on ties).
PICK_PRIORITIES: tuple[str, ...] = ("fifo", "express_first", "earliest_promise")


def service_rank(scenario: Scenario) -> list[int]:
    """Each service level's rank for ``express_first`` picking, in the scenario's order: 0 for
    the shortest promise (ties: the one listed first), then up."""
    promise = [v.promise_h for v in scenario.demand.service_levels.values()]
    order = sorted(range(len(promise)), key=lambda i: (promise[i], i))
    rank = [0] * len(promise)
    for r, i in enumerate(order):
        rank[i] = r
    return rank


class AGVFleet(_Strict):
    """The AGV fleet that picks: ``agvs`` robots, each one pick server while it is up, taking
    waiting shipments in ``priority`` order (:data:`PICK_PRIORITIES`)."""

    agvs: Annotated[int, Field(ge=0, le=MAX_AGVS)]
    lines_per_agv_h: Annotated[float, Field(ge=0.01, le=100_000)] = 60.0
    pick_time: Distribution = "exponential"
    pick_time_cv: Annotated[float, Field(ge=0, le=5)] = 1.0
    battery_h: Annotated[float, Field(ge=MIN_INTERVAL_H, le=MAX_TIME_H)] | None = None
    charge_h: Annotated[float, Field(ge=MIN_INTERVAL_H, le=MAX_TIME_H)] = 1.0
    mtbf_h: Annotated[float, Field(ge=MIN_INTERVAL_H, le=1e6)] | None = None
    mttr_h: Annotated[float, Field(ge=MIN_INTERVAL_H, le=MAX_TIME_H)] = 2.0
    priority: Literal["fifo", "express_first", "earliest_promise"] = "fifo"


class Pack(_Strict):
    """Pack stations after picking: a FIFO queue with ``stations`` servers."""

    stations: Annotated[int, Field(ge=1, le=MAX_AGVS)] = 1000
    time_h: Hours = 0.0
    distribution: Distribution = "deterministic"


class Stock(_Strict):
    """Initial stock: ``units_per_sku`` units of the most popular ``sku_fraction`` of SKUs."""

    units_per_sku: Annotated[int, Field(ge=0, le=MAX_UNITS)] = 1000
    sku_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0


class Warehouse(_Strict):
    name: Name
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    pick: AGVFleet
    pack: Pack = Pack()
    stock: Stock = Stock()
    cold_storage: bool = False
    handling_cost_per_line: Money = 1.0


class Region(_Strict):
    name: Name
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    weight: Annotated[float, Field(gt=0, le=MAX_WEIGHT)]


class RegionPreset(_Strict):
    """Regions from a built-in table: ``china_provinces`` (31 regions, weight = population)."""

    preset: Literal["china_provinces"]
    include: Annotated[list[Name], Field(min_length=1)] | None = None


class Transit(_Strict):
    """Transit time on a lane: ``base_h + distance_km / speed_kmh``, drawn around that mean."""

    base_h: Hours = 4.0
    speed_kmh: Annotated[float, Field(ge=1, le=10_000)] = 60.0
    distribution: Distribution = "lognormal"
    cv: Annotated[float, Field(ge=0, le=5)] = 0.25


class Cost(_Strict):
    per_parcel: Money = 5.0
    per_km: Annotated[float, Field(ge=0, le=10_000)] = 0.005
    reefer_surcharge: Money = 10.0


class CO2(_Strict):
    per_parcel_kg: Annotated[float, Field(ge=0, le=10_000)] = 0.05
    per_km_kg: Annotated[float, Field(ge=0, le=100)] = 0.0004


class Carrier(_Strict):
    """A carrier: linehaul departures from each warehouse it serves, on a fixed schedule."""

    name: Name
    warehouses: list[Name] | Literal["all"] = "all"
    regions: list[Name] | Literal["all"] = "all"
    departure_interval_h: Interval = 2.0
    first_departure_h: Hours = 1.0
    capacity: Annotated[int, Field(ge=0, le=MAX_UNITS)] = 1000
    reefer_capacity: Annotated[int, Field(ge=0, le=MAX_UNITS)] = 0
    transit: Transit = Transit()
    cost: Cost = Cost()
    co2: CO2 = CO2()

    @field_validator("warehouses", "regions")
    @classmethod
    def _names_something(cls, v: object, info: ValidationInfo) -> object:
        return _non_empty(v, str(info.field_name)[:-1])


# --------------------------------------------------------------------------- demand
class Skus(_Strict):
    count: Annotated[int, Field(ge=1, le=MAX_SKUS)] = 200
    zipf_s: Annotated[float, Field(ge=0, le=5)] = 1.0
    cold_share: Annotated[float, Field(ge=0, le=1)] = 0.1


class ServiceLevel(_Strict):
    share: Annotated[float, Field(ge=0, le=1)]
    promise_h: Duration


class Demand(_Strict):
    base_rate_per_h: Annotated[float, Field(ge=0, le=MAX_RATE_PER_H)]
    profile: Annotated[list[tuple[Hours, Annotated[float, Field(ge=0, le=MAX_MULTIPLIER)]]],
                       Field(max_length=MAX_PROFILE_POINTS)] = [(0.0, 1.0)]
    diurnal_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.0
    skus: Skus = Skus()
    lines_per_order: Annotated[float, Field(ge=1, le=50)] = 1.5
    cold_chain_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    service_levels: dict[Name, ServiceLevel] = {"standard": ServiceLevel(share=1.0, promise_h=72.0)}
    unfulfillable: Literal["lost", "backorder"] = "lost"
    backorder_retry_h: Interval = 2.0
    backorder_max_h: Duration = 24.0

    @field_validator("profile")
    @classmethod
    def _profile_sorted(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not v:
            raise ValueError("must have at least one [time_h, multiplier] point")
        times = [t for t, _ in v]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError(f"times must be strictly increasing, got {times}")
        return v

    @field_validator("service_levels")
    @classmethod
    def _shares_sum(cls, v: dict[str, ServiceLevel]) -> dict[str, ServiceLevel]:
        if len(v) > MAX_SERVICE_LEVELS:
            raise ValueError(f"at most {MAX_SERVICE_LEVELS} service levels (a record keeps the level in one byte), "
                             f"got {len(v)}")
        total = sum(s.share for s in v.values())
        if not v or abs(total - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1, got {total:g}")
        return v


class Replenishment(_Strict):
    """Inbound stock from suppliers, by periodic review.

    ``reorder_point``: every ``review_interval_h``, each (warehouse, SKU) whose stock position
    (on hand + on order) is at or below ``reorder_point_frac`` of its initial stock is
    ordered up to ``order_up_to_frac``. ``scheduled``: every review, order up to the level.
    """

    mode: Literal["none", "reorder_point", "scheduled"] = "reorder_point"
    review_interval_h: Interval = 6.0
    reorder_point_frac: Annotated[float, Field(ge=0, le=10)] = 0.3
    order_up_to_frac: Annotated[float, Field(gt=0, le=10)] = 1.0
    lead_time_h: Hours = 24.0

    @model_validator(mode="after")
    def _levels(self) -> Replenishment:
        if self.mode == "reorder_point" and self.order_up_to_frac < self.reorder_point_frac:
            raise ValueError(
                f"order_up_to_frac must be >= reorder_point_frac, got {self.order_up_to_frac} < {self.reorder_point_frac}"
            )
        return self


# --------------------------------------------------------------------------- weather
class WeatherState(_Strict):
    name: Name
    transit_multiplier: Annotated[float, Field(ge=0.1, le=100)] = 1.0
    demand_multiplier: Annotated[float, Field(ge=0, le=100)] = 1.0
    closes_lanes: bool = False


class WeatherEvent(Window):
    """A scripted weather event (a typhoon): it overrides the Markov state of its regions."""

    name: Name
    regions: Annotated[list[Name], Field(min_length=1)]
    transit_multiplier: Annotated[float, Field(ge=0.1, le=100)] = 1.0
    demand_multiplier: Annotated[float, Field(ge=0, le=100)] = 1.0
    closes_lanes: bool = False


class Weather(_Strict):
    """A per-region Markov chain over weather states, updated every ``update_interval_h``."""

    states: Annotated[list[WeatherState], Field(max_length=MAX_WEATHER_STATES)] = [WeatherState(name="clear")]
    transition: Annotated[list[Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(max_length=MAX_WEATHER_STATES)]],
                          Field(max_length=MAX_WEATHER_STATES)] = [[1.0]]
    initial: Name = "clear"
    update_interval_h: Interval = 1.0
    events: Annotated[list[WeatherEvent], Field(max_length=MAX_EVENTS)] = []

    @model_validator(mode="after")
    def _chain(self) -> Weather:
        n = len(self.states)
        names = [s.name for s in self.states]
        if len(set(names)) != n:
            raise ValueError(f"states: names must be unique, got {names}")
        if len(self.transition) != n or any(len(r) != n for r in self.transition):
            raise ValueError(f"transition: must be a {n}x{n} matrix (one row and column per state)")
        for i, row in enumerate(self.transition):
            if abs(sum(row) - 1.0) > 1e-6:
                raise ValueError(f"transition[{i}]: row must sum to 1, got {sum(row):g}")
        if self.initial not in names:
            raise ValueError(f"initial: {self.initial!r} is not a state; allowed: {names}")
        return self


# --------------------------------------------------------------------------- disruptions
class WarehouseOutage(Window):
    type: Literal["warehouse_outage"]
    warehouse: Name


class CarrierCapacityLoss(Window):
    type: Literal["carrier_capacity_loss"]
    carrier: Name
    fraction: Annotated[float, Field(gt=0, le=1)]


class AGVBreakdown(Window):
    type: Literal["agv_breakdown"]
    warehouse: Name
    fraction: Annotated[float, Field(gt=0, le=1)]


class ColdChainFailure(Window):
    type: Literal["cold_chain_failure"]
    warehouse: Name


class DemandSurge(Window):
    type: Literal["demand_surge"]
    regions: list[Name] | Literal["all"] = "all"
    multiplier: Annotated[float, Field(ge=0, le=100)]

    @field_validator("regions")
    @classmethod
    def _names_something(cls, v: object) -> object:
        return _non_empty(v, "region")


Disruption = Annotated[
    Union[WarehouseOutage, CarrierCapacityLoss, AGVBreakdown, ColdChainFailure, DemandSurge],
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- risks
#: The distributions a risk event's duration may follow (the service-time ones, and uniform).
RISK_DURATIONS: tuple[str, ...] = (*DISTRIBUTIONS, "uniform")
#: The fields a risk event's ``disruption`` takes from the event instead (its times; a weather
#: event's name is the risk event's).
_RISK_SET_FIELDS: tuple[str, ...] = ("start_h", "end_h")


class RiskDuration(_Strict):
    """How long a risk event lasts once it fires, hours: ``deterministic`` (``mean_h``),
    ``exponential`` (mean ``mean_h``), ``lognormal`` (``mean_h`` and ``cv``, as
    :mod:`twin.scenario.distributions` defines them) or ``uniform`` on ``[low_h, high_h]``.
    A plain number for ``duration_h`` is a deterministic duration."""

    distribution: Literal[*RISK_DURATIONS] = "deterministic"
    mean_h: Duration | None = None
    cv: Annotated[float, Field(ge=0, le=5)] = 0.5
    low_h: Duration | None = None
    high_h: Duration | None = None

    @model_validator(mode="after")
    def _parameters(self) -> RiskDuration:
        if self.distribution == "uniform":
            if self.mean_h is not None:
                raise ValueError("mean_h: a uniform duration takes low_h and high_h, not mean_h")
            if self.low_h is None or self.high_h is None:
                raise ValueError("low_h: a uniform duration needs low_h and high_h (hours), e.g. "
                                 "{distribution: uniform, low_h: 24, high_h: 72}")
            if self.high_h <= self.low_h:
                raise ValueError(f"high_h: must be > low_h, got low_h={self.low_h:g}, high_h={self.high_h:g}")
        else:
            if self.low_h is not None or self.high_h is not None:
                raise ValueError(f"low_h: a {self.distribution} duration takes mean_h (and cv), not low_h/high_h; "
                                 "use distribution: uniform for a range")
            if self.mean_h is None:
                raise ValueError(f"mean_h: a {self.distribution} duration needs mean_h (hours)")
        return self


class WeatherRisk(WeatherEvent):
    """A weather event as a risk (a typhoon): the fields of a scripted weather event; its name
    is the risk event's."""

    type: Literal["weather"]


#: What a risk event does when it fires: a disruption of any type, or a weather event, without
#: its times (the event's window and duration give them).
RiskEffect = Annotated[
    Union[WarehouseOutage, CarrierCapacityLoss, AGVBreakdown, ColdChainFailure, DemandSurge, WeatherRisk],
    Field(discriminator="type"),
]


def _inject_times(v: object, name: object) -> object:
    """A risk's ``disruption`` mapping with placeholder times (and a weather event's name) so it
    validates as its disruption class; times written by the user are refused."""
    if not isinstance(v, dict):
        return v
    given = [k for k in (*_RISK_SET_FIELDS, *(("name",) if v.get("type") == "weather" else ())) if k in v]
    if given:
        raise ValueError(f"disruption.{given[0]}: not allowed in a risk event: the event's window and duration_h "
                         "give the times (and its name names a weather event); remove it")
    out = {**v, "start_h": 0.0, "end_h": 1.0}
    if v.get("type") == "weather":
        out["name"] = name if isinstance(name, str) else "risk"
    return out


def _effect_doc(d: BaseModel) -> dict:
    """A risk's ``disruption`` as the user writes it: without the times (and weather name)."""
    doc = d.model_dump(mode="json")
    for k in (*_RISK_SET_FIELDS, *(("name",) if doc.get("type") == "weather" else ())):
        doc.pop(k, None)
    return doc


def _duration_number(v: object) -> object:
    """A plain number of hours for ``duration_h``: a deterministic :class:`RiskDuration`."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not (math.isfinite(v) and 0 < v <= MAX_TIME_H):
            raise ValueError(f"must be a finite duration > 0 and <= {MAX_TIME_H:g} hours, or a mapping "
                             "{distribution: ..., mean_h: ...}")
        return {"distribution": "deterministic", "mean_h": float(v)}
    return v


class RiskGroup(_Strict):
    """A correlation group: one common cause (a typhoon) that fires with ``probability``, at one
    time drawn uniformly in ``window`` (default: the horizon), for one duration; its member
    events (``group: NAME``) then each fire with their own probability, at the group's time
    plus their ``lag_h``, for the group's duration unless they give their own."""

    name: Name
    probability: Annotated[float, Field(ge=0, le=1)]
    window: Window | None = None
    duration_h: RiskDuration

    _duration = field_validator("duration_h", mode="before")(lambda v: _duration_number(v))


class RiskEvent(_Strict):
    """A disruption that may happen: it fires with ``probability`` (given its dependencies and
    group), starts at a time drawn uniformly in ``window`` ``[start_h, end_h)`` (default: the
    horizon) and lasts ``duration_h`` (a number or a :class:`RiskDuration`).

    ``only_if: OTHER``: it may fire only in runs where ``OTHER`` fired. ``after: OTHER``: the
    same, and ``window`` counts hours after ``OTHER`` ends (no window: it starts as ``OTHER``
    ends). ``group: G``: a member of correlation group ``G`` (:class:`RiskGroup`): it may fire
    only when ``G`` fires and starts at ``G``'s time plus ``lag_h``."""

    name: Name
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0
    window: Window | None = None
    duration_h: RiskDuration | None = None
    disruption: RiskEffect
    only_if: Name | None = None
    after: Name | None = None
    group: Name | None = None
    lag_h: Hours = 0.0

    _duration = field_validator("duration_h", mode="before")(lambda v: _duration_number(v))

    @model_validator(mode="before")
    @classmethod
    def _effect_times(cls, v: object) -> object:
        if isinstance(v, dict) and "disruption" in v:
            return {**v, "disruption": _inject_times(v["disruption"], v.get("name"))}
        return v

    @field_serializer("disruption")
    def _dump_effect(self, d: BaseModel) -> dict:
        return _effect_doc(d)

    @model_validator(mode="after")
    def _shape(self) -> RiskEvent:
        if self.group is not None:
            if self.window is not None:
                raise ValueError(f"window: a member of group {self.group!r} starts at the group's time (plus lag_h); "
                                 "remove window")
            if self.after is not None:
                raise ValueError(f"after: a member of group {self.group!r} starts at the group's time; use only_if "
                                 "for a dependency")
        else:
            if self.lag_h:
                raise ValueError(f"lag_h: only a member of a group (group: NAME) has a lag, got {self.lag_h:g}")
            if self.duration_h is None:
                raise ValueError("duration_h: field required (hours, or {distribution: ..., mean_h: ...}) for an "
                                 "event outside a group")
        for dep in ("only_if", "after"):
            if getattr(self, dep) == self.name:
                raise ValueError(f"{dep}: an event cannot depend on itself ({self.name!r})")
        return self


class Risks(_Strict):
    """Risk events (:class:`RiskEvent`) and their correlation groups (:class:`RiskGroup`). Each
    run draws which fire, when and for how long from its own random stream (the ``risk`` stream
    of :class:`twin.sim.rng.RunStreams`), and plays them as scripted disruptions
    (:mod:`twin.scenario.risks`)."""

    groups: Annotated[list[RiskGroup], Field(max_length=MAX_EVENTS)] = []
    events: Annotated[list[RiskEvent], Field(max_length=MAX_EVENTS)] = []

    @model_validator(mode="after")
    def _names(self) -> Risks:
        problems: list[str] = []
        gn = [g.name for g in self.groups]
        if len(set(gn)) != len(gn):
            problems.append(f"groups: names must be unique, got {gn}")
        en = [e.name for e in self.events]
        if len(set(en)) != len(en):
            problems.append(f"events: names must be unique, got {en}")
        for i, e in enumerate(self.events):
            if e.group is not None and e.group not in gn:
                problems.append(f"events[{i}].group: unknown group {e.group!r}; allowed: {', '.join(gn) or '(none)'}")
            for dep in ("only_if", "after"):
                other = getattr(e, dep)
                if other is not None and other not in en:
                    problems.append(f"events[{i}].{dep}: unknown event {other!r}; allowed: {', '.join(en)}")
        if not problems:
            # dependencies must not go round in a circle
            deps = {e.name: [d for d in (e.only_if, e.after) if d is not None] for e in self.events}
            state: dict[str, int] = {}

            def visit(n: str, path: list[str]) -> None:
                if state.get(n) == 2:
                    return
                if state.get(n) == 1:
                    cyc = path[path.index(n):] + [n]
                    raise ValueError(f"events: dependencies go round in a circle: {' -> '.join(cyc)}")
                state[n] = 1
                for d in deps[n]:
                    visit(d, [*path, n])
                state[n] = 2

            for n in deps:
                visit(n, [])
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Recovery(_Strict):
    """The failure and recovery thresholds of the recovery KPIs (:mod:`twin.results.kpis`), as
    anyLogistix's failure and recovery service levels: a disruption fails the service when the
    hourly ``metric`` crosses ``failure`` while it lasts, and the service has recovered when the
    metric regains ``recovery``.

    ``on_time_rate``: of the orders created in each hour, the share delivered by their promise
    (fails below ``failure``, recovers at or above ``recovery``, both shares 0..1).
    ``backlog``: the hour's time-average backlog, shipments routed but not shipped (fails above
    ``failure``, recovers at or below ``recovery``)."""

    metric: Literal["on_time_rate", "backlog"] = "on_time_rate"
    failure: Annotated[float, Field(ge=0, le=MAX_UNITS)] = 0.90
    recovery: Annotated[float, Field(ge=0, le=MAX_UNITS)] = 0.95

    @model_validator(mode="after")
    def _ordered(self) -> Recovery:
        if self.metric == "on_time_rate":
            for f in ("failure", "recovery"):
                if getattr(self, f) > 1:
                    raise ValueError(f"{f}: an on-time rate is a share 0..1, got {getattr(self, f):g}")
            if self.recovery < self.failure:
                raise ValueError(f"recovery: must be >= failure for the on-time rate, got failure={self.failure:g}, "
                                 f"recovery={self.recovery:g}")
        elif self.recovery > self.failure:
            raise ValueError(f"recovery: must be <= failure for the backlog (shipments), got failure={self.failure:g}, "
                             f"recovery={self.recovery:g}")
        return self


# --------------------------------------------------------------------------- policy
class ScoreWeights(_Strict):
    cost: Annotated[float, Field(ge=0, le=1e6)] = 1.0
    time_h: Annotated[float, Field(ge=0, le=1e6)] = 1.0
    co2_kg: Annotated[float, Field(ge=0, le=1e6)] = 1.0


class RoutingConfig(_Strict):
    name: Literal["nearest_with_stock", "cheapest", "fastest", "greenest", "weighted", "promise_aware"] = "nearest_with_stock"
    weights: ScoreWeights = ScoreWeights()
    allow_split: bool = True
    #: a parcel left behind by a full departure of its carrier may take a later departure of
    #: another carrier serving its region from the same warehouse, with room after that
    #: carrier's own parcels (then it is that carrier's parcel, at its price)
    spill: bool = False
    #: carrier choice by service level: ``{service level: criterion}`` picks that level's carrier
    #: on each lane by the criterion (``cheapest``, ``fastest``, ``greenest``,
    #: ``nearest_with_stock``: the fastest) instead of the policy's own; e.g.
    #: ``{express: fastest}`` sends express parcels by the fastest carrier, the rest as the policy
    #: says. The warehouse choice stays the policy's.
    carriers: dict[Name, Literal["cheapest", "fastest", "greenest", "nearest_with_stock"]] = {}

    @model_validator(mode="after")
    def _weighted(self) -> RoutingConfig:
        w = self.weights
        if self.name == "weighted" and w.cost == w.time_h == w.co2_kg == 0:
            raise ValueError("weights: weighted routing needs at least one of cost, time_h, co2_kg > 0, got all 0")
        return self


class ReallocationConfig(_Strict):
    """``rebalance``: every ``interval_h``, SKUs whose stock at a warehouse is below
    ``low_frac`` of its initial level get transfers from warehouses above ``high_frac``."""

    name: Literal["none", "rebalance"] = "none"
    interval_h: Interval = 12.0
    lead_time_h: Hours = 12.0
    low_frac: Annotated[float, Field(ge=0, le=10)] = 0.2
    high_frac: Annotated[float, Field(ge=0, le=10)] = 0.6

    @model_validator(mode="after")
    def _band(self) -> ReallocationConfig:
        if self.high_frac < self.low_frac:
            raise ValueError(f"high_frac must be >= low_frac, got {self.high_frac} < {self.low_frac}")
        return self


class Policy(_Strict):
    routing: RoutingConfig = RoutingConfig()
    reallocation: ReallocationConfig = ReallocationConfig()


# --------------------------------------------------------------------------- scenario
class Scenario(_Strict):
    """A whole scenario file."""

    name: Name
    description: str = ""
    #: The calendar date-time of t = 0 (ISO 8601, e.g. ``2026-11-10T00:00``, local time);
    #: only the report reads it (dates on its time axes). None: times stay hours from the start.
    start: datetime | None = None
    horizon_h: Annotated[float, Field(gt=0, le=MAX_HORIZON_H)]
    drain_h: Annotated[float, Field(ge=0, le=MAX_HORIZON_H)] = 72.0
    tick_h: Interval = 1.0
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    warehouses: list[Warehouse] = Field(min_length=1, max_length=MAX_WAREHOUSES)
    regions: list[Region] | RegionPreset
    carriers: list[Carrier] = Field(min_length=1, max_length=MAX_CARRIERS)
    demand: Demand
    replenishment: Replenishment = Replenishment()
    weather: Weather = Weather()
    disruptions: Annotated[list[Disruption], Field(max_length=MAX_EVENTS)] = []
    policy: Policy = Policy()
    #: risk events each run draws (:class:`Risks`), played as scripted disruptions
    risks: Risks = Risks()
    #: the recovery KPIs' failure and recovery thresholds
    recovery: Recovery = Recovery()

    @field_validator("start", mode="before")
    @classmethod
    def _iso_start(cls, v: object) -> object:
        if v is None or isinstance(v, datetime):
            return v
        if isinstance(v, date):  # YAML reads an unquoted 2026-11-10 as a date: its midnight
            return datetime(v.year, v.month, v.day)
        allowed = "must be an ISO date-time such as '2026-11-10T00:00' (the calendar time of t = 0)"
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v.strip())
            except ValueError as exc:
                why = str(exc) if "must be" in str(exc) else "not a date-time"
                raise ValueError(f"{allowed}: {why}") from None
        # the loader appends ", got <value>" to a scalar's message
        raise ValueError(allowed if isinstance(v, (int, float, bool)) else f"{allowed}, got {v!r}")

    @field_validator("regions", mode="before")
    @classmethod
    def _region_count(cls, v: object) -> object:
        if isinstance(v, list) and not v:
            raise ValueError("must list at least one region, or name a preset ({preset: china_provinces})")
        if isinstance(v, list) and len(v) > MAX_REGIONS:
            raise ValueError(f"at most {MAX_REGIONS} regions, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        from scenarios import expand_regions  # the preset table lives with the scenario library

        problems: list[str] = []
        wh = [w.name for w in self.warehouses]
        if len(set(wh)) != len(wh):
            problems.append(f"warehouses: names must be unique, got {wh}")
        regions = expand_regions(self.regions)
        rg = [r.name for r in regions]
        if len(set(rg)) != len(rg):
            problems.append(f"regions: names must be unique, got {rg}")
        cr = [c.name for c in self.carriers]
        if len(set(cr)) != len(cr):
            problems.append(f"carriers: names must be unique, got {cr}")

        def check(path: str, value: str, allowed: list[str], what: str) -> None:
            if value not in allowed:
                problems.append(f"{path}: unknown {what} {value!r}; allowed: {', '.join(allowed)}")

        for i, c in enumerate(self.carriers):
            if c.warehouses != "all":
                for j, n in enumerate(c.warehouses):
                    check(f"carriers[{i}].warehouses[{j}]", n, wh, "warehouse")
            if c.regions != "all":
                for j, n in enumerate(c.regions):
                    check(f"carriers[{i}].regions[{j}]", n, rg, "region")
        for i, e in enumerate(self.weather.events):
            for j, n in enumerate(e.regions):
                check(f"weather.events[{i}].regions[{j}]", n, rg, "region")
        for k in self.policy.routing.carriers:
            check(f"policy.routing.carriers.{k}", k, list(self.demand.service_levels), "service level")
        for i, d in enumerate(self.disruptions):
            if hasattr(d, "warehouse"):
                check(f"disruptions[{i}].warehouse", d.warehouse, wh, "warehouse")
            if hasattr(d, "carrier"):
                check(f"disruptions[{i}].carrier", d.carrier, cr, "carrier")
            if isinstance(d, DemandSurge) and d.regions != "all":
                for j, n in enumerate(d.regions):
                    check(f"disruptions[{i}].regions[{j}]", n, rg, "region")
        for i, e in enumerate(self.risks.events):
            d, at = e.disruption, f"risks.events[{i}].disruption"
            if hasattr(d, "warehouse"):
                check(f"{at}.warehouse", d.warehouse, wh, "warehouse")
            if hasattr(d, "carrier"):
                check(f"{at}.carrier", d.carrier, cr, "carrier")
            if isinstance(d.regions if hasattr(d, "regions") else "all", list):
                for j, n in enumerate(d.regions):
                    check(f"{at}.regions[{j}]", n, rg, "region")
        if self.demand.cold_chain_share > 0:
            if not any(w.cold_storage for w in self.warehouses):
                problems.append("demand.cold_chain_share: is > 0 but no warehouse has cold_storage: true")
            if not any(c.reefer_capacity > 0 for c in self.carriers):
                problems.append("demand.cold_chain_share: is > 0 but no carrier has reefer_capacity > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self
