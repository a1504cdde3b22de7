"""What an OMS sends to ``POST /v1/route`` and gets back (pydantic models; FastAPI's OpenAPI
schema is generated from them).

The shape maps onto the routing interfaces of real OMSs (``shared/reference/anchors.md`` 1.7):
an order's destination, lines and service level; the candidate warehouses with their available
stock and remaining capacity (Salesforce ``locationAvailableInventory``, HotWax's facility order
limit); an optional strategy. The answer ranks the candidates with scores and estimates (Shopify
rankings), assigns the lines (Sterling assignments), names the carrier, the reason (HotWax
``finalReason``), the policy and whether it fell back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Line", "Destination", "Candidate", "Weights", "Order", "RouteRequest", "Ranking", "Assignment",
           "PolicyRef", "Decision", "RouteResponse", "SwapRequest", "SwapResponse", "STRATEGIES", "REASONS"]

STRATEGIES = ("cost", "speed", "carbon", "weighted")
#: Why a decision is what it is (``Decision.reason``).
REASONS = ("policy", "strategy", "heuristic", "split", "unfillable", "fallback")
#: Why the service fell back to the heuristic (``Decision.fallback_reason``).
FALLBACK_REASONS = ("model_error", "timeout", "outside_range", "dependency_down", "breaker_open")

_ID = Field(min_length=1, max_length=128)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Line(_Model):
    sku: str = Field(min_length=1, max_length=64, description="the SKU; the network's are sku-<index>")
    qty: int = Field(ge=1, le=10_000, description="units")
    cold_chain: bool = Field(False, description="the line needs the cold chain")


class Destination(_Model):
    region: str = Field(min_length=1, max_length=64, description="the network's region name")
    transit_multiplier: float = Field(1.0, ge=1.0, le=10.0,
                                      description="the weather's transit-time multiplier into the region now")


#: an SKU's name in ``Candidate.available`` and its units there
SkuName = Annotated[str, MinLen(1), MaxLen(64)]
Units = Annotated[int, Ge(0), Le(100_000_000)]


class Candidate(_Model):
    warehouse_id: str = Field(min_length=1, max_length=64)
    available: dict[SkuName, Units] = Field(default_factory=dict, description="units available to promise per SKU",
                                            max_length=200)
    remaining_capacity_orders: int = Field(ge=0, le=10_000_000,
                                           description="orders the site can still take today (0: at its limit)")
    open: bool = True
    cold_ok: bool = Field(True, description="cold storage working (the network says which sites have it)")
    backlog_orders: int = Field(0, ge=0, le=10_000_000, description="shipments waiting to be picked")
    agvs_up_ratio: float = Field(1.0, ge=0.0, le=1.0, description="share of the AGV fleet picking now")



class Weights(_Model):
    cost: float = Field(1.0, ge=0.0, le=1000.0)
    speed: float = Field(1.0, ge=0.0, le=1000.0)
    carbon: float = Field(1.0, ge=0.0, le=1000.0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> Weights:
        if self.cost + self.speed + self.carbon <= 0:
            raise ValueError("weights: at least one of cost, speed, carbon must be > 0")
        return self


class Order(_Model):
    order_id: str = _ID
    created_at: datetime | None = Field(None, description="when the order was placed (default: now)")
    destination: Destination
    lines: list[Line] = Field(min_length=1, max_length=100)
    service_level: str = Field(min_length=1, max_length=32, description="one of the network's service levels")
    promise_h: float | None = Field(None, gt=0.0, le=24.0 * 60,
                                    description="hours promised (default: the service level's)")
    candidates: list[Candidate] = Field(min_length=1, max_length=64)
    strategy: Literal["cost", "speed", "carbon", "weighted"] | None = Field(
        None, description="rank by this instead of the policy (weighted: by weights)")
    weights: Weights | None = None
    max_splits: int = Field(3, ge=0, le=64, description="shipments beyond the first (0: ship whole or not at all)")

    @model_validator(mode="after")
    def _unique(self) -> Order:
        seen = set()
        for i, c in enumerate(self.candidates):
            if c.warehouse_id in seen:
                raise ValueError(f"candidates[{i}].warehouse_id: {c.warehouse_id!r} is listed twice")
            seen.add(c.warehouse_id)
        return self


class RouteRequest(_Model):
    """One order (``order``) or a batch (``orders``), not both."""

    order: Order | None = None
    orders: list[Order] | None = Field(None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one(self) -> RouteRequest:
        if (self.order is None) == (self.orders is None):
            raise ValueError("give exactly one of order (one order) or orders (a batch of 1..1000)")
        return self


class Ranking(_Model):
    warehouse_id: str
    rank: int = Field(description="1 = best; feasible candidates first")
    score: float | None = Field(description="lower is better; null: no lane to the destination")
    feasible: bool
    est_cost_cny: float | None
    est_delivery_h: float | None
    est_co2_kg: float | None
    why_not: str | None = Field(None, description="why an infeasible candidate is excluded")


class Assignment(_Model):
    line: int
    sku: str
    qty: int
    warehouse_id: str
    carrier: str


class PolicyRef(_Model):
    name: str
    version: str
    sha256: str


class Decision(_Model):
    decision_id: str
    order_id: str
    warehouse_id: str | None = Field(description="the warehouse that ships the order whole; null if split or unfillable")
    carrier: str | None
    rankings: list[Ranking]
    assignments: list[Assignment]
    reason: str = Field(description="policy | strategy | heuristic | split | unfillable | fallback")
    fallback: bool
    fallback_reason: str | None = None
    policy: PolicyRef


class RouteResponse(_Model):
    decisions: list[Decision]


class SwapRequest(_Model):
    """``POST /v1/admin/swap``: serve another package (and back) without dropping a request."""

    package: str = Field(min_length=1, max_length=4096, description="the package directory on the server's disk")
    reason: str | None = Field(None, max_length=500, description="why (recorded in the audit log)")


class SwapResponse(_Model):
    previous: PolicyRef
    current: PolicyRef
    swapped_at: str = Field(description="ISO 8601, UTC")
