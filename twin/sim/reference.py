"""The ``simpy`` engine: the readable reference order flow, one SimPy process per shipment.

arrival -> routing (stock reserved at once) -> pick queue (c(t) AGV servers, FIFO) -> pack
queue -> wait for a carrier departure with capacity (reefer for cold chain; lanes into
closed regions wait) -> transit (x weather) -> delivery.

At one instant the agents' State changes come before the engine's own events, as in the
kernel (which runs its events strictly before each agent event, then lets the agent act): the
agents' processes use SimPy's timeouts (priority NORMAL), the engine's use :class:`Later`
(priority :data:`LATE`). So a departure at an outage's start finds the warehouse closed, one at
its end finds it open again: every window ``[start_h, end_h)`` means what it says.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import simpy
from simpy.events import NORMAL, Timeout

from twin.scenario.schema import service_rank
from twin.sim.records import Counters, ShipmentTable, Status
from twin.sim.rng import Draws, Stream

from twin.sim.engine import Decision

if TYPE_CHECKING:
    from twin.sim.engine import Host

__all__ = ["LATE", "Later", "SimPyEngine", "Station"]

#: The priority of the engine's own timed events: after every agent event at the same time
#: (SimPy orders events by time, then priority, then scheduling order).
LATE = NORMAL + 1


class Later(Timeout):
    """A timeout at priority :data:`LATE`: at its time, after the agents' timeouts (NORMAL)."""

    def __init__(self, env: simpy.Environment, delay: float) -> None:  # Timeout's, inlined
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, LATE, delay)


class Station:
    """A queue with a number of servers that may change over time (non-preemptive): FIFO
    requests, and requests with a key (lowest first, FIFO on ties) served after them.

    Keeps the time integrals of busy servers and of servers available, for utilisation.
    """

    def __init__(self, env: simpy.Environment, capacity) -> None:  # noqa: ANN001 - int or callable
        self.env = env
        self._heap: list = []
        self._seq = 0
        self._capacity_fn = capacity if callable(capacity) else (lambda: capacity)
        self.capacity = self._capacity_fn()
        self.busy = 0
        self.queue: deque[simpy.Event] = deque()
        self.busy_area = 0.0
        self.capacity_area = 0.0
        self._t = env.now

    def _account(self) -> None:
        now = self.env.now
        dt = now - self._t
        if dt > 0:
            self.busy_area += self.busy * dt
            self.capacity_area += self.capacity * dt
            self._t = now

    def acquire(self) -> bool:
        """Take a server at once if one is free and nobody waits; False otherwise."""
        if self.busy < self.capacity and not self.queue and not self._heap:
            self._account()
            self.busy += 1
            return True
        return False

    def request(self, key: float | None = None) -> simpy.Event:
        """An event that fires when this request gets a server: FIFO when ``key`` is None, else
        by ``key`` (lowest first, FIFO on ties), after every FIFO request waiting."""
        ev = self.env.event()
        if self.acquire():
            ev.succeed()
        elif key is not None:
            heapq.heappush(self._heap, (key, self._seq, ev))
            self._seq += 1
        else:
            self.queue.append(ev)
        return ev

    def release(self) -> None:
        self._account()
        self.busy -= 1
        self._fill()

    def refresh(self) -> None:
        """Read the capacity again (the State changed) and start waiting work if it grew."""
        self._account()
        self.capacity = self._capacity_fn()
        self._fill()

    def _fill(self) -> None:
        while self.queue and self.busy < self.capacity:
            self.busy += 1
            self.queue.popleft().succeed()
        while self._heap and self.busy < self.capacity:
            self.busy += 1
            heapq.heappop(self._heap)[2].succeed()

    def areas(self) -> tuple[float, float]:
        """``(busy server-hours, available server-hours)`` up to now."""
        self._account()
        return self.busy_area, self.capacity_area


class SimPyEngine:
    """Moves orders through the flow with SimPy processes on the model's environment."""

    name = "simpy"
    supports_decisions = True
    #: plays ``Host.arrivals`` (an order table) instead of drawing orders
    supports_arrivals = True

    def __init__(self, host: Host) -> None:
        self.m = host
        self.env = env = host.env
        sc, net = host.scenario, host.net
        # one stream per source (common random numbers): orders from ``demand`` only
        rng = host.streams.demand
        self._demand = draws = Draws(rng)
        self.table = ShipmentTable()
        self.counters = Counters()
        # An outside decider (rl's OrderRouting-v0) may route each new order: while asking
        # (:meth:`ask_decisions`), an arrival waits until :meth:`decide` answers it.
        self._asking = False
        self._pending: tuple | None = None  # (order, sku, qty, event)
        self._decision: Decision | None = None
        self._bpeak = host.state.backlog.astype(np.int64).copy()
        self._btotal = self._bpeak_total = int(host.state.backlog.sum())
        self._barea = np.zeros(len(self._bpeak))
        self._blast = np.zeros(len(self._bpeak))
        self._arrivals_gen = 0  # the arrival window running: each start_arrivals() ends the last
        self._table = host.arrivals  # orders given (a replayed history) instead of drawn
        self._table_started = False
        d = sc.demand
        self._lines: tuple[list, list, list] | None = ([], [], []) if host.log_lines else None
        # order content
        self._u = draws.uniform
        self._extra_lines = Stream(lambda n: rng.poisson(d.lines_per_order - 1.0, n)) if d.lines_per_order > 1 else None
        amb = np.flatnonzero(~net.sku_cold)
        cold = np.flatnonzero(net.sku_cold)
        self._sku_amb = Stream(lambda n: rng.choice(amb, size=n, p=net.sku_p[amb] / net.sku_p[amb].sum())) if len(amb) else None
        self._sku_cold = Stream(lambda n: rng.choice(cold, size=n, p=net.sku_p[cold] / net.sku_p[cold].sum())) if len(cold) else None
        if self._sku_amb is None:
            self._sku_amb = self._sku_cold
        sl = list(d.service_levels.items())
        self._sl_names = [k for k, _ in sl]
        self._sl_cum = list(np.cumsum([v.share for _, v in sl]))
        self._sl_promise = [v.promise_h for _, v in sl]
        # stations
        self.pick = [Station(env, self._pick_capacity(w)) for w in range(net.n_warehouses)]
        # the pick queue's key per shipment, by the warehouse's priority now (State.pick_priority,
        # a PICK_PRIORITIES index): none (fifo), the service level's rank (express_first) or
        # the promised delivery time (earliest_promise); FIFO among equal keys
        rank = service_rank(sc)
        self._pick_key = (lambda s: None, lambda s: rank[s.order.service], lambda s: s.order.promised_at)
        self.pack = [Station(env, wh.pack.stations) if wh.pack.time_h > 0 else None for wh in sc.warehouses]
        pick, pack, transit = Draws(host.streams.pick), Draws(host.streams.pack), Draws(host.streams.transit)
        self._pick_time = [pick.sampler(wh.pick.pick_time, 1.0 / wh.pick.lines_per_agv_h, wh.pick.pick_time_cv)
                           for wh in sc.warehouses]
        self._pack_time = [pack.sampler(wh.pack.distribution, wh.pack.time_h, 1.0) for wh in sc.warehouses]
        self._transit = [transit.sampler(c.transit.distribution, 1.0, c.transit.cv) for c in sc.carriers]
        for sched, play in zip(host.agv_schedules, host.agv_players, strict=True):  # AGV breakdowns, repairs
            if len(sched[0]):
                env.process(play())
        self._spill = bool(sc.policy.routing.spill)
        # carrier docks: one FIFO per (carrier, warehouse) with linehaul departures
        self.docks: dict[tuple[int, int], list] = {}
        for c in range(len(net.carriers)):
            for w in range(net.n_warehouses):
                if net.serves[c, w].any():
                    self.docks[(c, w)] = []
                    env.process(self._departures(c, w))

    # ------------------------------------------------------------------ coarse hooks
    def _pick_capacity(self, w: int):  # noqa: ANN202
        st = self.m.state
        return lambda: int(st.pick_servers[w]) if st.wh_open[w] else 0

    def on_state_change(self) -> None:
        for s in self.pick:
            s.refresh()

    def start_arrivals(self, t0: float, t1: float) -> None:
        """Generate the orders arriving in ``[t0, t1)`` at the State's region rates (read now).
        A window still running stops at ``t0`` (``t0`` is now): a rate change inside a tick
        starts the rest of the tick again at the new rates."""
        if self._table is not None:  # the table is the whole demand: played once, rates unread
            if not self._table_started:
                self._table_started = True
                self.env.process(self._table_arrivals())
            return
        self._arrivals_gen += 1
        rates = self.m.state.region_rate.copy()
        total = float(rates.sum())
        if total > 0:
            self.env.process(self._arrivals(t0, t1, total, list(np.cumsum(rates) / total), self._arrivals_gen))

    def advance(self, until: float) -> None:
        self.env.run(until=until)

    # ------------------------------------------------------------------ processes
    def _arrivals(self, t0: float, t1: float, total: float, cum: list[float], gen: int):  # noqa: ANN202
        env, exp, u = self.env, self._demand.exponential, self._u
        last = len(cum) - 1
        t = t0
        while True:
            t += exp() / total
            if t >= t1:
                return
            yield Later(env, t - env.now)
            if gen != self._arrivals_gen:
                return  # start_arrivals started a new window
            wait = self._new_order(min(bisect_right(cum, u()), last))
            if wait is not None:
                yield wait  # asking: the order waits for decide()

    def _table_arrivals(self):  # noqa: ANN202
        """Play :attr:`Host.arrivals`: each order at its time, as drawn orders are placed."""
        a, env = self._table, self.env
        t, ls = a.created_h.tolist(), a.line_start.tolist()
        region, cold, level = a.region.tolist(), a.cold.tolist(), a.service_level.tolist()
        sku, qty = a.sku.tolist(), a.qty.tolist()
        for i in range(len(t)):
            yield Later(env, max(0.0, t[i] - env.now))  # after the agents' events at that instant
            wait = self._admit(int(region[i]), bool(cold[i]), int(level[i]), sku[ls[i]:ls[i + 1]],
                               qty[ls[i]:ls[i + 1]])
            if wait is not None:
                yield wait

    def _new_order(self, region: int) -> simpy.Event | None:
        sc, u = self.m.scenario, self._u
        cold = sc.demand.cold_chain_share > 0 and u() < sc.demand.cold_chain_share
        n = 1 + (self._extra_lines() if self._extra_lines is not None else 0)
        draw = self._sku_cold if cold else self._sku_amb
        skus: dict[int, int] = {}
        for _ in range(n):
            k = draw()
            skus[k] = skus.get(k, 0) + 1
        k = bisect_right(self._sl_cum, u() * self._sl_cum[-1])
        k = min(k, len(self._sl_names) - 1)
        return self._admit(region, cold, k, list(skus.keys()), list(skus.values()))

    def _admit(self, region: int, cold: bool, k: int, sku: list[int], qty: list[int]) -> simpy.Event | None:
        """Create the order now (service level ``k``, distinct SKUs ``sku`` with units ``qty``)
        and route it, or return the event it waits on while decisions are asked for."""
        now = self.env.now
        oid = self.counters.created
        self.counters.created += 1
        order = self.table.new_order(oid, region, cold, k, sum(qty), now, now + self._sl_promise[k])
        if self._lines is not None:
            self._lines[0].extend([oid] * len(sku))
            self._lines[1].extend(sku)
            self._lines[2].extend(qty)
        if self._asking:
            ev = self.env.event()
            ev.callbacks.append(lambda e: self._place(order, sku, qty, *e.value))
            self._pending = (order, sku, qty, ev)
            self._decision = Decision(oid, region, bool(cold), k, now, now + self._sl_promise[k], tuple(sku),
                                      tuple(qty))
            return ev
        self._place(order, sku, qty)
        return None

    def _note_backlog(self, w: int, delta: int) -> None:
        """Change warehouse ``w``'s backlog by ``delta``, keeping its exact time integral and peaks."""
        bl, now = self.m.state.backlog, self.env.now
        self._barea[w] += int(bl[w]) * (now - self._blast[w])
        self._blast[w] = now
        bl[w] += delta
        self._btotal += delta
        if bl[w] > self._bpeak[w]:
            self._bpeak[w] = bl[w]
        if self._btotal > self._bpeak_total:
            self._bpeak_total = self._btotal

    def backlog_areas(self) -> np.ndarray:
        """Per warehouse: the backlog's time integral up to now (shipment-hours), exact."""
        now = self.env.now
        return self._barea + self.m.state.backlog * (now - self._blast)

    def backlog_peaks(self) -> tuple[np.ndarray, int]:
        """``(per warehouse, network)``: the largest backlog (shipments routed, not yet shipped)
        reached so far, events at one instant taken in the order SimPy runs them."""
        return self._bpeak.copy(), int(self._bpeak_total)

    # ------------------------------------------------------------------ decision points
    def ask_decisions(self, on: bool = True) -> None:
        """While on, each new order waits for :meth:`decide` (found by :meth:`next_decision`)."""
        if not on and self._pending is not None:
            raise RuntimeError("an order is waiting for a routing decision: decide() it first")
        self._asking = bool(on)

    @property
    def pending_decision(self) -> Decision | None:
        """The order waiting for a decision, if any."""
        return self._decision

    def next_decision(self, until: float) -> Decision | None:
        """Run the order flow to the next order waiting for a decision (returned), or to
        ``until`` (None; the clock then reads ``until``). Needs :meth:`ask_decisions`."""
        if not self._asking:
            raise RuntimeError("call ask_decisions() before next_decision()")
        env = self.env
        while self._pending is None and env.peek() < until:
            env.step()
        if self._pending is not None:
            return self._decision
        env.run(until=until)
        return None

    def decide(self, line_wh: list[int] | None, carrier: int | None = None) -> None:
        """Answer the waiting order: the warehouse of each of its lines (the caller checked that
        they have the stock), or None to let the routing policy decide. It is placed at once,
        when the simulation steps on. ``carrier`` (with ``line_wh``): the carrier of every
        shipment of the order (the caller checked the lane, reefer room for a cold order); None:
        the routing policy's ``carrier()``."""
        if self._pending is None:
            raise RuntimeError("no order is waiting for a routing decision")
        if line_wh is not None and len(line_wh) != len(self._pending[1]):
            raise ValueError(f"decide() needs one warehouse per line ({len(self._pending[1])}), got {len(line_wh)}")
        if carrier is not None and (line_wh is None or not 0 <= int(carrier) < len(self.m.net.carriers)):
            raise ValueError(f"decide(carrier=...) needs line_wh and a carrier index in [0, "
                             f"{len(self.m.net.carriers)}), got carrier={carrier!r} with line_wh={line_wh!r}")
        ev = self._pending[3]
        self._pending = None
        self._decision = None
        ev.succeed((None, None) if line_wh is None else ([int(w) for w in line_wh],
                                                         None if carrier is None else int(carrier)))

    def _place(self, order, sku: list[int], qty: list[int], line_wh: list[int] | None = None,  # noqa: ANN001
               carrier: int | None = None) -> None:
        if not self._route(order, sku, qty, line_wh, carrier):
            if self.m.scenario.demand.unfulfillable == "backorder":
                order.status = Status.backordered
                self.env.process(self._backorder(order, sku, qty))
            else:
                self._lose(order)

    def _route(self, order, sku: list[int], qty: list[int], line_wh: list[int] | None = None,  # noqa: ANN001
               carrier: int | None = None) -> bool:
        """Route ``order`` now (to ``line_wh`` if given, else where the routing policy says; by
        ``carrier`` if given, else the policy's); reserve its stock and start its shipments.
        False: not servable."""
        m = self.m
        if line_wh is None:
            m.state.clock[0] = self.env.now
            line_wh = m.routing.route_one(order.region, order.cold, sku, qty, m.state, service=order.service)
        if line_wh is None:
            return False
        inv, now = m.state.inventory, self.env.now
        per_wh: dict[int, int] = {}
        for w, k, q in zip(line_wh, sku, qty):
            inv[w, k] -= q
            per_wh[w] = per_wh.get(w, 0) + q
        for w, lines in sorted(per_wh.items()):
            c = m.routing.carrier(w, order.region, order.cold, order.service) if carrier is None else carrier
            s = self.table.new_shipment(order, w, c, lines, now, m.net, self.counters)
            self._note_backlog(w, +1)
            self.env.process(self._shipment(s))
        return True

    def _lose(self, order) -> None:  # noqa: ANN001
        self.table.lost_order(order)
        self.counters.lost += 1

    def _backorder(self, order, sku: list[int], qty: list[int]):  # noqa: ANN001, ANN202
        d = self.m.scenario.demand
        give_up = order.created_at + d.backorder_max_h
        while self.env.now + d.backorder_retry_h <= give_up + 1e-9:
            yield Later(self.env, d.backorder_retry_h)
            if self._route(order, sku, qty):
                return
        yield Later(self.env, max(0.0, give_up - self.env.now))
        self._lose(order)

    def _shipment(self, s):  # noqa: ANN001, ANN202
        env, w = self.env, s.warehouse
        station = self.pick[w]
        if not station.acquire():
            yield station.request(self._pick_key[int(self.m.state.pick_priority[w])](s))
        s.pick_start = env.now
        s.status = Status.picking
        yield Later(env, self._pick_time[w](s.lines))
        s.pick_end = env.now
        station.release()
        s.status = Status.packing
        pack = self.pack[w]
        if pack is not None:
            if not pack.acquire():
                yield pack.request()
            yield Later(env, self._pack_time[w]())
            pack.release()
        s.status = Status.awaiting_carrier
        ev = env.event()
        self.docks[(s.carrier, w)].append((s, ev))
        self.m.state.dock_waiting[s.carrier, w] += 1
        yield ev  # a departure took the parcel
        s.shipped_at = env.now
        s.status = Status.in_transit
        self._note_backlog(w, -1)
        mean = self.m.net.transit_mean_h[s.carrier, w, s.region] * self.m.state.region_transit_mult[s.region]
        yield Later(env, self._transit[s.carrier](mean))
        s.delivered_at = env.now
        s.status = Status.delivered
        self.table.delivered(s, self.counters)

    def _departures(self, c: int, w: int):  # noqa: ANN202
        car = self.m.scenario.carriers[c]
        yield Later(self.env, car.first_departure_h)
        while True:
            self._depart(c, w)
            yield Later(self.env, car.departure_interval_h)

    def _depart(self, c: int, w: int) -> None:
        st = self.m.state
        dock = self.docks[(c, w)]
        if (not dock and not self._spill) or not st.wh_open[w]:
            return
        cap, reefer = self.m.carrier_capacity_now(c)
        region_open = st.region_open
        stay = []
        for i, (s, ev) in enumerate(dock):
            if cap <= 0 and reefer <= 0:
                for s2, _ in dock[i:]:
                    s2.left_behind = True
                stay.extend(dock[i:])
                break
            if not region_open[s.region]:
                stay.append((s, ev))
            elif s.cold:
                if reefer > 0:
                    reefer -= 1
                    ev.succeed()
                else:
                    s.left_behind = True
                    stay.append((s, ev))
            elif cap > 0:
                cap -= 1
                ev.succeed()
            else:
                s.left_behind = True
                stay.append((s, ev))
        st.dock_waiting[c, w] -= len(dock) - len(stay)
        self.docks[(c, w)] = stay
        if self._spill and (cap > 0 or reefer > 0):
            self._take_spill(c, w, cap, reefer)

    def _take_spill(self, c: int, w: int, cap: int, reefer: int) -> None:
        """Spill (``policy.routing.spill``): room left on this departure of carrier ``c`` takes
        the parcels other carriers' full departures left behind at ``w`` (docks in carrier order,
        each oldest first), into open regions ``c`` serves, cold ones in reefer room."""
        st, serves = self.m.state, self.m.net.serves
        for c2 in range(len(self.m.net.carriers)):
            if c2 == c or (cap <= 0 and reefer <= 0):
                continue
            dock = self.docks.get((c2, w))
            if not dock:
                continue
            stay = []
            for s, ev in dock:
                if (s.left_behind and serves[c, w, s.region] and st.region_open[s.region]
                        and (reefer > 0 if s.cold else cap > 0)):
                    if s.cold:
                        reefer -= 1
                    else:
                        cap -= 1
                    self.table.change_carrier(s, c, self.m.net, self.counters)
                    ev.succeed()
                else:
                    stay.append((s, ev))
            st.dock_waiting[c2, w] -= len(dock) - len(stay)
            self.docks[(c2, w)] = stay

    # ------------------------------------------------------------------ measures
    def station_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """Per warehouse: (busy pick server-hours, available pick server-hours) so far."""
        a = np.array([s.areas() for s in self.pick], dtype=float)
        return a[:, 0], a[:, 1]

    def order_lines(self) -> dict[str, np.ndarray]:
        """Every order's lines as created (``Host.log_lines``): ``order_id``, ``sku``, ``quantity``."""
        if self._lines is None:
            raise RuntimeError("order lines are kept only with Host.log_lines")
        return {k: np.asarray(v, dtype=np.int64) for k, v in zip(("order_id", "sku", "quantity"), self._lines)}

    def finish(self, end_time: float) -> dict[str, np.ndarray]:
        """The shipment records as columns (see :mod:`twin.sim.records`)."""
        return self.table.columns()

