"""The hook receiver the harness points `tusserver --hooks-http` at (issue 20): a tiny, fast ASGI app on uvicorn.

Every POST is a hook event in tusd's JSON: it is counted by its `Type` and answered 200 `{}` (an empty hook
response: nothing rejected, nothing changed). A GET (any path) answers the counts so far, a JSON object of
event type to count, so the harness can check that a run's events arrived: a hook set-up that sends nothing
must not pass for a fast one. Raw ASGI, no framework: the receiver should cost as little as a receiver can.

Usage: python bench/hook_receiver.py --port PORT
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

HOST = "127.0.0.1"
ANSWER = b"{}"
HEADERS = [(b"content-type", b"application/json")]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
counts: Counter[str] = Counter()


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """Count a POSTed event by its Type and answer `{}`; answer a GET with the counts."""
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        counts[_event_type(body)] += 1
        answer = ANSWER
    else:
        answer = json.dumps(counts).encode()
    headers = [*HEADERS, (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _event_type(body: bytes) -> str:
    try:
        event = json.loads(body)
    except ValueError:
        return "(not JSON)"
    return str(event.get("Type", "(no Type)")) if isinstance(event, dict) else "(not an object)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # uvicorn picks uvloop and httptools when installed, as tusserver's own uvicorn does.
    uvicorn.run(app, host=HOST, port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
