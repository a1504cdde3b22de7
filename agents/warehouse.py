"""Warehouses and their AGV fleets: the fleet decides how many pick servers are up."""

from __future__ import annotations

import math

import mesa
import simpy


class WarehouseAgent(mesa.Agent):
    """A warehouse: location, stock (a row of ``State.inventory``), cold storage, pick and pack."""

    def __init__(self, model: mesa.Model, index: int) -> None:
        super().__init__(model)
        self.index = index
        self.config = model.scenario.warehouses[index]
        self.name = self.config.name

    @property
    def stock_units(self) -> int:
        return int(self.model.state.inventory[self.index].sum())


class AGVFleetAgent(mesa.Agent):
    """An AGV fleet: ``agvs`` robots, each one pick server while it is up and not charging.

    Servers available = floor((up - disabled) * duty), where ``duty = battery_h /
    (battery_h + charge_h)`` (charging is staggered across the fleet), ``up`` falls at each
    breakdown (each up robot fails at rate 1/mtbf_h) and rises after an exponential repair
    (mean mttr_h), and ``disabled`` is the share an ``agv_breakdown`` disruption takes out.
    """

    def __init__(self, model: mesa.Model, index: int) -> None:
        super().__init__(model)
        self.index = index
        cfg = model.scenario.warehouses[index].pick
        self.cfg = cfg
        self.agvs = cfg.agvs
        self.up = cfg.agvs
        self.duty = 1.0 if cfg.battery_h is None else cfg.battery_h / (cfg.battery_h + cfg.charge_h)
        self.update()
        if cfg.mtbf_h is not None and cfg.agvs > 0:
            self._failures = model.env.process(self._failure_process())

    def servers(self) -> int:
        disabled = round(self.model.state.agv_disabled_frac[self.index] * self.agvs)
        return max(0, math.floor((self.up - disabled) * self.duty + 1e-9))

    def update(self) -> None:
        """Write the pick servers available now into the State."""
        self.model.state.pick_servers[self.index] = self.servers()

    def _failure_process(self):  # noqa: ANN202 - a SimPy process
        env, rng = self.model.env, self.model.rng
        while True:
            if self.up == 0:
                wait = math.inf
            else:
                wait = rng.exponential(self.cfg.mtbf_h / self.up)
            try:
                if math.isinf(wait):
                    yield env.event()  # only a repair (an interrupt) wakes us
                else:
                    yield env.timeout(wait)
            except simpy.Interrupt:
                continue  # a repair changed the rate: draw again (memoryless)
            self.up -= 1
            self.update()
            self.model.state_changed()
            env.process(self._repair(rng.exponential(self.cfg.mttr_h)))

    def _repair(self, duration: float):  # noqa: ANN202
        yield self.model.env.timeout(duration)
        self.up += 1
        self.update()
        self.model.state_changed()
        if self._failures.is_alive:
            self._failures.interrupt()
