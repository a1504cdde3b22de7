"""Gymnasium environments on the twin, one per module: routing per decision epoch
(:mod:`rl.envs.routing`; v1 on the binding peak: :mod:`rl.envs.routing_v1`), routing per order (:mod:`rl.envs.order_routing`) and inventory
reallocation between warehouses (:mod:`rl.envs.reallocation`).

Registered in :mod:`rl` by string entry point. These modules import numpy, gymnasium and the
twin only (never the trainer or torch).
"""

from __future__ import annotations

from rl.envs.base import REALLOCATION_HEURISTICS, ROUTING_HEURISTICS, TwinEnv
from rl.envs.order_routing import OrderRoutingEnv
from rl.envs.reallocation import ReallocationEnv, TargetCover
from rl.envs.routing import EpochShares, RoutingEnv
from rl.envs.routing_v1 import RoutingV1Env

__all__ = ["RoutingEnv", "RoutingV1Env", "OrderRoutingEnv", "ReallocationEnv", "EpochShares", "TargetCover", "TwinEnv",
           "ROUTING_HEURISTICS", "REALLOCATION_HEURISTICS"]
