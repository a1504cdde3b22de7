"""Type stub of the routing service's C loops (``ext/_route.pyx``)."""

from typing import Any

import numpy as np

__all__ = ["RouteKernel", "UnknownName", "json_str", "round6_json"]

class UnknownName(LookupError):
    """``args``: ``(order index, field, candidate index or -1, value)``."""

def json_str(s: str) -> bytes:
    """``s`` as a JSON string, quotes included."""

def round6_json(x: float) -> bytes:
    """The JSON the kernel writes for ``x`` (numpy's ``round(x, 6)``; ``null`` if not finite)."""

class RouteKernel:
    wh_index: dict[str, int]
    region_index: dict[str, int]
    levels: dict[str, float]
    W: int
    S: int
    def __init__(self, warehouses: list[str], regions: list[str], carriers: list[str], levels: dict[str, float],
                 lane_ok: np.ndarray, cold_capable: np.ndarray, car_lane: np.ndarray, agvs: np.ndarray,
                 transit_mean_h: np.ndarray, parcel: np.ndarray, handling_per_line: np.ndarray,
                 lane_co2_kg: np.ndarray, pick_h: np.ndarray, pack_h: np.ndarray, half_gap: np.ndarray,
                 lines_mean: float, ship_rate: np.ndarray, initial_stock: np.ndarray, sku_index: Any, eps: float,
                 why_texts: list[str | None]) -> None: ...
    def prepare(self, orders: list[Any], observe: bool, now_h: float) -> dict[str, Any]: ...
    def write(self, order_ids: list[str], skus: list[list[str]], qtys: list[list[int]], S_: np.ndarray,
              blocks: tuple[np.ndarray, np.ndarray, np.ndarray], kind: list[int], reasons: list[bytes],
              fb_reasons: list[bytes], action: list[int], splits: dict[int, list[int] | None], dids: list[bytes],
              digests: list[bytes], strategies: list[bytes], policy_json: bytes) -> list[tuple[bytes, bytes, int]]: ...
