"""The service's fast wire format: requests decoded and validated by ``msgspec`` into structs
generated from the pydantic models of :mod:`twin.serve.schema` (one definition of the API: the
OpenAPI schema and every error message still come from pydantic), and responses encoded by
``msgspec``.

``msgspec`` decodes and validates a 100-order batch in a few microseconds an order, where
pydantic took ~90 µs an order (json.loads and model instances). It is stricter than pydantic:
pydantic's lax mode also takes ``"3"`` for an int or ``1`` for a bool. So a body ``msgspec``
refuses is validated again by pydantic, as FastAPI did (``json.loads``, then
``RouteRequest.model_validate``): its errors are the 422 the OMS gets, and what it accepts is
converted to the structs. Every body is therefore answered exactly as pydantic alone would
answer it (a test checks both ways on generated and hand-written bodies).

- :func:`decode_request`: body bytes -> ``(orders, batch)``, or :class:`InvalidRequest` with
  pydantic's error list.
- :func:`as_order`: a dict, a pydantic ``Order`` or an order struct -> an order struct.
- :func:`decode_request_raw`: also each order's bytes as received.
- :func:`order_digest`: the sha256 of an order's JSON as received, else of its canonical JSON
  (``msgspec`` of the struct).
- :func:`encode`: ``msgspec`` JSON (non-finite floats as ``null``), ``json.dumps`` where a
  string cannot be UTF-8 (a lone surrogate that ``json.loads`` let through).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import types
import typing
from typing import Annotated, Any, Literal, Union

import msgspec
from pydantic import BaseModel, ValidationError

from twin.serve import schema

__all__ = ["STRUCTS", "InvalidRequest", "OrderS", "RouteRequestS", "as_order", "decode_order", "decode_request",
           "decode_request_raw",
           "encode", "order_digest", "strict_request", "struct_of"]

_META_KEYS = {"Ge": "ge", "Le": "le", "Gt": "gt", "Lt": "lt", "MinLen": "min_length", "MaxLen": "max_length"}


class InvalidRequest(ValueError):
    """A body pydantic refuses: ``errors`` as FastAPI's ``RequestValidationError.errors()``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    out = {}
    for m in metadata:
        key = _META_KEYS.get(type(m).__name__)
        if key is None:
            raise TypeError(f"wire: no msgspec constraint for {m!r}")
        out[key] = getattr(m, key)
    return out


def _wire_type(tp: Any, meta: dict[str, Any], made: dict[type, type]) -> Any:
    """The msgspec type of a pydantic annotation, the constraints on its non-None part."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *md = typing.get_args(tp)
        return _wire_type(inner, {**_constraints(md), **meta}, made)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"wire: unsupported union {tp!r}")
        return _wire_type(inner[0], meta, made) | None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        base = struct_of(tp, made)
    elif origin is list:
        (item,) = typing.get_args(tp)
        base = list[_wire_type(item, {}, made)]
    elif origin is dict:
        k, v = typing.get_args(tp)
        base = dict[_wire_type(k, {}, made), _wire_type(v, {}, made)]
    elif origin is Literal or tp in (str, int, float, bool, _dt.datetime):
        base = tp
    else:
        raise TypeError(f"wire: unsupported type {tp!r}")
    return Annotated[base, msgspec.Meta(**meta)] if meta else base


def struct_of(model: type[BaseModel], made: dict[type, type] | None = None) -> type:
    """The ``msgspec.Struct`` of a pydantic model: the same fields, types, constraints and
    defaults, unknown fields refused, and the model's ``after`` validators (its
    ``__pydantic_decorators__``) run by ``__post_init__``."""
    made = {} if made is None else made
    if model in made:
        return made[model]
    fields = []
    for name, f in model.model_fields.items():
        tp = _wire_type(f.annotation, _constraints(f.metadata), made)
        if f.default_factory is not None:
            fields.append((name, tp, msgspec.field(default_factory=f.default_factory)))
        elif f.is_required():
            fields.append((name, tp))
        else:
            fields.append((name, tp, f.default))
    checks = [d.func for d in model.__pydantic_decorators__.model_validators.values() if d.info.mode == "after"]
    ns: dict[str, Any] = {}
    if checks:
        def __post_init__(self: Any) -> None:  # noqa: N807
            for fn in checks:
                fn(self)

        ns["__post_init__"] = __post_init__
    # gc=False: the collector does not track the structs (a decoded request holds only
    # strings, numbers, lists, dicts and other structs: no cycle can form), so decoding a
    # 100-order batch (~1,200 structs) sets off no collection. The saving is under 1 µs an
    # order, not measurable in process (BENCHMARKS.md, "The host's own tail").
    s = msgspec.defstruct(f"{model.__name__}S", fields, kw_only=True, forbid_unknown_fields=True, namespace=ns,
                          gc=False)
    made[model] = s
    return s


STRUCTS: dict[type, type] = {}
RouteRequestS = struct_of(schema.RouteRequest, STRUCTS)
OrderS = STRUCTS[schema.Order]
_request_decoder = msgspec.json.Decoder(RouteRequestS)
_order_decoder = msgspec.json.Decoder(OrderS)
_encoder = msgspec.json.Encoder()


def _pydantic_errors(exc: ValidationError, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()]


def _json_or_invalid(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        raise InvalidRequest([{"loc": ["body", pos], "msg": "JSON decode error", "type": "json_invalid"}]) from None


def strict_request(body: bytes | str) -> Any:
    """The request struct by ``msgspec`` alone (no pydantic retry): raises its
    ``msgspec.ValidationError`` / ``DecodeError`` for anything it refuses."""
    return _request_decoder.decode(body)


def decode_request(body: bytes | str) -> tuple[list[Any], bool]:
    """``(orders, batch)`` of a ``POST /v1/route`` body (see the module docstring)."""
    try:
        req = _request_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        req = _slow(body, schema.RouteRequest, RouteRequestS, ("body",))
    if req.orders is not None:
        return req.orders, True
    return [req.order], False


class _RawRequest(msgspec.Struct):
    """A route request's orders as the bytes received (their digests)."""

    order: msgspec.Raw = msgspec.Raw(b"null")
    orders: list[msgspec.Raw] | None = None


_raw_decoder = msgspec.json.Decoder(_RawRequest)


def decode_request_raw(body: bytes | str) -> tuple[list[Any], bool, list[msgspec.Raw]]:
    """:func:`decode_request` and each order's JSON as received (what
    :func:`order_digest` hashes: cheaper than encoding the struct again), as ``msgspec.Raw``
    buffers into the body (``bytes(raw)`` copies one out)."""
    orders, batch = decode_request(body)
    r = _raw_decoder.decode(body)
    return orders, batch, r.orders if batch else [r.order]  # msgspec.Raw: buffers, hashed without a copy


def decode_order(body: bytes | str, loc: tuple[Any, ...] = ()) -> Any:
    """One order (a bus message's data) as an order struct, or :class:`InvalidRequest`."""
    try:
        return _order_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _slow(body, schema.Order, OrderS, loc)


def _slow(body: bytes | str, model: type[BaseModel], struct: type, loc: tuple[Any, ...]) -> Any:
    doc = _json_or_invalid(body)
    try:
        m = model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidRequest(_pydantic_errors(exc, loc)) from None
    return msgspec.convert(m.model_dump(), struct)


def as_order(o: Any) -> Any:
    """An order struct from a struct, a pydantic ``Order`` or a dict (validated by pydantic)."""
    if isinstance(o, OrderS):
        return o
    if isinstance(o, schema.Order):
        return msgspec.convert(o.model_dump(), OrderS)
    if isinstance(o, dict):
        try:
            return msgspec.convert(o, OrderS)
        except msgspec.ValidationError:
            return msgspec.convert(schema.Order.model_validate(o).model_dump(), OrderS)
    raise TypeError(f"an order must be a dict, a twin.serve.schema.Order or an order struct, got {type(o).__name__}")


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def encode(obj: Any) -> bytes:
    """``obj`` as compact JSON (see the module docstring)."""
    try:
        return _encoder.encode(obj)
    except UnicodeEncodeError:
        return json.dumps(_finite(msgspec.to_builtins(obj)), separators=(",", ":")).encode()


def order_digest(o: Any, raw: bytes | msgspec.Raw | None = None) -> str:
    """The request digest of an order: the sha256 of its JSON as received (``raw``: a request's
    or a bus message's bytes), else of its canonical JSON (its struct, ``msgspec``-encoded)."""
    return hashlib.sha256(encode(o) if raw is None else raw).hexdigest()
