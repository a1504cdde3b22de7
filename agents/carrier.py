"""Carriers: linehaul departures on a fixed schedule from each warehouse they serve."""

from __future__ import annotations

import mesa


class CarrierAgent(mesa.Agent):
    """A carrier. Its departure capacity left now is ``capacity * State.carrier_capacity_mult``."""

    def __init__(self, model: mesa.Model, index: int) -> None:
        super().__init__(model)
        self.index = index
        self.config = model.scenario.carriers[index]
        self.name = self.config.name

    def capacity_now(self) -> tuple[int, int]:
        """``(ambient, reefer)`` parcels one departure may take now."""
        m = self.model.state.carrier_capacity_mult[self.index]
        return int(self.config.capacity * m), int(self.config.reefer_capacity * m)
