"""The built-in scenario library: YAML files beside this module, and the region presets."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["builtin_path", "builtin_names", "describe_builtins", "expand_regions", "china_provinces"]

_HERE = Path(__file__).resolve().parent


def builtin_names() -> list[str]:
    """Names of the built-in scenarios, sorted."""
    return sorted(p.stem for p in _HERE.glob("*.yaml"))


def builtin_path(name: str) -> Path | None:
    """The file of built-in scenario ``name``, or None if there is none."""
    p = _HERE / f"{name}.yaml"
    return p if p.is_file() else None


def describe_builtins() -> list[tuple[str, str]]:
    """``(name, one-line description)`` for each built-in scenario."""
    import yaml

    out = []
    for name in builtin_names():
        with open(_HERE / f"{name}.yaml", encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        desc = str(doc.get("description", "")).strip().splitlines()
        out.append((name, desc[0] if desc else ""))
    return out


@lru_cache(maxsize=1)
def china_provinces() -> tuple[tuple[str, float, float, float], ...]:
    """China's 31 province-level regions: ``(name, lat, lon, population_m_2020)``.

    Capital coordinates and the 2020 census population (copied from the project's
    reference data into ``scenarios/china_regions.csv``).
    """
    text = resources.files(__package__).joinpath("china_regions.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return tuple((r["region"], float(r["lat"]), float(r["lon"]), float(r["population_m_2020"])) for r in rows)


def expand_regions(regions):  # noqa: ANN001 - schema types imported lazily to avoid a cycle
    """Turn a ``RegionPreset`` into its list of ``Region``; a list passes through."""
    from twin.scenario.schema import Region, RegionPreset

    if not isinstance(regions, RegionPreset):
        return list(regions)
    table = china_provinces()
    names = [r[0] for r in table]
    if regions.include is not None:
        unknown = [n for n in regions.include if n not in names]
        if unknown:
            raise ValueError(f"regions.include: unknown region(s) {unknown}; allowed: {', '.join(names)}")
        table = tuple(r for r in table if r[0] in regions.include)
    return [Region(name=n, lat=lat, lon=lon, weight=pop) for n, lat, lon, pop in table]
