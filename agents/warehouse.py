"""Warehouses and their AGV fleets: the fleet decides how many pick servers are up."""

from __future__ import annotations

import mesa
import numpy as np


class WarehouseAgent(mesa.Agent):
    """A warehouse: location, stock (a row of ``State.inventory``), cold storage, pick and pack."""

    def __init__(self, model: mesa.Model, index: int) -> None:
        super().__init__(model)
        self.index = index
        self.config = model.scenario.warehouses[index]
        self.name = self.config.name


class AGVFleetAgent(mesa.Agent):
    """An AGV fleet: ``agvs`` robots, each one pick server while it is up and not charging.

    Servers available = round((up - disabled) * duty), where ``duty = battery_h /
    (battery_h + charge_h)`` (charging is staggered across the fleet), ``up`` (``State.agv_up``)
    falls at each breakdown (each up robot fails at rate 1/mtbf_h) and rises after an
    exponential repair (mean mttr_h), and ``disabled`` is the share an ``agv_breakdown``
    disruption takes out.

    Breakdowns and repairs depend on nothing else in the world, so the fleet draws every
    robot's up and down times for the whole run when it is built (:attr:`schedule`). The
    engine plays the schedule: the ``simpy`` engine with one process per fleet
    (:meth:`play`), the kernel inside its event loop (no Python call per breakdown), both
    with :meth:`servers`' formula.
    """

    def __init__(self, model: mesa.Model, index: int) -> None:
        super().__init__(model)
        self.index = index
        cfg = model.scenario.warehouses[index].pick
        self.cfg = cfg
        self.agvs = cfg.agvs
        self.duty = 1.0 if cfg.battery_h is None else cfg.battery_h / (cfg.battery_h + cfg.charge_h)
        #: ``(times, deltas)``: when a robot breaks down (-1) or is repaired (+1), in time order
        self.schedule = self.draw_schedule(model.streams.sub("agv", index), model.end_time)
        self.update()

    def draw_schedule(self, rng: np.random.Generator, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Every robot alternates an exponential time up (mean mtbf_h) and an exponential repair
        (mean mttr_h) from time 0; the breakdowns (-1) and repairs (+1) before ``end``."""
        cfg = self.cfg
        if cfg.mtbf_h is None or self.agvs == 0:
            return np.empty(0), np.empty(0, dtype=np.int64)
        k = 2 * (int(np.ceil(end / (cfg.mtbf_h + cfg.mttr_h))) + 2)  # even: up, down, up, down, ...
        means = np.tile([cfg.mtbf_h, cfg.mttr_h], k // 2)
        clock = np.cumsum(rng.exponential(means, (self.agvs, k)), axis=1)
        while clock[:, -1].min() < end:  # (rare) until every robot has passed the end
            more = clock[:, -1:] + np.cumsum(rng.exponential(means, (self.agvs, k)), axis=1)
            clock = np.concatenate([clock, more], axis=1)
        flat = np.flatnonzero(clock < end)  # row-major; rows have even length, so the column's
        t = clock.ravel()[flat]  # parity is the index's: even = a breakdown, odd = a repair
        order = np.argsort(t, kind="stable")
        return t[order], (flat[order] % 2) * 2 - 1

    def servers(self) -> int:
        st = self.model.state
        disabled = round(float(st.agv_disabled_frac[self.index]) * self.agvs)
        return max(0, round((int(st.agv_up[self.index]) - disabled) * self.duty))

    def update(self) -> bool:
        """Write the pick servers available now into the State; True if the number changed."""
        n = self.servers()
        servers = self.model.state.pick_servers
        changed = servers[self.index] != n
        servers[self.index] = n
        return bool(changed)

    def play(self):  # noqa: ANN201 - a SimPy process
        """Apply the schedule on the model's SimPy environment (the ``simpy`` engine)."""
        env, st = self.model.env, self.model.state
        for t, delta in zip(self.schedule[0].tolist(), self.schedule[1].tolist(), strict=True):
            yield env.timeout(t - env.now)
            st.agv_up[self.index] += delta
            if self.update():
                self.model.state_changed()
