"""The hook events, with tusd's names and meaning (../shared/HOOKS.md)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BLOCKING", "DEFAULT_ENABLED", "DELIVERED_AT_LEAST_ONCE", "HookEvent"]


class HookEvent(StrEnum):
    """When a hook runs."""

    PRE_CREATE = "pre-create"  # before an upload is created: may reject it, change its id and metadata
    POST_CREATE = "post-create"
    POST_RECEIVE = "post-receive"  # while a PATCH body arrives, and at its end: may stop the upload
    PRE_FINISH = "pre-finish"  # after the last byte is stored, before the response: may shape it
    POST_FINISH = "post-finish"
    PRE_TERMINATE = "pre-terminate"  # before a DELETE removes an upload: may refuse
    POST_TERMINATE = "post-terminate"
    # Beyond tusd (which has no per-request hook): before every request that touches an upload, and for each
    # partial a final's Upload-Concat names; may deny it, or name the principal it acts for (authorization).
    PRE_ACCESS = "pre-access"


# The request waits for these, and their answer decides; the others run beside the request.
BLOCKING = frozenset({HookEvent.PRE_CREATE, HookEvent.PRE_FINISH, HookEvent.PRE_TERMINATE, HookEvent.PRE_ACCESS})
# tusd's -hooks-enabled-events default: every event but the two blocking ones added last (and pre-access, which
# tusd lacks: it runs on every request, so it is sent to HTTP and file hooks only when enabled by name).
DEFAULT_ENABLED = (
    HookEvent.PRE_CREATE,
    HookEvent.POST_CREATE,
    HookEvent.POST_RECEIVE,
    HookEvent.POST_FINISH,
    HookEvent.POST_TERMINATE,
)
# Recorded with the change that causes them (an outbox) and delivered until a receiver took them.
DELIVERED_AT_LEAST_ONCE = frozenset({HookEvent.POST_CREATE, HookEvent.POST_FINISH, HookEvent.POST_TERMINATE})
