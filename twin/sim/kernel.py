"""The ``kernel`` engine: the reference order flow (:mod:`twin.sim.reference`) in typed Cython.

This wrapper prepares the scenario's tables for :class:`ext._kernel.Kernel` (one typed
:class:`KernelTables`), checks that the State arrays can be shared without copies, and drives
the kernel between the agents' coarse events: ``advance(until)`` runs the kernel up to each
agent event, lets the agent change the State, and goes on. The routing policy's
:class:`~twin.policies.plan.RoutingPlan` says how the kernel runs it: natively (static
scores, scores plus the queue term, allocation shares) or by calling ``policy.route`` on
batches. The kernel draws from its own generators, one per source, seeded from the run's
streams (:class:`twin.sim.rng.RunStreams`): common random numbers across policies and
what-ifs; the draws differ from the ``simpy`` engine's (agreement is statistical).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.policies import OrderBatch, RoutingPolicy
from twin.policies.plan import RoutingPlan, preference_lists
from twin.sim.engine import Host
from twin.sim.records import Counters
from twin.scenario.distributions import dist_spec
from twin.scenario.schema import service_rank

__all__ = ["KernelEngine", "KernelTables", "kernel_tables"]


@dataclass(frozen=True, eq=False)
class KernelTables:
    """Everything :class:`ext._kernel.Kernel` reads at construction, typed (see ``_kernel.pyi``).

    Sizes ``W`` warehouses, ``R`` regions, ``C`` carriers. Arrays are C-contiguous with the
    dtypes named; lanes flatten ``[C, W, R]``, costs ``[2, C, W, R]`` (cold first).
    """

    W: int
    R: int
    C: int
    # routing (from the policy's plan)
    mode: int  # twin.policies.plan.PLAN_MODES
    allow_split: bool
    static_score: np.ndarray  # [2, R, W] float64
    pref: np.ndarray  # [2, R, W] int32, -1 padded: warehouses by static score
    npref: np.ndarray  # [2, R] int32
    lane_carrier: np.ndarray  # [2, W, R] int64 (the policy's array itself: in-place changes reach the kernel)
    service_carrier: np.ndarray  # [2, K, W, R] int64: by service level (use_service_carrier)
    use_service_carrier: bool
    pick_h: np.ndarray  # [W] float64, hours per line (the queue term)
    dyn_a: float  # queue term weight
    dyn_b: float  # queue term scale
    shares: np.ndarray  # [R, W] float64 (shares mode; zeros otherwise)
    late_penalty_by_service: np.ndarray  # [K] promise mode: CNY per late order (the plan's array: shared)
    warehouse_offset: np.ndarray  # [W] promise mode: CNY added to each warehouse's score (shared)
    co2_price: float  # promise mode: CNY per kg CO2
    lines_mean: float  # lines per order (promise mode's queue term)
    policy: RoutingPolicy  # called on batches in batch mode
    policy_label: str
    batch_cls: type
    wh_names: tuple[str, ...]
    route_interval: float  # hours between batch calls
    # demand
    cold_share: float
    lam_lines: float
    amb_prob: np.ndarray
    amb_alias: np.ndarray
    amb_sku: np.ndarray
    cold_prob: np.ndarray
    cold_alias: np.ndarray
    cold_sku: np.ndarray
    sl_cum: np.ndarray
    sl_promise: np.ndarray
    sl_rank: np.ndarray  # [K] float64: service levels ranked by promise (express_first)
    backorder: bool
    retry_h: float
    max_h: float
    # stations and lanes: distributions as twin.scenario.distributions.dist_spec
    pick_kind: np.ndarray
    pick_sigma: np.ndarray
    pick_mu: np.ndarray
    pick_mean: np.ndarray
    pack_kind: np.ndarray
    pack_sigma: np.ndarray
    pack_mu: np.ndarray
    pack_mean: np.ndarray
    pack_cap: np.ndarray
    tr_kind: np.ndarray
    tr_sigma: np.ndarray
    tr_mu: np.ndarray
    transit_mean: np.ndarray
    parcel_cost: np.ndarray  # [2*C*W*R] twin.world.costs
    lane_co2: np.ndarray
    handling: np.ndarray
    car_cap: np.ndarray
    car_reefer: np.ndarray
    dep_first: np.ndarray
    dep_interval: np.ndarray
    spill: bool  # full departures' parcels may take other carriers with room
    lane_ok: np.ndarray  # [C, W, R] uint8: the carrier serves the lane
    dock_active: np.ndarray  # [C, W] bool
    agvs: np.ndarray
    duty: np.ndarray


def _f64(x) -> np.ndarray:  # noqa: ANN001
    return np.ascontiguousarray(x, dtype=np.float64)


def _i32(x) -> np.ndarray:  # noqa: ANN001
    return np.ascontiguousarray(x, dtype=np.int32)


def _i64(x) -> np.ndarray:  # noqa: ANN001
    return np.ascontiguousarray(x, dtype=np.int64)


def _dists(specs: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = [dist_spec(kind, cv) for kind, cv in specs]
    return _i32([x.code for x in d]), _f64([x.sigma for x in d]), _f64([x.mu for x in d])


def kernel_tables(host: Host, plan: RoutingPlan, routing_interval_h: float) -> KernelTables:
    """The :class:`KernelTables` of a host's scenario, network and routing plan."""
    from ext._kernel import build_alias

    sc, net, pol = host.scenario, host.net, host.routing
    W, R, C = net.n_warehouses, net.n_regions, len(net.carriers)
    pref = np.full((2, R, W), -1, dtype=np.int32)
    npref = np.zeros((2, R), dtype=np.int32)
    for c, per_region in enumerate(preference_lists(plan.static_score)):
        for r, p in enumerate(per_region):
            pref[c, r, : len(p)] = p
            npref[c, r] = len(p)
    d = sc.demand
    amb = np.flatnonzero(~net.sku_cold)
    cold = np.flatnonzero(net.sku_cold)
    if len(amb) == 0:
        amb = cold
    if len(cold) == 0:
        cold = amb
    amb_prob, amb_alias = build_alias(net.sku_p[amb])
    cold_prob, cold_alias = build_alias(net.sku_p[cold])
    sl = list(d.service_levels.values())
    pick = _dists([(w.pick.pick_time, w.pick.pick_time_cv) for w in sc.warehouses])
    pack = _dists([(w.pack.distribution, 1.0) for w in sc.warehouses])
    tr = _dists([(c.transit.distribution, c.transit.cv) for c in sc.carriers])
    pick_h = _f64([1.0 / w.pick.lines_per_agv_h for w in sc.warehouses])
    return KernelTables(
        W=W, R=R, C=C, mode=plan.code, allow_split=bool(plan.allow_split), static_score=_f64(plan.static_score),
        pref=pref, npref=npref, lane_carrier=_i64(plan.lane_carrier), pick_h=pick_h,
        service_carrier=_i64(plan.service_carrier if plan.service_carrier is not None else np.zeros((2, 1, W, R))),
        use_service_carrier=plan.service_carrier is not None,
        dyn_a=float(plan.queue_weight) if plan.mode == "queue" else 1.0,
        dyn_b=float(plan.queue_scale) if plan.mode == "queue" else 1.0,
        shares=_f64(plan.shares) if plan.mode == "shares" else np.zeros((R, W)),
        late_penalty_by_service=_f64(plan.late_penalty_by_service if plan.late_penalty_by_service is not None
                                     else np.zeros(len(d.service_levels))),
        warehouse_offset=_f64(plan.warehouse_offset if plan.warehouse_offset is not None else np.zeros(W)),
        co2_price=float(plan.co2_price), lines_mean=float(d.lines_per_order),
        policy=pol, policy_label=f"{pol.name!r} ({type(pol).__name__})", batch_cls=OrderBatch,
        wh_names=tuple(net.warehouses), route_interval=float(routing_interval_h),
        cold_share=float(d.cold_chain_share), lam_lines=float(d.lines_per_order - 1.0),
        amb_prob=amb_prob, amb_alias=amb_alias, amb_sku=_i64(amb),
        cold_prob=cold_prob, cold_alias=cold_alias, cold_sku=_i64(cold),
        sl_cum=_f64(np.cumsum([v.share for v in sl])), sl_promise=_f64([v.promise_h for v in sl]),
        sl_rank=_f64(service_rank(sc)),
        backorder=d.unfulfillable == "backorder", retry_h=float(d.backorder_retry_h), max_h=float(d.backorder_max_h),
        pick_kind=pick[0], pick_sigma=pick[1], pick_mu=pick[2], pick_mean=pick_h,
        pack_kind=pack[0], pack_sigma=pack[1], pack_mu=pack[2], pack_mean=_f64([w.pack.time_h for w in sc.warehouses]),
        pack_cap=_i64([w.pack.stations if w.pack.time_h > 0 else 0 for w in sc.warehouses]),
        tr_kind=tr[0], tr_sigma=tr[1], tr_mu=tr[2], transit_mean=_f64(net.transit_mean_h),
        parcel_cost=_f64(net.costs.parcel.ravel()), lane_co2=_f64(net.lane_co2_kg.ravel()),
        handling=_f64(net.costs.handling_per_line),
        car_cap=_i64([c.capacity for c in sc.carriers]), car_reefer=_i64([c.reefer_capacity for c in sc.carriers]),
        dep_first=_f64([c.first_departure_h for c in sc.carriers]),
        dep_interval=_f64([c.departure_interval_h for c in sc.carriers]),
        spill=bool(sc.policy.routing.spill), lane_ok=np.ascontiguousarray(net.serves, dtype=np.uint8),
        dock_active=np.ascontiguousarray(net.serves.any(axis=2)), agvs=_i64(host.agvs), duty=_f64(host.duty),
    )


class KernelEngine:
    """Moves orders through the flow in the Cython kernel, on the host's State arrays.

    Args:
        host: what the kernel reads of the model (:class:`twin.sim.engine.Host`).
        routing_interval_h: for routing policies without a native plan (``batch``), the orders
            arriving in each interval of this length are routed together, with one
            ``policy.route(batch, state)`` call, at its end.
    """

    name = "kernel"
    supports_decisions = False

    def __init__(self, host: Host, routing_interval_h: float = 0.25) -> None:
        from ext._kernel import Kernel

        if not routing_interval_h > 0:
            raise ValueError(f"routing_interval_h must be > 0, got {routing_interval_h!r}")
        pol = host.routing
        if getattr(pol, "net", None) is not host.net:
            raise ValueError(f"routing policy {pol.name!r} is bound to another network: bind it to this model's")
        self.host = host
        self.env = host.env
        self.routing_interval_h = float(routing_interval_h)
        _check_state(host.state)
        plan = pol.plan()
        self.tables = kernel_tables(host, plan, self.routing_interval_h)
        self.k = Kernel(seeds=host.streams.kernel_seeds(), state=host.state, tables=self.tables,
                        log_lines=host.log_lines)
        self._shares = plan.shares if plan.mode == "shares" else None
        # the fleets' breakdowns and repairs, merged in time order, run inside the kernel
        sched = host.agv_schedules
        times = np.concatenate([s[0] for s in sched]) if sched else np.empty(0)
        order = np.argsort(times, kind="stable")
        where = np.concatenate([np.full(len(s[0]), i) for i, s in enumerate(sched)]) if sched else np.empty(0)
        deltas = np.concatenate([s[1] for s in sched]) if sched else np.empty(0)
        self.k.set_agv_schedule(times[order], where[order], deltas[order])
        # the run's records in one allocation: the mean demand over the horizon, +25% for
        # weather and surges (address space only until written; more grows as needed)
        expected = host.expected_orders
        self.k.reserve(int(1.25 * expected) + 1024, int(1.25 * 1.1 * expected) + 1024)

    # ------------------------------------------------------------------ coarse hooks
    def on_state_change(self) -> None:
        self.k.on_state_change()

    def start_arrivals(self, t0: float, t1: float) -> None:
        """Generate the orders arriving in ``[t0, t1)`` at the State's region rates; a second
        call replaces the running window."""
        self.k.start_arrivals(t0, t1, self.host.state.region_rate)

    def _refresh_shares(self) -> None:
        """A ``shares`` plan may change between advances (:meth:`AllocationShares.set_shares`)."""
        shares = self.host.routing.plan().shares
        if shares is not self._shares:
            self.k.set_shares(np.ascontiguousarray(shares, dtype=np.float64))
            self._shares = shares

    def advance(self, until: float) -> None:
        """Run orders and agents to ``until``: the kernel goes to each agent event, the agent
        changes the State, the kernel goes on. Afterwards ``env.now == until``."""
        if self._shares is not None:
            self._refresh_shares()
        env, k = self.env, self.k
        while True:
            t = env.peek()
            if t >= until:
                break
            k.run_until(t)
            env.step()
        k.run_until(until)
        if env.now < until:
            env.run(until=until)

    # ------------------------------------------------------------------ measures
    @property
    def counters(self) -> Counters:
        return Counters(*self.k.counters())

    def station_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """Per warehouse: (busy pick server-hours, available pick server-hours) so far."""
        return self.k.station_areas()

    def backlog_areas(self) -> np.ndarray:
        """Per warehouse: the backlog's time integral up to now (shipment-hours)."""
        return self.k.backlog_areas()

    def backlog_peaks(self) -> tuple[np.ndarray, int]:
        """``(per warehouse, network)``: the largest backlog reached so far."""
        return self.k.backlog_peaks()

    def order_lines(self) -> dict[str, np.ndarray]:
        """Every order's lines as created (``Host.log_lines``): ``order_id``, ``sku``, ``quantity``."""
        return self.k.order_lines()

    def finish(self, end_time: float) -> dict[str, np.ndarray]:
        """The records as columns (see :mod:`twin.sim.records`), sorted by order then shipment.

        The call hands the records over: it releases the kernel's record storage, so a second
        call raises RuntimeError (holding no copy keeps a 10M-order run's memory down)."""
        col = self.k.columns()
        self.k.release_records()
        return col


def _check_state(st) -> None:  # noqa: ANN001
    """The kernel shares the State's arrays: each must have the dtype and layout it reads."""
    want = {"inventory": np.int64, "wh_open": np.bool_, "cold_ok": np.bool_, "region_open": np.bool_,
            "pick_servers": np.int64, "backlog": np.int64, "region_transit_mult": np.float64,
            "carrier_capacity_mult": np.float64, "agv_up": np.int64, "agv_disabled_frac": np.float64,
            "dock_waiting": np.int64, "clock": np.float64, "pick_priority": np.int64}
    for name, dt in want.items():
        a = getattr(st, name)
        if not isinstance(a, np.ndarray) or a.dtype != dt or not a.flags.c_contiguous or not a.flags.writeable:
            got = f"{a.dtype}, contiguous={a.flags.c_contiguous}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"State.{name} must be a writeable C-contiguous numpy array of {np.dtype(dt)} "
                            f"(the kernel shares it, never copies); got {got}")

