"""The routing service for an OMS: HTTP (:mod:`twin.serve.app`), Kafka (:mod:`twin.serve.bus`),
the audit trail (:mod:`twin.serve.audit`), the feasibility layer, fallback and breaker
(:mod:`twin.serve.router`) and the request/response schema (:mod:`twin.serve.schema`).

Imports only :mod:`twin.policies` and :mod:`twin.world` from the twin (and its own
dependencies: the ``serve`` extra); none of torch, gymnasium, SB3, simpy, mesa, pandas or
matplotlib.
"""

from __future__ import annotations

__all__ = ["Service", "create_app", "serve", "Router"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: FastAPI loads only when the app is built
    if name in ("Service", "create_app", "serve"):
        from twin.serve import app

        return getattr(app, name)
    if name == "Router":
        from twin.serve.router import Router

        return Router
    raise AttributeError(f"module 'twin.serve' has no attribute {name!r}")
