"""The hooks a server runs, from its settings (`--hooks-*`) and the in-process hooks it was given."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from tusserver.context import TusContext
from tusserver.coordination.hooks.delivery import Deliverer
from tusserver.coordination.hooks.dispatch import Hooks, InProcessHook, InProcessHooks, Transport
from tusserver.coordination.hooks.events import DELIVERED_AT_LEAST_ONCE, HookEvent
from tusserver.coordination.hooks.files import FileHooks
from tusserver.coordination.hooks.http import HTTPHooks
from tusserver.coordination.state.base import SupportsOutbox
from tusserver.settings import Settings

__all__ = ["build_hooks", "deliverer_of", "module_hooks"]


def build_hooks(settings: Settings, in_process: Mapping[str, InProcessHook] | None = None) -> Hooks:
    """In-process hooks (given, or from `--hooks-module`) get the events they have a hook for; HTTP and
    file hooks get the enabled events (`--hooks-enabled-events`).

    Raises:
        ValueError: a hook setting cannot be used (the message says which).
    """
    hooks: dict[str, InProcessHook] = {}
    if settings.hooks_module:
        hooks.update(module_hooks(settings.hooks_module).items())
    hooks.update({HookEvent(event): hook for event, hook in (in_process or {}).items()})
    routes: list[tuple[Transport, frozenset[HookEvent]]] = []
    if hooks:
        transport = InProcessHooks(hooks)
        routes.append((transport, transport.events))
    enabled = frozenset(settings.hooks_enabled_events)
    if settings.hooks_http:
        http = HTTPHooks(
            settings.hooks_http,
            forward_headers=settings.hooks_http_forward_headers,
            timeout=settings.hooks_http_timeout,
            retries=settings.hooks_http_retry,
            backoff=settings.hooks_http_backoff,
        )
        routes.append((http, enabled))
    if settings.hooks_dir is not None:
        routes.append((FileHooks(settings.hooks_dir, timeout=settings.hooks_http_timeout), enabled))
    return Hooks(routes)


def deliverer_of(tus: TusContext) -> Deliverer | None:
    """The outbox's deliverer, when an event that goes through it is on (and the state store has one)."""
    if not tus.hooks.enabled & DELIVERED_AT_LEAST_ONCE or not isinstance(tus.state, SupportsOutbox):
        return None
    settings = tus.settings
    # A claim outlasts the slowest delivery twice (every attempt timing out, with its backoffs): a longer one
    # only delays the retry after a crash, a shorter one would have a second instance send it meanwhile.
    attempts = settings.hooks_http_retry + 1
    slowest = settings.hooks_http_timeout * attempts + settings.hooks_http_backoff * (attempts - 1)
    return Deliverer(tus.hooks, tus.state, tus.clock, max_age=settings.hooks_max_age, claim_for=2 * slowest + 10)


def module_hooks(name: str) -> dict[HookEvent, InProcessHook]:
    """The async functions of module `name` named after events (`pre_create` for pre-create, ...).

    Raises:
        ValueError: the module cannot be imported, or has no such function.
    """
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"--hooks-module {name}: cannot import it ({exc})") from None
    hooks = {event: getattr(module, event.value.replace("-", "_"), None) for event in HookEvent}
    found = {event: hook for event, hook in hooks.items() if callable(hook)}
    if not found:
        names = ", ".join(event.value.replace("-", "_") for event in HookEvent)
        raise ValueError(f"--hooks-module {name}: no hook in it (async functions named {names})")
    return found
