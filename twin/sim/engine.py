"""The engine seam: what an engine must offer (:class:`Engine`), what it may read of the model
that runs it (:class:`Host`), and the registry of engines by string entry point.

Engines are registered as Gymnasium registers environments: a name and an entry point
``"module:Class"``, imported only when the engine is made. The model, the CLI and the RL code
ask the registry (:func:`make_engine`, :func:`engine_names`); none names a concrete class.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import simpy

    from twin.sim.records import Counters
    from twin.policies.base import RoutingPolicy
    from twin.scenario.schema import Scenario
    from twin.sim.rng import RunStreams
    from twin.world.network import Network
    from twin.world.state import State

__all__ = ["ArrivalTable", "Decision", "Engine", "EngineSpec", "Host", "engine_names", "make_engine", "register_engine",
           "unregister_engine", "engine_spec", "ENGINES"]


@dataclass(frozen=True)
class Host:
    """What an engine may read of the model that runs it, and nothing more.

    Attributes:
        scenario: the validated scenario.
        net: its network (lanes, costs, SKUs).
        state: the one mutable State (agents write it at coarse events, engines per order).
        env: the SimPy environment the agents' processes run on (the engine's clock).
        routing: the bound routing policy.
        streams: the run's random streams, one per source (:class:`twin.sim.rng.RunStreams`):
            an engine draws order arrivals and contents from ``demand`` only, pick, pack and
            transit times from their own, so policies and what-ifs see the same orders.
        log_lines: keep every order's lines (SKU, quantity) for ``order_lines()``.
        agv_schedules: per warehouse, the fleet's breakdowns and repairs ``(times, deltas)``.
        agvs: per warehouse, the fleet size; ``duty``: the share of up robots not charging.
        agv_players: per warehouse, a SimPy process function that plays that fleet's
            schedule on ``env`` (for engines that play it with processes).
        carrier_capacity_now: ``c -> (ambient, reefer)`` parcels one departure of carrier
            ``c`` may take now.
        expected_orders: the orders the horizon expects before weather and surges (to size
            record storage).
        arrivals: orders to play instead of drawing them (:class:`ArrivalTable`; engines with
            ``supports_arrivals``), or None.
    """

    scenario: Scenario
    net: Network
    state: State
    env: simpy.Environment
    routing: RoutingPolicy
    streams: RunStreams
    agv_schedules: tuple[tuple[np.ndarray, np.ndarray], ...]
    agvs: np.ndarray
    duty: np.ndarray
    agv_players: tuple[Callable[[], Generator], ...] = field(repr=False)
    carrier_capacity_now: Callable[[int], tuple[int, int]] = field(repr=False)
    expected_orders: float = 0.0
    log_lines: bool = False
    arrivals: ArrivalTable | None = None


@dataclass(frozen=True)
class ArrivalTable:
    """Orders given instead of drawn (a replayed order history): order ``i`` arrives at
    ``created_h[i]`` (hours from the start, sorted) in ``region[i]`` with the cold-chain flag
    ``cold[i]``, service level ``service_level[i]`` (an index into the scenario's) and the lines
    ``sku[line_start[i]:line_start[i + 1]]`` (distinct SKUs) with units ``qty[...]``. The engine
    numbers the orders 0, 1, ... in this order; the demand stream draws nothing."""

    created_h: np.ndarray
    region: np.ndarray
    cold: np.ndarray
    service_level: np.ndarray
    line_start: np.ndarray
    sku: np.ndarray
    qty: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.created_h)
        for name in ("region", "cold", "service_level"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"arrivals.{name}: {len(getattr(self, name))} entries for {n} orders")
        ls = np.asarray(self.line_start)
        if len(ls) != n + 1 or ls[0] != 0 or ls[-1] != len(self.sku) or len(self.qty) != len(self.sku):
            raise ValueError(f"arrivals.line_start must run from 0 to the {len(self.sku)} lines in {n + 1} entries")
        if (np.diff(ls) < 1).any():
            raise ValueError(f"arrivals: order {int(np.argmax(np.diff(ls) < 1))} has no lines")
        t = np.asarray(self.created_h, dtype=float)
        if n and (not np.isfinite(t).all() or t[0] < 0 or (np.diff(t) < 0).any()):
            raise ValueError("arrivals.created_h must be finite hours >= 0, sorted")
        if len(self.qty) and np.asarray(self.qty).min() < 1:
            raise ValueError(f"arrivals.qty must be >= 1, got {int(np.asarray(self.qty).min())}")

    def __len__(self) -> int:
        return len(self.created_h)


@dataclass(frozen=True)
class Decision:
    """An order waiting for a routing decision (engines with ``supports_decisions``).

    Attributes:
        order_id, region, cold, service_level: the order.
        created_at, promised_at: hours from the start.
        sku, qty: its lines (distinct SKUs, units of each).
    """

    order_id: int
    region: int
    cold: bool
    service_level: int
    created_at: float
    promised_at: float
    sku: tuple[int, ...]
    qty: tuple[int, ...]


@runtime_checkable
class Engine(Protocol):
    """What the model asks of an engine. ``counters`` are the running counts (they feed the
    time series and the RL reward; tests prove they equal the records)."""

    name: str
    #: whether :meth:`next_decision` / ``decide`` are offered (an outside decider routes each order)
    supports_decisions: bool

    def start_arrivals(self, t0: float, t1: float) -> None:
        """Generate the orders arriving in ``[t0, t1)`` at the State's region rates (read now).
        A second call replaces the window still running (the model restarts a tick's arrivals
        from the moment a surge or a weather event changes the rates)."""

    def advance(self, until: float) -> None:
        """Move orders and the agents' processes to ``until``; afterwards ``env.now == until``."""

    def on_state_change(self) -> None:
        """The State changed at a coarse event (servers, outages): read it again."""

    @property
    def counters(self) -> Counters: ...

    def station_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """Per warehouse: (busy pick server-hours, available pick server-hours) so far."""

    def backlog_areas(self) -> np.ndarray:
        """Per warehouse: the backlog's exact time integral up to now (shipment-hours)."""

    def backlog_peaks(self) -> tuple[np.ndarray, int]:
        """``(per warehouse, network)``: the largest backlog (shipments routed, not yet shipped)
        reached so far: exact, kept at every change (a test checks it against the records)."""

    def order_lines(self) -> dict[str, np.ndarray]:
        """Every order's lines as created (``order_id``, ``sku``, ``quantity``); only when the
        host asked for them (``Host.log_lines``)."""

    def finish(self, end_time: float) -> dict[str, np.ndarray]:
        """The records as integer-coded columns (:mod:`twin.sim.records`); called once."""


@dataclass(frozen=True)
class EngineSpec:
    """A registered engine: its name, entry point and default keyword arguments."""

    name: str
    entry_point: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> type:
        mod, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(mod), attr)


_REGISTRY: dict[str, EngineSpec] = {}


def register_engine(name: str, entry_point: str, description: str = "", **kwargs: Any) -> None:
    """Register an engine under ``name``: ``entry_point`` is ``"package.module:Class"``, a class
    taking ``(host, **kwargs)``. Registering a name again replaces it."""
    if ":" not in entry_point:
        raise ValueError(f"entry_point must be 'module:Class', got {entry_point!r}")
    _REGISTRY[name] = EngineSpec(name, entry_point, dict(kwargs), description)


def unregister_engine(name: str) -> None:
    """Remove a registered engine (a ValueError naming the registered ones if unknown)."""
    engine_spec(name)
    del _REGISTRY[name]


def engine_names() -> tuple[str, ...]:
    """The registered engines, in registration order."""
    return tuple(_REGISTRY)


def engine_spec(name: str) -> EngineSpec:
    """The registry entry of ``name``; a ValueError naming the registered engines otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"engine must be one of {', '.join(_REGISTRY)}; got {name!r}") from None


def make_engine(name: str, host: Host, **kwargs: Any) -> Engine:
    """Build the engine ``name`` on ``host`` (keyword arguments override the registered ones)."""
    spec = engine_spec(name)
    return spec.load()(host, **{**spec.kwargs, **kwargs})


register_engine("kernel", "twin.sim.kernel:KernelEngine", "the Cython event kernel, fast")
register_engine("simpy", "twin.sim.reference:SimPyEngine", "the readable SimPy reference")

#: The built-in engines (``engine_names()`` also lists engines registered later).
ENGINES: tuple[str, ...] = engine_names()
