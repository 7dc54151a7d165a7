"""A webhook receiver for `--hooks-http`, speaking tusd's hook format (as receivers written for tusd do).

Run: uvicorn examples.webhook_receiver:app --port 8000
then: tusserver --hooks-http http://127.0.0.1:8000/

It refuses uploads without a filename, gives the others ids of its own (prefixed) and metadata with the time
of creation, and prints each finished upload.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

seen: set[str] = set()  # event ids: post-finish may come twice (at least once), the id tells


async def hook(request: Request) -> JSONResponse:
    event = await request.json()
    upload = event["Event"]["Upload"]
    if event["Type"] == "pre-create":
        if not upload["MetaData"].get("filename"):
            return JSONResponse(
                {"RejectUpload": True, "HTTPResponse": {"StatusCode": 400, "Body": "no filename provided"}}
            )
        metadata = {**upload["MetaData"], "created": datetime.now(UTC).isoformat()}
        return JSONResponse({"ChangeFileInfo": {"ID": f"upload-{secrets.token_hex(16)}", "MetaData": metadata}})
    if event["Type"] == "post-finish" and event["EventID"] not in seen:
        seen.add(event["EventID"])
        print(f"finished {upload['ID']}: {upload['MetaData']['filename']}, {upload['Size']} bytes", flush=True)
    return JSONResponse({})


app = Starlette(routes=[Route("/", hook, methods=["POST"])])
