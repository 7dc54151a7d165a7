"""The server's Prometheus metrics (`tusserver_*`), served at `--metrics-path` (`tusserver.pipeline.operations`).

One registry per process, not prometheus_client's global one: an app that mounts tusserver keeps its own
`/metrics` as it was, and may add ours (`REGISTRY`) to it. Every app in the process counts into the same
series; the ASGI servers `tusserver` runs serve one app in one process, so nothing needs multiprocess mode.

Per-request cost: prometheus_client looks a labelled child up under a lock on every `labels()` call, so the
children of the labels a request can have are bound once here (`by_method`), and the few others are bound
on first use and kept (`error_counter`, `timed`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "BYTES_RECEIVED",
    "CONNECTIONS_OPEN",
    "HOOK_FAILURES",
    "HOOK_INVOCATIONS",
    "LOCK_WAIT",
    "REGISTRY",
    "UPLOADS_CREATED",
    "UPLOADS_FINISHED",
    "UPLOADS_IN_FLIGHT",
    "UPLOADS_TERMINATED",
    "Live",
    "MethodMetrics",
    "by_method",
    "error_counter",
    "hook_counters",
    "timed",
]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # CPU, memory and descriptors of the process, computed when scraped

METHODS = ("POST", "HEAD", "PATCH", "DELETE", "OPTIONS", "GET")
# Fast calls (state store, lock waits) are well under a millisecond; a body-long append takes minutes.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_REQUESTS = Counter("tusserver_requests", "Requests, by method", ["method"], registry=REGISTRY)
_DURATION = Histogram(
    "tusserver_request_duration_seconds", "Time to answer a request, by method", ["method"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
_ERRORS = Counter(
    "tusserver_errors", "Error responses, by status and error code", ["status", "code"], registry=REGISTRY
)
BYTES_RECEIVED = Counter("tusserver_bytes_received", "Request body bytes read for uploads", registry=REGISTRY)
UPLOADS_CREATED = Counter("tusserver_uploads_created", "Uploads created", registry=REGISTRY)
UPLOADS_FINISHED = Counter("tusserver_uploads_finished", "Uploads whose last byte was stored", registry=REGISTRY)
UPLOADS_TERMINATED = Counter("tusserver_uploads_terminated", "Uploads terminated by DELETE", registry=REGISTRY)


class Live:
    """What is going on now, as plain integers read when scraped: a Gauge's inc() and dec() take a lock each,
    twice per request. Only the event loop's thread changes them."""

    requests = 0
    uploads = 0


# As tusd's tusd_connections_open: requests being served right now (a kept-alive idle connection is not one).
CONNECTIONS_OPEN = Gauge("tusserver_connections_open", "Requests being served", registry=REGISTRY)
CONNECTIONS_OPEN.set_function(lambda: Live.requests)
UPLOADS_IN_FLIGHT = Gauge(
    "tusserver_uploads_in_flight", "Request bodies being received into uploads", registry=REGISTRY
)
UPLOADS_IN_FLIGHT.set_function(lambda: Live.uploads)
HOOK_INVOCATIONS = Counter("tusserver_hook_invocations", "Hook events sent, by event", ["event"], registry=REGISTRY)
HOOK_FAILURES = Counter("tusserver_hook_errors", "Hook events that failed, by event", ["event"], registry=REGISTRY)
_STORAGE = Histogram(
    "tusserver_storage_seconds", "Storage calls, by backend and operation (append lasts as long as its body)",
    ["backend", "operation"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
_STATE = Histogram(
    "tusserver_state_seconds", "State store calls, by store and operation", ["store", "operation"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
LOCK_WAIT = Histogram(
    "tusserver_lock_wait_seconds", "Time to acquire an upload's lock (or give up: 423)",
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip


class MethodMetrics:
    """The children one request method counts into."""

    __slots__ = ("duration", "requests")

    def __init__(self, method: str) -> None:
        self.requests = _REQUESTS.labels(method)
        self.duration = _DURATION.labels(method)


_BY_METHOD = {method: MethodMetrics(method) for method in METHODS}
_OTHER = MethodMetrics("OTHER")  # any other method: one series, whatever clients invent
_ERROR_COUNTERS: dict[tuple[int, str], Counter] = {}
_TIMERS: dict[tuple[str, str, str], Histogram] = {}


def by_method(method: str) -> MethodMetrics:
    """The children of `method` (OTHER for one tus does not use)."""
    return _BY_METHOD.get(method, _OTHER)


def error_counter(status: int, code: str | None) -> Counter:
    """The error counter child of `status` and error code ("" for none): the codes are the error table's."""
    key = (status, code or "")
    counter = _ERROR_COUNTERS.get(key)
    if counter is None:
        counter = _ERROR_COUNTERS[key] = _ERRORS.labels(str(status), code or "")
    return counter


def timed(kind: str, owner: str, operation: str) -> Histogram:
    """The latency child of a storage ("storage") or state store ("state") call."""
    key = (kind, owner, operation)
    histogram = _TIMERS.get(key)
    if histogram is None:
        histogram = _TIMERS[key] = (_STORAGE if kind == "storage" else _STATE).labels(owner, operation)
    return histogram


def hook_counters(event: str) -> tuple[Counter, Counter]:
    """The invocation and failure children of a hook event."""
    return HOOK_INVOCATIONS.labels(event), HOOK_FAILURES.labels(event)
