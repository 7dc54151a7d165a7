"""A webhook receiver for the hook e2e tests: a tiny ASGI app that uvicorn serves in a process of its own.

`app` appends one JSON line per POST to `received.jsonl` in the directory named by HOOK_RECEIVER_DIR (the
hook request as it came, its Idempotency-Key, the status answered, the time) and answers at once what
`script.json` there says for the event: e.g. `{"post-finish": {"status": 500}}`, or with `"delay": 3` after 3
seconds (the record is written on arrival); by default 200 with `{}` at once.
Any other method answers 200 (readiness). `HookReceiver` runs it, or any other app (`examples.webhook_receiver:
app`), scripts its answers and reads what it recorded; every wait is a bounded poll.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio
import requests
from starlette.types import Receive, Scope, Send

from tests.server_process import ServerProcess, free_ports

__all__ = ["Answer", "HookReceiver", "Received", "app"]

DIRECTORY = "HOOK_RECEIVER_DIR"
REPOSITORY = Path(__file__).resolve().parents[2]
RECEIVED = "received.jsonl"
SCRIPT = "script.json"


# --- the app (runs in the receiver's process) ---------------------------------------------------------------------


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    if scope["method"] != "POST":
        await _answer(send, 200, b"ready")
        return
    directory = Path(os.environ[DIRECTORY])
    request = json.loads(body)
    script = json.loads((directory / SCRIPT).read_text()) if (directory / SCRIPT).exists() else {}
    answer = script.get(request["Type"], {})
    status, text = answer.get("status", 200), answer.get("body", "{}")
    headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
    line = {"time": time.time(), "status": status, "key": headers.get("idempotency-key"), "request": request}
    # One write(2) with O_APPEND: the line lands whole, and the test never reads half of it as a line.
    descriptor = os.open(directory / RECEIVED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (json.dumps(line) + "\n").encode())
    finally:
        os.close(descriptor)
    await anyio.sleep(answer.get("delay", 0))
    await _answer(send, status, text.encode())


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


# --- the harness (runs in the tests) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the receiver answers an event: a status and a body (sent as application/json, whatever it is),
    `delay` seconds after the request arrived."""

    status: int = 200
    body: str = "{}"
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One hook request as the receiver got it, and what it answered."""

    time: float
    status: int
    key: str | None  # the Idempotency-Key header
    request: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.request["Type"])

    @property
    def event_id(self) -> str:
        return str(self.request["EventID"])

    @property
    def upload_id(self) -> str:
        return str(self.request["Event"]["Upload"]["ID"])

    @property
    def upload(self) -> dict[str, Any]:
        upload: dict[str, Any] = self.request["Event"]["Upload"]
        return upload


@dataclass
class HookReceiver(ServerProcess):
    """`python -m uvicorn <app>` on a free port of 127.0.0.1, in `directory`; its output is `receiver.log`."""

    name: ClassVar[str] = "receiver"
    app: str = "tests.e2e.hook_receiver:app"

    @property
    def url(self) -> str:
        return self.endpoint + "/"

    def start(self) -> None:
        self.port = self.port or free_ports(1)[0]
        command = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port),
                   "--lifespan", "off", "--log-level", "warning"]  # fmt: skip
        environ = os.environ | {DIRECTORY: str(self.directory), "PYTHONPATH": str(REPOSITORY), "PYTHONUNBUFFERED": "1"}
        self._spawn(command, self._answers, env=environ, timeout=20)

    def _answers(self) -> bool:
        try:
            requests.get(self.url, timeout=1)
        except requests.ConnectionError:
            return False
        return True

    def script(self, answers: dict[str, Answer] | None = None) -> None:
        """Answer these events so from now on (the others, and all without `answers`: 200 with `{}`)."""
        text = json.dumps({event: dataclasses.asdict(answer) for event, answer in (answers or {}).items()})
        staged = self.directory / (SCRIPT + ".new")
        staged.write_text(text)
        staged.replace(self.directory / SCRIPT)  # atomic: a request reads the old script or the new one

    def received(self, event: str | None = None) -> list[Received]:
        """What it recorded so far (of `event` only, if given), oldest first."""
        path = self.directory / RECEIVED
        text = path.read_text() if path.exists() else ""
        lines = text.split("\n")[:-1]  # a line still being written has no newline yet
        records = [Received(**json.loads(line)) for line in lines]
        return [record for record in records if event is None or record.type == event]

    def wait_for(
        self, condition: Callable[[list[Received]], bool], *, what: str, timeout: float = 10.0
    ) -> list[Received]:
        """Poll what it recorded until `condition` holds for it; returns it. Fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(records := self.received()):
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}; got {records}"
            time.sleep(0.02)
        return records

    def output(self) -> str:
        """What the app printed (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in (output := self.output()):
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {text!r} in:\n{output}"
            time.sleep(0.02)
