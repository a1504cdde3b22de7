"""Reallocation policies: every few hours, transfers of stock between warehouses."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from twin.scenario.schema import ReallocationConfig
from twin.world.network import Network
from twin.world.state import State

__all__ = ["ReallocationPolicy", "NoReallocation", "Rebalance", "transfers_from_nearest", "make_reallocation_policy"]


class ReallocationPolicy(ABC):
    """Every few hours, decides transfers of stock between warehouses."""

    name = "reallocation"

    @abstractmethod
    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        """``[W_from, W_to, S]`` units to move now (they arrive after the lead time)."""


class NoReallocation(ReallocationPolicy):
    name = "none"

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        return np.zeros((net.n_warehouses, net.n_warehouses, net.n_skus), dtype=np.int64)


class Rebalance(ReallocationPolicy):
    """Top up SKUs that fell below ``low_frac`` of their initial stock to the middle of the band,
    from the nearest warehouses holding more than ``high_frac`` of theirs."""

    name = "rebalance"

    def __init__(self, low_frac: float = 0.2, high_frac: float = 0.6) -> None:
        if not 0 <= low_frac <= high_frac:
            raise ValueError(f"need 0 <= low_frac <= high_frac, got low_frac={low_frac}, high_frac={high_frac}")
        self.low, self.high = low_frac, high_frac

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        init = net.initial_stock
        spare = np.maximum(state.inventory - np.ceil(self.high * init).astype(np.int64), 0)
        spare[~state.wh_open] = 0
        target = np.ceil((self.low + self.high) / 2 * init).astype(np.int64)
        need = np.where(state.inventory < self.low * init, target - state.inventory - state.on_order, 0)
        return transfers_from_nearest(np.maximum(need, 0), spare, net)


def transfers_from_nearest(need: np.ndarray, spare: np.ndarray, net: Network,
                           order: np.ndarray | None = None) -> np.ndarray:
    """``[W_from, W_to, S]`` transfers that cover each warehouse's ``need[w, s]`` from the spare
    units ``spare[w, s]`` of the nearest warehouses first (road distance).

    Receivers are served in ``order`` (default: by index); ``need`` and ``spare`` are consumed.
    Shared by the reallocation policies (the rule-based one and RL's target-cover action).
    """
    W = need.shape[0]
    moves = np.zeros((W, W, need.shape[1]), dtype=np.int64)
    for to in (range(W) if order is None else order):
        if not need[to].any():
            continue
        for frm in np.argsort(net.wh_distance_km[to], kind="stable"):
            if frm == to:
                continue
            q = np.minimum(need[to], spare[frm])
            moves[frm, to] = q
            need[to] -= q
            spare[frm] -= q
    return moves


def make_reallocation_policy(cfg: ReallocationConfig) -> ReallocationPolicy:
    if cfg.name == "rebalance":
        return Rebalance(cfg.low_frac, cfg.high_frac)
    return NoReallocation()
