"""``twin serve``: the routing service an OMS calls (FastAPI; its OpenAPI schema at
``/openapi.json``).

- ``POST /v1/route``: one order (``{"order": {...}}``) or a batch (``{"orders": [...]}``) ->
  ``{"decisions": [...]}`` (:mod:`twin.serve.schema`); the service's time per request is in
  the ``Server-Timing`` header (``route;dur=<ms>``), so that a decision's body depends on the
  request and the policy only. Bad input is a 422 naming the field, never a 5xx.
- ``GET /v2/health/live``, ``GET /v2/health/ready`` (KServe v2: ready after warm-up),
  ``GET /v2/models/{name}/ready``.
- ``GET /metrics``: Prometheus, base units: ``twin_route_decisions_total{strategy,outcome}``,
  ``twin_route_latency_seconds`` (histogram), ``twin_fallback_total{reason}``,
  ``twin_policy_info{role,name,version,sha256}``, ``twin_shadow_decisions_total{agree}``.
- ``POST /v1/admin/swap`` (``--admin``): ``{"package": DIR, "reason": ...}`` loads and warms
  up another package in a worker thread while the champion goes on answering, then makes it
  the champion from the next request on (no request is dropped or fails); the swap is a
  ``com.fulfillmenttwin.routing.swap.v1`` CloudEvent in the audit log (before and after, why,
  when) and ``twin_policy_swaps_total`` counts it. A directory that is not a verified package
  of the champion's network is a 422 naming ``package``. Swapping back is another swap.
- Shadow mode (``--shadow DIR``): the champion answers; the challenger decides the same orders
  after the response is sent, and its decisions go to the audit log as shadow events.
- Audit: every decision is a CloudEvent line in the audit log (:mod:`twin.serve.audit`),
  written before the response; the decisions counter is incremented under the same lock, so
  the two agree exactly.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from twin.serve.audit import AuditLog, decision_events, swap_event
from twin.serve.router import Decided, Faults, RequestError, Router
from twin.serve.schema import RouteRequest, RouteResponse, SwapRequest, SwapResponse
from twin.serve.wire import InvalidRequest, as_order, decode_request_raw

__all__ = ["MAX_BODY_BYTES", "RouteFastPath", "Service", "create_app", "route_body", "serve"]

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Service:
    """The champion (and optional challenger) routers, the audit log and the metrics."""

    def __init__(self, package: str | Path, audit: str | Path = "audit.jsonl", shadow: str | Path | None = None,
                 timeout_ms: float = 50.0, warmup: int = 20, admin: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        #: whether ``POST /v1/admin/swap`` is offered (``twin serve --admin``)
        self.admin = bool(admin)
        self.timeout_s = float(timeout_ms) / 1000.0
        self.faults = Faults()
        self.router = Router(package, self.timeout_s, faults=self.faults)
        self.shadow = Router(shadow, self.timeout_s) if shadow is not None else None
        if self.shadow is not None and self.shadow.net.warehouses != self.router.net.warehouses:
            raise ValueError("--shadow: the challenger routes on another network than the champion")
        self.audit = AuditLog(audit)
        self.source = f"/twin/serve/{self.router.package.name}"
        self.registry = r = CollectorRegistry()
        self.decisions = Counter("twin_route_decisions", "routing decisions answered", ["strategy", "outcome"],
                                 registry=r)
        self.latency = Histogram("twin_route_latency_seconds", "time to answer a route request",
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.fallbacks = Counter("twin_fallback", "decisions answered by the fallback heuristic", ["reason"],
                                 registry=r)
        self.policy_info = Gauge("twin_policy_info", "the policies being served", ["role", "name", "version", "sha256"],
                                 registry=r)
        self.swaps = Counter("twin_policy_swaps", "champion swaps (POST /v1/admin/swap)", registry=r)
        self.coalesced = Histogram("twin_route_coalesced_requests", "requests decided together in one batch",
                                   buckets=(2, 4, 8, 16, 32, 64), registry=r)
        self.shadow_decisions = Counter("twin_shadow_decisions", "challenger decisions scored in shadow mode",
                                        ["agree"], registry=r)
        self._set_info()
        #: the decisions counter's children by (strategy, outcome) (``labels()`` is a locked lookup)
        self._children: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        self._pending: list[tuple[list[Any], bool, Any]] = []
        self._draining = False
        self.n_decisions = 0
        self.ready = False
        self.warmup = int(warmup)

    def _set_info(self) -> None:
        self.policy_info.clear()
        for role, rt in (("champion", self.router), ("shadow", self.shadow)):
            if rt is not None:
                ref = rt.policy_ref
                self.policy_info.labels(role, ref["name"], ref["version"], ref["sha256"]).set(1)

    # ------------------------------------------------------------------ lifecycle
    def warm_up(self) -> None:
        """Decide a synthetic order ``warmup`` times (first onnxruntime calls are slow), unaudited."""
        import gc

        for rt in (self.router, self.shadow):
            self._warm(rt)
        gc.collect()
        gc.freeze()  # what start-up made lives on: the collector no longer scans it (shorter pauses)
        self.ready = True

    def _warm(self, rt: Router | None) -> None:
        if rt is None:
            return
        net = rt.net
        o = as_order({
            "order_id": "warm-up", "destination": {"region": net.regions[0]},
            "lines": [{"sku": "sku-0", "qty": 1}], "service_level": next(iter(rt.levels)),
            "candidates": [{"warehouse_id": w, "available": {"sku-0": 10}, "remaining_capacity_orders": 10}
                           for w in net.warehouses]})
        for _ in range(self.warmup):
            rt.decide_raw([o])

    def load(self, package: str | Path) -> Router:
        """A warmed-up router for another package on the champion's network (slow: the caller
        runs it off the event loop while the champion goes on answering)."""
        new = Router(package, self.timeout_s, faults=self.faults)
        cur = self.router
        if new.net.warehouses != cur.net.warehouses or new.net.regions != cur.net.regions:
            raise ValueError(f"package {new.package.name!r} routes on {new.net.scenario.name!r} "
                             f"({len(new.net.warehouses)} warehouses), not on the champion's network "
                             f"{cur.net.scenario.name!r} ({len(cur.net.warehouses)} warehouses)")
        self._warm(new)
        return new

    def install(self, new: Router, reason: str | None = None) -> dict[str, Any]:
        """Make ``new`` the champion from the next request on (one reference assignment: a
        request in flight finishes on the router it started with) and audit the swap."""
        from datetime import UTC, datetime

        with self.lock:
            old = self.router
            self.router = new
            self.source = f"/twin/serve/{new.package.name}"
            self._set_info()
            at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            self.audit.write([swap_event(old.policy_ref, new.policy_ref, reason, self.source, at)])
            self.swaps.inc()
        return {"previous": old.policy_ref, "current": new.policy_ref, "swapped_at": at}

    def swap(self, package: str | Path, reason: str | None = None) -> dict[str, Any]:
        """:meth:`load` then :meth:`install`."""
        return self.install(self.load(package), reason)

    def close(self) -> None:
        self.audit.close()

    # ------------------------------------------------------------------ deciding
    def route(self, orders: list[Any], batch: bool, raws: list[bytes | None] | None = None) -> tuple[Decided, float]:
        """Decide, audit, count; returns the decisions and the seconds deciding took (``raws``:
        the orders' JSON as received, for their digests)."""
        t0 = time.perf_counter()
        decided = self.router.decide_raw(orders, batch=batch, raws=raws)
        took = time.perf_counter() - t0
        self.record(decided, took)
        self.latency.observe(time.perf_counter() - t0)
        return decided, took

    async def route_async(self, orders: list[Any], batch: bool,
                          raws: list[bytes | None] | None = None) -> tuple[Decided, float]:
        """:meth:`route` for a request on the event loop, coalesced with the requests that are
        waiting meanwhile (opportunistic batching): the first request to find no batch being
        decided decides, after one turn of the loop, every request queued by then as one batch
        (and again while more arrive), and each gets its own decisions back. Nothing waits for
        company: a request alone is decided at once. A request naming something unknown fails
        alone (the batch is then decided request by request). A decision depends on its order
        and the policy only, not on the batch it was decided in (a test)."""
        import asyncio

        fut = asyncio.get_running_loop().create_future()
        self._pending.append((orders, batch, raws, fut))
        if not self._draining:
            self._draining = True
            try:
                await asyncio.sleep(0)  # let the requests already read queue up
                while self._pending:
                    items, self._pending = self._pending, []
                    self._route_many(items)
            finally:
                self._draining = False
        return await fut

    def _route_many(self, items: list[tuple[list[Any], bool, Any, Any]]) -> None:
        if len(items) > 1:
            t0 = time.perf_counter()
            try:
                decided = self.router.decide_raw([o for orders, _, _, _ in items for o in orders], batch=True,
                                                 raws=[r for orders, _, raws, _ in items
                                                       for r in (raws if raws is not None else [None] * len(orders))])
            except Exception:  # noqa: BLE001 - one request's bad reference: each on its own below
                decided = None
            if decided is not None:
                took = time.perf_counter() - t0
                self.record(decided, took)
                self.coalesced.observe(len(items))
                i = 0
                for orders, _, _, fut in items:
                    fut.set_result((decided.slice(i, i + len(orders)), took))
                    self.latency.observe(took)
                    i += len(orders)
                return
        for orders, batch, raws, fut in items:
            try:
                fut.set_result(self.route(orders, batch, raws))
            except Exception as exc:  # noqa: BLE001 - the request's own error (a 422)
                fut.set_exception(exc)

    def record(self, decided: Decided, took: float) -> None:
        """Audit the decisions and count them, under one lock (the log and the counter agree)."""
        events = decision_events(decided, took, self.source)
        outcomes: dict[tuple[str, str], int] = {}  # counted with dicts: a Counter costs more on one order
        for key in decided.outcomes():
            outcomes[key] = outcomes.get(key, 0) + 1
        fallbacks: dict[str, int] = {}
        for r in decided.fallback_reasons:
            if r is not None:
                fallbacks[r] = fallbacks.get(r, 0) + 1
        children = self._children
        with self.lock:
            self.audit.write(events)
            for labels, k in outcomes.items():  # one inc per label set and batch
                c = children.get(labels)
                if c is None:
                    c = children[labels] = self.decisions.labels(*labels)
                c.inc(k)
            for reason, k in fallbacks.items():
                self.fallbacks.labels(reason).inc(k)
            self.n_decisions += len(decided)

    def score_shadow(self, orders: list[Any], batch: bool, champion: Decided) -> None:
        """The challenger's decisions of the same orders, audited as shadow events (off the
        response path: FastAPI runs this after the response is sent)."""
        if self.shadow is None:
            return
        t0 = time.perf_counter()
        try:
            mine = self.shadow.decide_raw(orders, batch=batch)
        except Exception:  # the challenger never hurts the champion
            return
        took = time.perf_counter() - t0
        with self.lock:
            self.audit.write(decision_events(mine, took, self.source + "/shadow", shadow=True))
            for k in range(len(mine)):
                self.shadow_decisions.labels(str(champion.warehouse(k) == mine.warehouse(k)).lower()).inc()


def public(decided: Decided) -> bytes:
    """The response body: the decisions without their audit part."""
    return decided.response()


def create_app(service: Service) -> Any:
    """The FastAPI app of ``service``."""
    from contextlib import asynccontextmanager

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        service.warm_up()
        yield

    app = FastAPI(title="Fulfillment Twin routing service", version="1",
                  description="Order routing decisions for an OMS from a gated, exported policy package.",
                  lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RequestError)
    async def _unknown(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": list(exc.loc), "msg": exc.msg, "type": "value_error"}]},
                            status_code=422)

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's schema plus the request models (the route reads its body raw)."""
        from pydantic.json_schema import models_json_schema

        doc = base_openapi()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        if "RouteRequest" not in schemas:
            _, defs = models_json_schema([(RouteRequest, "validation")], ref_template="#/components/schemas/{model}")
            schemas.update(defs["$defs"])
        return doc

    app.openapi = openapi

    @app.exception_handler(InvalidRequest)
    async def _invalid_body(request: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)

    # The body is read raw and decoded by twin.serve.wire (msgspec; pydantic for what msgspec
    # refuses, so the answers are pydantic's); the OpenAPI schema still documents RouteRequest.
    body_schema = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/RouteRequest"}}}}}

    @app.post("/v1/route", response_model=RouteResponse, responses={422: {"description": "a field is invalid"}},
              summary="Route one order or a batch", openapi_extra=body_schema)
    async def route(request: Request, background: BackgroundTasks) -> Response:
        # reached only when the app runs without RouteFastPath (which answers this route first)
        status, body, timing, shadow = await route_body(service, await request.body())
        if shadow is not None:
            background.add_task(shadow)
        return Response(body, status_code=status, media_type="application/json",
                        headers={"Server-Timing": timing} if timing else None, background=background)

    if service.admin:
        from fastapi.concurrency import run_in_threadpool

        from twin.policies.runtime import PackageError

        @app.post("/v1/admin/swap", response_model=SwapResponse, responses={422: {"description": "not a usable package"}},
                  summary="Swap the champion for another package (and back) without dropping a request")
        async def swap(req: SwapRequest) -> JSONResponse:
            try:  # loading and warming up run in a worker thread: the loop goes on answering
                new = await run_in_threadpool(service.load, req.package)
            except (PackageError, ValueError, OSError) as exc:
                return JSONResponse({"detail": [{"loc": ["body", "package"], "msg": str(exc), "type": "value_error"}]},
                                    status_code=422)
            return JSONResponse(service.install(new, req.reason))

    @app.get("/v2/health/live", summary="KServe v2 liveness")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready", summary="KServe v2 readiness (after warm-up)",
             responses={503: {"description": "warming up"}})
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/v2/models/{name}/ready", summary="KServe v2 model readiness",
             responses={404: {"description": "no such model"}, 503: {"description": "warming up"}})
    async def model_ready(name: str) -> JSONResponse:
        ref = service.router.policy_ref
        if name != ref["name"]:
            return JSONResponse({"error": f"model {name!r} is not served; serving {ref['name']!r}"}, status_code=404)
        return JSONResponse({"name": name, "version": ref["version"], "ready": service.ready},
                            status_code=200 if service.ready else 503)

    @app.get("/metrics", summary="Prometheus metrics (base units)")
    async def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return RouteFastPath(app, service)


#: the largest ``POST /v1/route`` body taken (1,000 orders of 64 candidates fit well within)
MAX_BODY_BYTES = 64 << 20


def _json_body(obj: Any) -> bytes:
    """JSON as Starlette's ``JSONResponse`` writes it."""
    import json

    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


async def route_body(service: Service, body: bytes) -> tuple[int, bytes, str | None, Any]:
    """``(status, body, Server-Timing, shadow job or None)`` of a ``POST /v1/route`` body: 200
    with the decisions, or 422 naming the field (pydantic's errors, or the unknown name)."""
    try:
        orders, batch, raws = decode_request_raw(body)
        decided, took = await service.route_async(orders, batch, raws)
    except InvalidRequest as exc:
        return 422, _json_body({"detail": exc.errors}), None, None
    except RequestError as exc:
        return 422, _json_body({"detail": [{"loc": list(exc.loc), "msg": exc.msg, "type": "value_error"}]}), None, None
    shadow = None
    if service.shadow is not None:
        def shadow() -> None:
            service.score_shadow(orders, batch, decided)
    return 200, public(decided), f"route;dur={took * 1000:.3f}", shadow


class RouteFastPath:
    """The service's ASGI app: ``POST /v1/route`` answered here, in front of FastAPI's
    middleware stack and dependency injection (on one order, most of a request's CPU was
    theirs); everything else (the other routes, ``/openapi.json``, the lifespan that warms
    up) is the FastAPI app's, which also documents ``/v1/route``. The answers are the same
    (tests run against this app): the body read raw and decoded by :mod:`twin.serve.wire`,
    422 naming the field, a body over :data:`MAX_BODY_BYTES` 413, the challenger scored in a
    worker thread after the response is sent."""

    def __init__(self, app: Any, service: Service, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.service, self.max_body_bytes = app, service, int(max_body_bytes)

    def __getattr__(self, name: str) -> Any:  # the FastAPI app's attributes (state, openapi, routes)
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/route" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._send(send, 413, _json_body({"detail": [{"loc": ["body"], "msg": f"the body is over "
                                                                    f"{self.max_body_bytes} bytes", "type": "too_large"}]}),
                                 None)
                return
            chunks.append(chunk)
            more = msg.get("more_body", False)
        try:
            status, body, timing, shadow = await route_body(self.service, b"".join(chunks))
        except Exception:  # noqa: BLE001 - as Starlette's ServerErrorMiddleware answers (logged)
            import logging

            logging.getLogger("twin.serve").exception("POST /v1/route failed")
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            return
        await self._send(send, status, body, timing)
        if shadow is not None:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, shadow)

    @staticmethod
    async def _send(send: Any, status: int, body: bytes, timing: str | None) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if timing:
            headers.append((b"server-timing", timing.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve(package: str | Path, host: str = "127.0.0.1", port: int = 8080, shadow: str | Path | None = None,
          audit: str | Path = "audit.jsonl", timeout_ms: float = 50.0, kafka: str | None = None,
          orders_topic: str = "orders.created", decisions_topic: str = "routing.decisions", admin: bool = False) -> int:
    """Run the service until interrupted (``twin serve``); with ``kafka``, the bus loop too;
    with ``admin``, ``POST /v1/admin/swap``."""
    import uvicorn

    service = Service(package, audit, shadow, timeout_ms, admin=admin)
    bus = None
    if kafka:
        from twin.serve.bus import BusRouter

        bus = BusRouter(service, kafka, orders_topic, decisions_topic)
        bus.start()
    try:
        # no proxy-headers middleware (the service reads no client address), no Server header
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False,
                    proxy_headers=False, server_header=False)
    finally:
        if bus is not None:
            bus.stop()
        service.close()
    return 0
