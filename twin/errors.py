"""Exceptions of the twin: one base class, and a scenario error that names its path."""

from __future__ import annotations


class TwinError(Exception):
    """Base class of every error the twin raises on purpose."""


class ScenarioError(TwinError, ValueError):
    """A scenario file or override is invalid.

    Each problem is a line ``path: message`` where ``path`` points into the file
    (``warehouses[2].pick.agvs``) so the user can find and fix it.
    """

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"invalid scenario {source}" if source else "invalid scenario"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))
