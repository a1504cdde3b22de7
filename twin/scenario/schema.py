"""The scenario schema: what a scenario YAML file may say, validated with pydantic.

Times are hours from the scenario start, distances kilometres, costs in CNY, CO2 in kg.

Every number has finite bounds that both engines honour (the ``MAX_*``/``MIN_*`` limits
below; infinities and NaN are refused everywhere), and counts that the engines store in
fixed-width fields are limited here too (at most 127 service levels: a record keeps the level
in one byte). Whether a whole run fits in time and memory is :mod:`twin.scenario.size`'s
estimate, checked before a run starts.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
        if self.demand.cold_chain_share > 0:
            if not any(w.cold_storage for w in self.warehouses):
                problems.append("demand.cold_chain_share: is > 0 but no warehouse has cold_storage: true")
            if not any(c.reefer_capacity > 0 for c in self.carriers):
                problems.append("demand.cold_chain_share: is > 0 but no carrier has reefer_capacity > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self
