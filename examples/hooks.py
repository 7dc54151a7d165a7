"""In-process hooks: async functions named after the events they handle.

Run: tusserver --hooks-module examples.hooks
(or in an app of your own: `create_app(settings, hooks={"pre-create": pre_create, "post-finish": post_finish})`)
"""

from __future__ import annotations

import logging

from tusserver import HookChangeFileInfo, HookHTTPResponse, HookRequest, HookResponse

logger = logging.getLogger("examples.hooks")


async def pre_create(request: HookRequest) -> HookResponse | None:
    """Refuse uploads without a file name; file the others under the name's extension."""
    metadata = request.Event.Upload.MetaData
    if not metadata.get("filename"):
        return HookResponse(
            RejectUpload=True, HTTPResponse=HookHTTPResponse(StatusCode=400, Body="no filename provided")
        )
    kind = metadata["filename"].rsplit(".", 1)[-1].lower() if "." in metadata["filename"] else "other"
    return HookResponse(ChangeFileInfo=HookChangeFileInfo(MetaData={**metadata, "kind": kind}))


async def post_finish(request: HookRequest) -> None:
    """Hear of every finished upload (at least once: `request.EventID` tells a repeat)."""
    upload = request.Event.Upload
    logger.warning("upload %s finished: %s, %s bytes, at %s", upload.ID, upload.MetaData.get("filename"),
                   upload.Size, upload.Storage)  # fmt: skip
