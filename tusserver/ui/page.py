"""`UploadPage`: answers GET and HEAD for the upload page and its files, before every other layer.

It sits outside the access check on purpose: the page is public (it holds no data), while every tus and status API
request it makes carries the user's token and is checked as any other. Its files are the package's own
(`static/`, Uppy vendored by scripts/vendor-uppy.sh); nothing is loaded from another site, which the
Content-Security-Policy enforces.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tusserver.context import TusContext
from tusserver.protocol.model import Extension

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "UploadPage"]

STATIC_DIR = Path(__file__).with_name("static")
# Scripts, styles and requests from this origin only; Uppy's thumbnails are blob: images, its icons data: ones.
# Uppy (Preact) sets style attributes from script, hence 'unsafe-inline' for styles (no script can be inlined).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
PARALLEL_UPLOADS = 4  # a file of at least PARALLEL_MIN_LENGTH goes up as this many partial uploads (concatenation)
PARALLEL_MIN_LENGTH = 64 * 1024 * 1024
_NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate (ETag): a new version of the package changes the files
mimetypes.add_type("text/javascript", ".mjs")  # module scripts must be served as JavaScript


class UploadPage:
    """The page at `settings.ui_path`, its configuration at `<ui_path>config.json` and its files at
    `<ui_path>static/...`; any other request goes on to `app`.

    Args:
        app: the rest of the server.
        tus: the server's context (its settings and extensions configure the page).
    """

    def __init__(self, app: ASGIApp, *, tus: TusContext) -> None:
        self.app, self.tus = app, tus
        self.path = tus.settings.ui_path
        self.files = {path.relative_to(STATIC_DIR).as_posix(): path for path in STATIC_DIR.rglob("*") if path.is_file()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._response(scope) if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _response(self, scope: Scope) -> Response | None:
        root: str = scope.get("root_path", "")
        path: str = scope["path"]
        if root and path.startswith(root):  # a mounted app's path holds its prefix
            path = path[len(root) :]
        if not path.startswith(self.path):
            return RedirectResponse(root + self.path) if path + "/" == self.path else None
        name = path[len(self.path) :]
        if name in ("", "index.html"):
            headers = {**_NO_CACHE, "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}
            return FileResponse(STATIC_DIR / "index.html", headers=headers)
        if name == "config.json":
            return Response(json.dumps(self.config(root)), media_type="application/json", headers=_NO_CACHE)
        file = self.files.get(name.removeprefix("static/")) if name.startswith("static/") else None
        return None if file is None else FileResponse(file, headers=_NO_CACHE)

    def config(self, root: str) -> dict[str, object]:
        """What the page needs to know of the server: where to upload and list uploads, and how."""
        settings = self.tus.settings
        parallel = Extension.CONCATENATION in self.tus.extensions
        return {
            "endpoint": root + settings.base_path,
            "uploads": None if settings.api_path is None else f"{root}{settings.api_path}/uploads",
            "maxSize": settings.max_size,
            "parallelUploads": PARALLEL_UPLOADS if parallel else 1,
            "parallelMinSize": PARALLEL_MIN_LENGTH,
            "auth": settings.auth_jwt_secret is not None
            or settings.auth_jwt_public_key is not None
            or settings.auth_jwks_url is not None,
        }
