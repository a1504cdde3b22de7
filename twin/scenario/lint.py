"""Warnings about a valid scenario that cannot work as meant: the record, and the checks that
need only the schema.

A scenario can pass the schema and still be one that cannot work: demand far above what the
warehouses can pick or the carriers carry, regions no carrier reaches, a disruption after the
run has ended. :func:`twin.world.lint.lint` runs every check (those that need the network's
lanes and the demand rate live there, a layer up); this module holds the record they all
return, the list of codes, and the checks that read the scenario alone. A warning never
refuses a run; only :meth:`twin.scenario.size.RunSize.check` (a run that cannot fit in time or
memory) does.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.scenario.schema import DemandSurge, Scenario

__all__ = ["CODES", "LintWarning", "format_warning", "lint_schema"]

#: Every warning code, and what it says.
CODES: dict[str, str] = {
    "pick-capacity": "order lines far above what the AGV fleets can pick",
    "pack-capacity": "shipments far above what the pack stations can pack",
    "carrier-capacity": "parcels far above what the carriers' departures can carry",
    "reefer-capacity": "cold-chain parcels far above the reefer room from the cold-storage warehouses",
    "region-no-carrier": "regions that no carrier serves: their orders are lost",
    "warehouse-no-carrier": "warehouses that no carrier serves: nothing they pick can leave",
    "cold-no-reefer": "regions that no lane with reefer room reaches from a cold-storage warehouse",
    "stock-short": "without replenishment, the stock cannot cover the horizon's demand",
    "disruption-outside-run": "a disruption or weather event that starts after it could change anything",
}


@dataclass(frozen=True)
class LintWarning:
    """One warning: its ``code`` (a key of :data:`CODES`), the scenario ``path`` it is about
    (``disruptions[2]``, ``warehouses.*.pick.agvs``) and a ``message`` with the figures and what
    to change."""

    code: str
    path: str
    message: str

    def __post_init__(self) -> None:
        assert self.code in CODES, self.code

    def __str__(self) -> str:
        return f"{self.code}: {self.path}: {self.message}"


def format_warning(w: LintWarning) -> str:
    """The line the CLI prints: ``warning: CODE: PATH: MESSAGE``."""
    return f"warning: {w}"


def _outside(what: str, start_h: float, sc: Scenario, orders_only: bool) -> str | None:
    """Why a window starting at ``start_h`` changes nothing, or None if it may."""
    end = sc.horizon_h + sc.drain_h
    if start_h >= end:
        return (f"{what} starts at {start_h:g} h, after the run ends at {end:g} h (horizon_h {sc.horizon_h:g} + "
                f"drain_h {sc.drain_h:g}): it never takes effect; move its start_h below {end:g}")
    if orders_only and start_h >= sc.horizon_h:
        return (f"{what} starts at {start_h:g} h, when orders have stopped arriving (horizon_h {sc.horizon_h:g}): "
                f"it changes no demand; move its start_h below {sc.horizon_h:g}")
    return None


def lint_schema(sc: Scenario) -> list[LintWarning]:
    """The warnings that the scenario alone shows: disruptions and scripted weather events that
    start after the run ends (or, for a demand surge, after orders stop arriving)."""
    out: list[LintWarning] = []
    for i, d in enumerate(sc.disruptions):
        target = getattr(d, "warehouse", None) or getattr(d, "carrier", None)
        what = f"the {d.type}" + (f" of {target}" if target else "")
        why = _outside(what, d.start_h, sc, orders_only=isinstance(d, DemandSurge))
        if why:
            out.append(LintWarning("disruption-outside-run", f"disruptions[{i}]", why))
    for i, e in enumerate(sc.weather.events):
        # an event's demand multiplier needs orders; its transit multiplier and closed lanes
        # still act in the drain
        why = _outside(f"the weather event {e.name!r}", e.start_h, sc, orders_only=False)
        if why:
            out.append(LintWarning("disruption-outside-run", f"weather.events[{i}]", why))
    return out
