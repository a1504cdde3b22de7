"""The audit trail: every routing decision, fallbacks included, as one CloudEvent (structured
JSON, one per line) in an append-only file.

Each event has type ``com.fulfillmenttwin.routing.decision.v1`` (``...routing.shadow.v1`` for a
challenger's decision in shadow mode), ``subject`` ``order/<id>``, ``partitionkey`` the
destination region, and as data the order id, the request's sha256, every candidate's score,
the choice, the reason, the fallback reason, the policy's name, version and sha256 and the
latency. Durability: the events of a request are written and flushed to the operating system
before its response is sent (a crash or restart of the service loses none); a background
thread fsyncs the file every ``fsync_interval_s`` (0.2 s: the bound on what a power loss may
lose).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twin.serve.wire import encode

__all__ = ["AuditLog", "DECISION_TYPE", "SHADOW_TYPE", "SWAP_TYPE", "decision_event", "decision_events", "now_iso",
           "read_events", "swap_event"]

DECISION_TYPE = "com.fulfillmenttwin.routing.decision.v1"
SHADOW_TYPE = "com.fulfillmenttwin.routing.shadow.v1"
#: The champion was swapped for another package (``POST /v1/admin/swap``).
SWAP_TYPE = "com.fulfillmenttwin.routing.swap.v1"


def decision_event(decision: dict[str, Any], latency_s: float, source: str, shadow: bool = False,
                   time: str | None = None) -> bytes:
    """One decision as a structured-mode CloudEvent (JSON bytes, no newline): the attributes
    the CloudEvents 1.0 JSON format has (``specversion``, ``id``, ``source``, ``type``,
    ``subject``, ``time``, ``datacontenttype``, the ``partitionkey`` extension) and ``data``,
    written compact with one ``msgspec`` encoding (:func:`twin.serve.wire.encode`; the SDK's
    encoder per event was a fifth of a decision's time; a test reads the line back with the SDK).
    ``time``: the batch's ISO time (default now)."""
    a = decision["_audit"]
    data = {
        "order_id": decision["order_id"], "decision_id": decision["decision_id"],
        "request_digest": a["request_digest"], "strategy": a["strategy"],
        "scores": {r["warehouse_id"]: r["score"] for r in decision["rankings"]},
        "choice": decision["warehouse_id"],
        "assignments": [[x["line"], x["warehouse_id"]] for x in decision["assignments"]],
        "reason": decision["reason"], "fallback": decision["fallback"],
        "fallback_reason": decision["fallback_reason"], "policy": decision["policy"],
        "latency_s": latency_s,
    }
    ev = {"type": SHADOW_TYPE if shadow else DECISION_TYPE, "source": source,
          "id": f"{decision['decision_id']}-{'s' if shadow else 'd'}-{os.urandom(4).hex()}",
          "subject": f"order/{decision['order_id']}", "partitionkey": a["region"],
          "datacontenttype": "application/json", "specversion": "1.0", "time": time or now_iso(), "data": data}
    return encode(ev)


def decision_events(decided: Any, latency_s: float, source: str, shadow: bool = False) -> list[bytes]:
    """The lines of a batch's decisions (a :class:`twin.serve.router.Decided`), one time for
    the batch: each the event :func:`decision_event` writes of the decision (equal as JSON; a
    test), spliced around the audit data the router wrote in C, so no dict is built."""
    n = len(decided)
    if not n:
        return []
    from ext._route import json_str

    typ, tag = (SHADOW_TYPE, b"s") if shadow else (DECISION_TYPE, b"d")
    head = b'{"type":' + json_str(typ) + b',"source":' + json_str(source) + b',"id":"'
    mid = (b',"datacontenttype":"application/json","specversion":"1.0","time":' + json_str(now_iso())
           + b',"data":')
    tail = encode(float(latency_s)) + b"}}"
    rand = os.urandom(4 * n).hex().encode()
    sep = b"-" + tag + b"-"
    return [b"".join((head, did.encode(), sep, rand[8 * k:8 * k + 8], b'","subject":', json_str("order/" + oid),
                      b',"partitionkey":', json_str(region), mid, data, tail))
            for k, (did, oid, region, data) in enumerate(zip(decided.dids, decided.order_ids, decided.regions,
                                                              decided.data))]


def now_iso() -> str:
    """Now in UTC, ISO 8601 with microseconds and ``Z`` (as the CloudEvents SDK writes it)."""
    return _dt.datetime.now(_dt.UTC).isoformat().replace("+00:00", "Z")


def swap_event(previous: dict[str, Any], current: dict[str, Any], reason: str | None, source: str,
               at: str) -> bytes:
    """A champion swap as a structured-mode CloudEvent: the packages before and after, why, when."""
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    ev = CloudEvent({"type": SWAP_TYPE, "source": source, "id": f"swap-{os.urandom(8).hex()}",
                     "subject": f"policy/{current['name']}", "datacontenttype": "application/json"},
                    data={"previous": previous, "current": current, "reason": reason, "swapped_at": at})
    return JSONFormat().write(ev)


class AuditLog:
    """Append-only JSON-lines CloudEvents (see the module docstring)."""

    def __init__(self, path: str | Path, fsync_interval_s: float = 0.2) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the service's life
        self._lock = threading.Lock()  # one write at a time (a line is never torn by another)
        self._sync_lock = threading.Lock()  # one fsync at a time, and close after it
        self._dirty = False
        self._stop = threading.Event()
        self.fsync_interval_s = float(fsync_interval_s)
        self._thread = threading.Thread(target=self._syncer, name="audit-fsync", daemon=True)
        self._thread.start()

    def write(self, events: Iterable[bytes]) -> None:
        """Append the events (one line each) with one write; flushed on return."""
        events = list(events)
        if not events:
            return
        data = b"\n".join(events) + b"\n"  # one copy of the lines, not one per line and another
        with self._lock:
            self._f.write(data)
            self._dirty = True

    def _syncer(self) -> None:
        while not self._stop.wait(self.fsync_interval_s):
            self.sync()

    def sync(self) -> None:
        """fsync what was written, without holding up writers: the fsync runs outside the write
        lock (it was the service's worst latency, p99 ~5 ms here, for every request that
        arrived during it); what is written meanwhile is made durable by the next sync."""
        with self._sync_lock:
            with self._lock:
                if not self._dirty or self._f.closed:
                    return
                self._dirty = False
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._stop.set()
        with self._sync_lock:
            with self._lock:
                if self._f.closed:
                    return
                if self._dirty:
                    os.fsync(self._f.fileno())
                    self._dirty = False
                self._f.close()


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every event of an audit log (a torn last line, from a crash mid-write, is left out)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
