"""Who a request acts for (issue 21: authorization and ownership), as the pipeline hands it on.

A request's principal is set once, by the access check before any endpoint runs (`request.state.principal`),
from a bearer token or a `pre-access` hook's answer; None when authorization is not configured, and then every
request may use every upload, as before. The rules here are pure: who may use which upload.
"""

from __future__ import annotations

from dataclasses import dataclass

from tusserver.protocol.model import UploadInfo

__all__ = ["Principal", "may_use"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        id: the stable name of the caller (a JWT's `sub`, or what a pre-access hook answered); it becomes the
            owner of the uploads it creates.
        admin: reaches every upload, and the status API's admin actions.
    """

    id: str
    admin: bool = False


def may_use(principal: Principal | None, info: UploadInfo) -> bool:
    """Whether `principal` may use the upload `info` at all: its owner or an admin; anyone without
    authorization (None), and anyone for an upload created without it (no owner). A caller that may not gets
    404, never a hint that the upload exists."""
    if principal is None or info.owner is None:
        return True
    return principal.admin or principal.id == info.owner
