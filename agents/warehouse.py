"""Warehouses and their AGV fleets: the fleet decides how many pick servers are up."""

from __future__ import annotations


import mesa


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
        if cfg.mtbf_h is not None:
            for _ in range(cfg.agvs):
                model.env.process(self._robot())

    def servers(self) -> int:
        disabled = round(float(self.model.state.agv_disabled_frac[self.index]) * self.agvs)
        return max(0, round((self.up - disabled) * self.duty))

    def update(self) -> bool:
        """Write the pick servers available now into the State; True if the number changed."""
        n = self.servers()
        servers = self.model.state.pick_servers
        changed = servers[self.index] != n
        servers[self.index] = n
        return bool(changed)

    def _robot(self):  # noqa: ANN202 - a SimPy process
        """One robot: up for an exponential time (mean mtbf_h), then down for an exponential
        repair (mean mttr_h), again and again."""
        env, rng, cfg = self.model.env, self.model.rng, self.cfg
        while True:
            yield env.timeout(rng.exponential(cfg.mtbf_h))
            self._change(-1)
            yield env.timeout(rng.exponential(cfg.mttr_h))
            self._change(+1)

    def _change(self, delta: int) -> None:
        self.up += delta
        if self.update():
            self.model.state_changed()
