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
    from the nearest warehouses holding more than ``high_frac`` of theirs.

    What counts as coming: a receiver's need is ``target - on hand - in transit``, where *in
    transit* is only the units of this policy's own transfers to that warehouse that have not
    arrived yet (each lands ``lead_time_h`` after it was decided). Supplier reorders are not
    counted: ``State.on_order`` lumps them with transfers, and on a peak they land long after a
    transfer would (``singles_day``: 24 h against 12 h), so counting them would suppress every
    transfer while the SKU sells out. Transfers in transit are counted, so a SKU is not shipped
    twice. The policy keeps the transfers it decided (the state does not tell them apart); a
    decision at an earlier time than the last one starts a new run and forgets them.

    ``lead_time_h``: the transfers' lead time (None: the network scenario's
    ``policy.reallocation.lead_time_h``).
    """

    name = "rebalance"

    def __init__(self, low_frac: float = 0.2, high_frac: float = 0.6, lead_time_h: float | None = None) -> None:
        if not 0 <= low_frac <= high_frac:
            raise ValueError(f"need 0 <= low_frac <= high_frac, got low_frac={low_frac}, high_frac={high_frac}")
        if lead_time_h is not None and not lead_time_h >= 0:
            raise ValueError(f"lead_time_h must be >= 0, got {lead_time_h!r}")
        self.low, self.high = low_frac, high_frac
        self.lead_time_h = None if lead_time_h is None else float(lead_time_h)
        self._sent: list[tuple[float, np.ndarray]] = []  # (arrival time h, [W_to, S] units) of own transfers
        self._last_t = -np.inf

    def in_transit(self, t: float, shape: tuple[int, int]) -> np.ndarray:
        """``[W, S]`` units of this policy's transfers decided before ``t`` and not landed by ``t``."""
        self._sent = [(arr, q) for arr, q in self._sent if arr > t + 1e-9]
        out = np.zeros(shape, dtype=np.int64)
        for _, q in self._sent:
            out += q
        return out

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        if t <= self._last_t:  # a new run with the same policy object
            self._sent = []
        self._last_t = t
        init = net.initial_stock
        spare = np.maximum(state.inventory - np.ceil(self.high * init).astype(np.int64), 0)
        spare[~state.wh_open] = 0
        target = np.ceil((self.low + self.high) / 2 * init).astype(np.int64)
        coming = self.in_transit(t, init.shape)
        need = np.where(state.inventory < self.low * init, target - state.inventory - coming, 0)
        moves = transfers_from_nearest(np.maximum(need, 0), spare, net)
        if moves.any():
            lead = net.scenario.policy.reallocation.lead_time_h if self.lead_time_h is None else self.lead_time_h
            self._sent.append((float(t) + lead, moves.sum(axis=0)))
        return moves


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
        return Rebalance(cfg.low_frac, cfg.high_frac, cfg.lead_time_h)
    return NoReallocation()
