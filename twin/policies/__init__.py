"""Policies: one interface for heuristic, learned and exported routing and reallocation policies.

Light by design: importing it loads numpy, pydantic and networkx, but none of simpy, mesa,
pandas, matplotlib or torch, so a routing service can import it alone.
"""

from __future__ import annotations

from twin.policies.base import INF, OrderBatch, RoutingPolicy, assign_lines, assign_order
from twin.policies.heuristics import (
    ROUTING_POLICIES,
    Cheapest,
    Fastest,
    Greenest,
    NearestWithStock,
    WeightedScore,
    make_routing_policy,
)
from twin.policies.reallocation import (
    NoReallocation,
    ReallocationPolicy,
    Rebalance,
    make_reallocation_policy,
    transfers_from_nearest,
)
from twin.policies.promise import PromiseAware
from twin.policies.shares import AllocationShares

__all__ = [
    "AllocationShares", "OrderBatch", "RoutingPolicy", "NearestWithStock", "Cheapest", "Fastest", "Greenest",
    "WeightedScore", "PromiseAware", "ReallocationPolicy", "NoReallocation", "Rebalance", "make_routing_policy",
    "make_reallocation_policy", "assign_lines", "assign_order", "transfers_from_nearest", "ROUTING_POLICIES", "INF",
]
