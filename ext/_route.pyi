"""Type stub of the routing service's C loops (``ext/_route.pyx``)."""

from typing import Any

import numpy as np

__all__ = ["Arrays", "RouteKernel", "UnknownName", "json_str", "masked_scores", "round6_json"]

class UnknownName(LookupError):
    """``args``: ``(order index, field, candidate index or -1, value)``."""

def json_str(s: str) -> bytes:
    """``s`` as a JSON string, quotes included."""

def round6_json(x: float) -> bytes:
    """The JSON the kernel writes for ``x`` (numpy's ``round(x, 6)``; ``null`` if not finite)."""

def masked_scores(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[m, W]`` float64: ``-logits`` where ``mask``, else inf."""

class Arrays:
    """A prepared batch by name (numpy views of its blocks made when read, and lists)."""
    d: dict[str, Any]
    def __init__(self, blocks: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, W: int, L: int) -> None: ...
    def __getitem__(self, key: str) -> Any: ...
    def __setitem__(self, key: str, value: Any) -> None: ...
    def __contains__(self, key: str) -> bool: ...
    def keys(self) -> list[str]: ...

class RouteKernel:
    wh_index: dict[str, int]
    region_index: dict[str, int]
    levels: dict[str, float]
    W: int
    S: int
    R: int
    F: int
    max_promise_h: float
    horizon_h: float
    max_weather: float
    def __init__(self, warehouses: list[str], regions: list[str], carriers: list[str], levels: dict[str, float],
                 lane_ok: np.ndarray, cold_capable: np.ndarray, car_lane: np.ndarray, agvs: np.ndarray,
                 transit_mean_h: np.ndarray, parcel: np.ndarray, handling_per_line: np.ndarray,
                 lane_co2_kg: np.ndarray, pick_h: np.ndarray, pack_h: np.ndarray, half_gap: np.ndarray,
                 lines_mean: float, ship_rate: np.ndarray, initial_stock: np.ndarray, sku_index: Any, eps: float,
                 why_texts: list[str | None], distance_km: np.ndarray, lane_cost: np.ndarray,
                 lane_transit: np.ndarray, max_promise_h: float, horizon_h: float, max_weather: float) -> None: ...
    def prepare(self, orders: list[Any], observe: bool, now_h: float) -> Arrays: ...
    def write(self, order_ids: list[str], skus: list[list[str]], qtys: list[list[int]], S_: np.ndarray,
              blocks: tuple[np.ndarray, np.ndarray, np.ndarray], kind: list[int], reasons: list[bytes],
              fb_reasons: list[str | None], fb_json: dict[str | None, bytes], action: list[int],
              splits: dict[int, list[int] | None], dids: list[str], digests: list[str], strategies: list[str],
              policy_json: bytes) -> tuple[list[bytes], list[bytes], list[int]]: ...
