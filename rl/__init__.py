"""Reinforcement learning on the twin: Gymnasium environments (registered here), baselines,
SB3 training and evaluation (see issue 4).

Importing this package registers the environments by string entry point; it imports neither
the environment module nor torch / stable-baselines3.
"""

from __future__ import annotations

import gymnasium

__all__ = ["ENV_IDS"]

#: The registered environment ids.
ENV_IDS = ("twin/Routing-v0", "twin/OrderRouting-v0", "twin/Reallocation-v0", "twin/Routing-v1",
           "twin/OrderRouting-v1", "twin/Reallocation-v1")

_MODULES = ("routing", "order_routing", "reallocation", "routing_v1", "order_routing_v1", "reallocation_v1")
_CLASSES = ("RoutingEnv", "OrderRoutingEnv", "ReallocationEnv", "RoutingV1Env", "OrderRoutingV1Env", "ReallocationV1Env")
for _id, _mod, _cls in zip(ENV_IDS, _MODULES, _CLASSES, strict=True):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=f"rl.envs.{_mod}:{_cls}", disable_env_checker=False)
