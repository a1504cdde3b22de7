"""The Mesa model of the fulfillment network: agents, State, engine and the DataCollector."""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Mapping
from typing import Any

import mesa
import numpy as np
import simpy

from agents import (
    AGVFleetAgent,
    CarrierAgent,
    DemandAgent,
    DisruptionAgent,
    ReallocationAgent,
    SupplierAgent,
    WarehouseAgent,
    WeatherAgent,
)
from twin.policies import ReallocationPolicy, RoutingPolicy, make_reallocation_policy, make_routing_policy
from twin.scenario.risks import realise_risks
from twin.scenario.schema import Scenario
from twin.scenario.size import estimate_run
from twin.sim.engine import ENGINES, ArrivalTable, Decision, Host, engine_names, engine_spec, make_engine
from twin.sim.rng import RunStreams
from twin.world.network import Network, network_for
from twin.world.state import State

__all__ = ["FulfillmentModel", "ENGINES"]


class _ModelIds(weakref.WeakKeyDictionary):
    """``mesa.Agent``'s per-model counters of agent ids, held weakly: Mesa 3 keeps them in a plain
    dict keyed by the model, so every model ever built (each run, each RL episode) stayed in
    memory with its State and records."""

    def __getitem__(self, model: Any) -> Any:
        try:
            return super().__getitem__(model)
        except KeyError:
            self[model] = counter = itertools.count(1)
            return counter


if not isinstance(mesa.Agent._ids, weakref.WeakKeyDictionary):
    mesa.Agent._ids = _ModelIds(mesa.Agent._ids)


class FulfillmentModel(mesa.Model):
    """The twin as a Mesa model. ``step()`` advances one tick (``scenario.tick_h`` hours).

    Each tick: the weather agents and the demand agent step (Mesa-style), the engine
    generates the tick's arrivals at the State's rates and moves orders until the tick ends,
    while the continuous agents (disruptions, suppliers, reallocation) run as SimPy processes on
    the same environment, and the AGV fleets' breakdown schedules (drawn when the fleets are
    built) are played by the engine; then the DataCollector records one row. Scripted weather
    events and disruptions are SimPy processes too: each window ``[start_h, end_h)`` acts at
    exactly its times, before the engine's own events at the same instant (a demand multiplier
    changing inside a tick restarts the tick's arrivals from then: :meth:`demand_changed`).

    Args:
        scenario: a validated scenario.
        seed: the run's one seed: every source of randomness draws from its own stream spawned
            from it (``self.streams``, :class:`twin.sim.rng.RunStreams`: common random numbers
            across policies and what-ifs); Mesa's ``self.rng`` is seeded with it too.
        engine: a registered engine (:mod:`twin.sim.engine`): ``"kernel"`` (the Cython
            engine, the default) or ``"simpy"`` (the reference).
        routing: a routing policy to use instead of the scenario's.
        reallocation: a reallocation policy to use instead of the scenario's.
        engine_options: keyword arguments for the engine (e.g. the kernel's
            ``routing_interval_h``: policies without a native plan route the orders of each
            interval of this length in one batch).
        timeseries: record one time-series row per tick (the DataCollector). RL envs turn it
            off: they read the engine's running counters, and the row is most of a tick's Python.
        network: a network built from a scenario with the same warehouses, regions, carriers and
            SKUs (:func:`twin.world.network.same_network`), whose arrays this model reuses instead of
            building them again (RL envs, once per episode); otherwise it is built.
        log_lines: keep every order's lines (SKU, quantity): :meth:`order_lines`.
        arrivals: play these orders instead of drawing them (:class:`twin.sim.engine.ArrivalTable`,
            a replayed order history; engines with ``supports_arrivals``: ``simpy``); every
            other source of randomness draws as usual, so two runs of one table and seed are
            paired (common random numbers).
    """

    #: the end of the tick's arrival window (set by :meth:`begin_tick`; see :meth:`demand_changed`)
    _arrivals_end: float = 0.0

    def __init__(self, scenario: Scenario, seed: int = 0, engine: str = "kernel",
                 routing: RoutingPolicy | None = None, reallocation: ReallocationPolicy | None = None,
                 engine_options: Mapping[str, Any] | None = None, timeseries: bool = True,
                 network: Network | None = None, log_lines: bool = False,
                 arrivals: ArrivalTable | None = None) -> None:
        spec = engine_spec(engine)  # a clear error before any work
        if arrivals is not None and not getattr(spec.load(), "supports_arrivals", False):
            raise ValueError(f"engine {engine!r} cannot play an order table (arrivals); use one that can "
                             f"({', '.join(n for n in engine_names() if getattr(engine_spec(n).load(), 'supports_arrivals', False))})")
        estimate_run(scenario).check()  # a run that cannot fit is refused up front, by every engine
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        super().__init__(rng=np.random.default_rng(int(seed)))
        self.seed = int(seed)
        self.streams = RunStreams(self.seed)
        # the scenario's risk events, drawn from the run's risk stream, become scripted disruptions
        # (``self.risk_events``: what fired, when); without risks the scenario is played as it is
        scenario, self.risk_events = realise_risks(scenario, self.streams.risk)
        self.scenario = scenario
        self.net = network_for(scenario, network)
        self.state = State.initial(self.net)
        self.env = simpy.Environment()
        self.routing = (routing.bind(self.net, self.streams.routing) if routing is not None
                        else make_routing_policy(scenario.policy.routing, self.net, self.streams.routing))
        self.reallocation = reallocation or make_reallocation_policy(scenario.policy.reallocation)
        self.end_time = scenario.horizon_h + scenario.drain_h
        self.record_timeseries = timeseries
        self.log_lines = bool(log_lines)
        self.arrivals = arrivals
        if arrivals is not None:
            self._check_arrivals(arrivals)
        self.n_ticks = math.ceil(self.end_time / scenario.tick_h - 1e-9)

        W = self.net.n_warehouses
        self.warehouse_agents = [WarehouseAgent(self, i) for i in range(W)]
        self.fleets = [AGVFleetAgent(self, i) for i in range(W)]
        self.carrier_agents = [CarrierAgent(self, c) for c in range(len(self.net.carriers))]
        self.weather = WeatherAgent(self)
        self.demand = DemandAgent(self)
        self.supplier = SupplierAgent(self)
        self.reallocator = ReallocationAgent(self)

        self.engine = make_engine(engine, self.host(), **dict(engine_options or {}))
        self._tick_end: float | None = None  # inside a tick stopped at a decision point
        self.disruption = DisruptionAgent(self)  # after the engine: it notifies it at once
        self._last_busy = np.zeros(W)
        self._last_cap = np.zeros(W)
        self._last_bl_area = np.zeros(W)
        self._last_t = 0.0
        self._wh_columns = [[f"{kind}[{name}]" for name in self.net.warehouses]
                            for kind in ("backlog", "backlog_peak", "utilization", "servers", "stock", "busy_hours",
                                         "server_hours")]
        # one table row per tick (Mesa's model reporters would deep-copy every value)
        self.datacollector = mesa.DataCollector(tables={"timeseries": self._columns()})

    def host(self) -> Host:
        """The narrow view of this model that its engine gets (:class:`twin.sim.engine.Host`)."""
        return Host(
            scenario=self.scenario, net=self.net, state=self.state, env=self.env, routing=self.routing,
            streams=self.streams, log_lines=self.log_lines, agv_schedules=tuple(f.schedule for f in self.fleets),
            agvs=np.array([f.agvs for f in self.fleets], dtype=np.int64),
            duty=np.array([f.duty for f in self.fleets], dtype=np.float64),
            agv_players=tuple(f.play for f in self.fleets),
            carrier_capacity_now=lambda c: self.carrier_agents[c].capacity_now(),
            expected_orders=self.demand.expected_orders() if self.arrivals is None else float(len(self.arrivals)),
            arrivals=self.arrivals,
        )

    def _check_arrivals(self, a: ArrivalTable) -> None:
        """Refuse an order table that names what the network does not have or arrives after
        the horizon."""
        net, sc = self.net, self.scenario
        checks = (("region", a.region, net.n_regions), ("service_level", a.service_level,
                                                        len(sc.demand.service_levels)), ("sku", a.sku, net.n_skus))
        for name, v, n in checks:
            v = np.asarray(v)
            if len(v) and (v.min() < 0 or v.max() >= n):
                bad = int(v[(v < 0) | (v >= n)][0])
                raise ValueError(f"arrivals.{name}: index {bad} is not one of the scenario's 0..{n - 1}")
        if len(a) and float(a.created_h[-1]) >= sc.horizon_h:
            raise ValueError(f"arrivals.created_h: an order at {float(a.created_h[-1]):g} h is not before the "
                             f"scenario's horizon_h {sc.horizon_h:g}")

    # ------------------------------------------------------------------ Mesa API
    @property
    def time_h(self) -> float:
        return float(self.env.now)

    def state_changed(self) -> None:
        """Agents call this after writing the State, so the engine picks the change up."""
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.on_state_change()

    def step(self) -> None:
        """Advance one tick of simulated time."""
        if self._tick_end is not None:
            raise RuntimeError("a tick is under way at a decision point: decide() the waiting order and "
                               "finish it with next_decision() first")
        t1 = self.begin_tick()
        self.engine.advance(t1)
        self.end_tick()

    def next_decision(self, stop_h: float | None = None) -> Decision | None:
        """Step the model tick by tick and stop at each order waiting for a routing decision
        (returned; answer it with ``model.engine.decide``). None once the clock reached
        ``stop_h`` (default: the end of the run) at a tick's end, or the run ended; the model
        can then go on with :meth:`step`. Needs an engine with ``supports_decisions``."""
        eng = self.engine
        if not eng.supports_decisions:
            raise TypeError(f"engine {eng.name!r} offers no decision points; use one with supports_decisions "
                            f"({', '.join(n for n in engine_names() if engine_spec(n).load().supports_decisions)})")
        eng.ask_decisions(True)
        stop = self.end_time if stop_h is None else stop_h
        while True:
            if self._tick_end is None:
                if not self.running or self.env.now >= stop - 1e-9:
                    eng.ask_decisions(False)  # the model steps on as usual
                    return None
                self._tick_end = self.begin_tick()
            d = eng.next_decision(self._tick_end)
            if d is not None:
                return d
            self._tick_end = None
            self.steps += 1  # the tick Mesa's wrapped step() would have counted
            self.end_tick()

    def begin_tick(self) -> float:
        """The tick's coarse updates: weather and demand agents, then the tick's arrivals.
        Returns the tick's end time (the engine then runs to it)."""
        t0 = self.env.now
        t1 = min(t0 + self.scenario.tick_h, self.end_time)
        self.weather.step()
        self.demand.step()
        self._arrivals_end = min(t1, self.scenario.horizon_h)
        if t0 < self.scenario.horizon_h:
            self.engine.start_arrivals(t0, self._arrivals_end)
        return t1

    def demand_changed(self) -> None:
        """Agents call this when they changed a demand multiplier inside a tick (a demand surge
        or a scripted weather event starting or ending, at its exact time): the region rates
        follow at once and the rest of the tick's orders arrive at them (the base rate stays the
        tick's, taken at its middle)."""
        now = self.env.now
        if now < self._arrivals_end:
            self.demand.refresh()
            self.engine.start_arrivals(now, self._arrivals_end)

    def end_tick(self) -> None:
        """After the engine reached the tick's end: one time-series row; stop at the end."""
        if self.record_timeseries:
            self.datacollector.add_table_row("timeseries", self._snapshot())
        if self.env.now >= self.end_time - 1e-9:
            self.running = False

    @property
    def timeseries(self):  # noqa: ANN201 - a pandas DataFrame
        """The time series so far, one row per tick (the DataCollector's table)."""
        return self.datacollector.get_table_dataframe("timeseries")

    def run(self, progress=None, before_tick=None) -> None:  # noqa: ANN001 - callables or None
        """Step to the end of the run (horizon plus drain). ``progress(done, total)`` after each
        tick; ``before_tick(model)`` before each (a controller that turns a policy's knobs: an
        epoch policy trained in an RL env, run where a planner looks)."""
        while self.running:
            if before_tick is not None:
                before_tick(self)
            self.step()
            if progress is not None:
                progress(self.steps, self.n_ticks)

    def order_lines(self):  # noqa: ANN201 - a pandas DataFrame
        """Every order's lines as created: ``order_id``, ``sku``, ``quantity`` (needs
        ``log_lines=True``)."""
        import pandas as pd

        if not self.log_lines:
            raise RuntimeError("order lines are kept only with FulfillmentModel(..., log_lines=True)")
        return pd.DataFrame(self.engine.order_lines())

    # ------------------------------------------------------------------ time series
    def _columns(self) -> list[str]:
        """``backlog``: the time-average backlog over the row's tick (exact, from the engine's
        integral); ``backlog_peak``: the largest backlog reached so far; per warehouse likewise."""
        cols = ["time_h", "orders_created", "orders_delivered", "orders_lost", "orders_in_flight", "on_time_rate",
                "backlog", "backlog_peak"]
        for name in self.net.warehouses:
            cols += [f"backlog[{name}]", f"backlog_peak[{name}]", f"utilization[{name}]", f"servers[{name}]",
                     f"stock[{name}]", f"busy_hours[{name}]", f"server_hours[{name}]"]
        return cols

    def _snapshot(self) -> dict[str, float]:
        c, st = self.engine.counters, self.state
        busy, cap = self.engine.station_areas()
        d_busy, d_cap = busy - self._last_busy, cap - self._last_cap
        self._last_busy, self._last_cap = busy, cap
        util = np.divide(d_busy, d_cap, out=np.full_like(d_busy, np.nan), where=d_cap > 0)
        now = float(self.env.now)
        area = self.engine.backlog_areas()
        dt = now - self._last_t
        bl = (area - self._last_bl_area) / dt if dt > 0 else np.asarray(st.backlog, dtype=float)
        self._last_bl_area, self._last_t = area, now
        peak_w, peak = self.engine.backlog_peaks()
        row = {"time_h": now, "orders_created": c.created, "orders_delivered": c.delivered,
               "orders_lost": c.lost, "orders_in_flight": c.in_flight,
               "on_time_rate": c.on_time / c.delivered if c.delivered else float("nan"),
               "backlog": float(bl.sum()), "backlog_peak": int(peak)}
        values = (bl, peak_w, util, np.where(st.wh_open, st.pick_servers, 0), st.inventory.sum(axis=1), busy, cap)
        for names, v in zip(self._wh_columns, values, strict=True):
            row.update(zip(names, v.tolist(), strict=True))
        return row
