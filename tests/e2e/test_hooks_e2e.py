"""Issue 20: hooks with real processes: tusserver (uvicorn), webhook receivers under uvicorn, executable file
hooks, tus-js-client under Node, a real Redis.

- The README's acceptance: examples/webhook_receiver.py and examples/hooks.py as a new user runs them.
- File hooks: every event, in the order a receiver may rely on, with tusd's environment and JSON.
- Fail closed: a pre-create that cannot be had (unreachable, 500, garbage) is a 503 with Retry-After, and
  nothing is created.
- The outbox: post-finish survives a receiver's outage, and a kill -9 of the server in the middle of its
  delivery (same EventID, also as Idempotency-Key, on every attempt); with three instances on one Redis,
  each event is delivered once, also a slow receiver's backlog (each batch is sent at once, within its claim).

Every wait is a bounded poll on what a process wrote (a receiver's records, a log), never a fixed sleep.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
import redis
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    TUS,
    KiB,
    ServerProcess,
    StartServer,
    create_upload,
    files_under,
    patch,
    random_file,
    sha256_file,
    tool,
    upload_id,
    wait_for_log,
    wait_until,
)
from tests.e2e.hook_receiver import REPOSITORY, Answer, HookReceiver, Received
from tests.redis_server import RedisServer
from tests.server_process import free_ports

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
ALL_EVENTS = "pre-create,post-create,post-receive,pre-finish,post-finish,pre-terminate,post-terminate"
# One attempt per delivery: the outbox's own backoff does the retrying. A delivery's claim lasts twice the
# slowest delivery plus 10 s (setup.deliverer_of): a killed server's claim passes on after that.
ONE_TRY = ("--hooks-http-retry", "0", "--hooks-http-timeout", "1")
SLOW_TRY = ("--hooks-http-retry", "0", "--hooks-http-timeout", "2")
SLOW_CLAIM = 2 * 2 + 10.0
FAST_FAIL = ("--hooks-http-retry", "1", "--hooks-http-backoff", "0.1", "--hooks-http-timeout", "1")
FILENAME = "report.pdf"


@pytest.fixture
def asgi_server() -> str:
    return "uvicorn"  # hooks run above the ASGI server: one of them is enough here


def start_receiver(directory: Path, application: str = "tests.e2e.hook_receiver:app") -> Iterator[HookReceiver]:
    directory.mkdir()
    receiver = HookReceiver(directory, app=application)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[HookReceiver]:
    """The recording receiver (tests/e2e/hook_receiver.py), answering 200 `{}` until scripted otherwise."""
    yield from start_receiver(tmp_path / "receiver")


@pytest.fixture
def example_receiver(tmp_path: Path) -> Iterator[HookReceiver]:
    """examples/webhook_receiver.py, as the README runs it."""
    yield from start_receiver(tmp_path / "example-receiver", "examples.webhook_receiver:app")


def metadata_header(**pairs: str) -> dict[str, str]:
    encoded = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())
    return {"Upload-Metadata": encoded}


def head_metadata(location: str) -> dict[str, str]:
    response = requests.head(location, headers=TUS, timeout=IO_TIMEOUT)
    assert response.status_code == 200, response.headers
    pairs = (item.strip().partition(" ") for item in response.headers.get("Upload-Metadata", "").split(","))
    return {key: base64.b64decode(value).decode() for key, _, value in pairs if key}


def run_node(server: ServerProcess, source: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """Run js/hooks_upload.mjs; returns its JSON report (see the script's header)."""
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    command = [tool("node"), "hooks_upload.mjs", server.url, str(source), json.dumps(metadata)]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def uploads_stored(server: ServerProcess) -> set[Path]:
    uploads = server.data_dir / "uploads"
    return files_under(uploads) if uploads.exists() else set()


# --- the README's acceptance -----------------------------------------------------------------------------------


def test_example_webhook_receiver_with_tus_js_client(
    start_server: StartServer, example_receiver: HookReceiver, tmp_path: Path
) -> None:
    server = start_server("--hooks-http", example_receiver.url)
    source = random_file(tmp_path / "source.bin", 300 * KiB)
    refused = run_node(server, source, {"filetype": "application/pdf"})
    assert "no filename provided" in refused["error"], refused  # what the application shows its user
    assert (refused["status"], refused["body"]) == (400, "no filename provided")
    assert not uploads_stored(server)

    done = run_node(server, source, {"filename": FILENAME, "filetype": "application/pdf"})
    assert done.get("done"), done
    new_id = upload_id(done["url"])
    assert re.fullmatch(r"upload-[0-9a-f]{32}", new_id), done["url"]  # the receiver's id
    metadata = head_metadata(done["url"])
    assert (metadata["filename"], metadata["filetype"]) == (FILENAME, "application/pdf")
    datetime.fromisoformat(metadata["created"])  # the receiver's metadata replaced the client's
    assert sha256_file(server.stored_path(done["url"])) == sha256_file(source)
    example_receiver.wait_for_output(f"finished {new_id}: {FILENAME}, {300 * KiB} bytes\n")


def test_example_in_process_hooks(start_server: StartServer) -> None:
    server = start_server("--hooks-module", "examples.hooks", env={"PYTHONPATH": str(REPOSITORY)})
    refused = requests.post(server.url, headers=TUS | {"Upload-Length": "5"}, timeout=IO_TIMEOUT)
    assert (refused.status_code, refused.text) == (400, "no filename provided")
    assert not uploads_stored(server)

    location = create_upload(server, 5, metadata_header(filename="notes.txt"))
    assert head_metadata(location) == {"filename": "notes.txt", "kind": "txt"}
    assert patch(location, 0, b"hello").status_code == 204
    wait_for_log(server, f"upload {upload_id(location)} finished: notes.txt, 5 bytes, at ")


# --- file hooks ---------------------------------------------------------------------------------------------------

# Each hook appends "<event> <TUS_ID> <TUS_OFFSET> <TUS_SIZE>" to LOG and keeps its JSON as EVENT-ID.json;
# pre-create refuses an upload whose request has no filename.
FILE_HOOK = """#!/bin/sh
event=$(basename "$0")
cat > "{records}/$event-$TUS_ID.json"
echo "$event $TUS_ID $TUS_OFFSET $TUS_SIZE" >> "{log}"
if [ "$event" = pre-create ] && ! grep -q '"filename"' "{records}/$event-$TUS_ID.json"; then
  echo '{{"RejectUpload": true, "HTTPResponse": {{"StatusCode": 400, "Body": "no filename provided"}}}}'
fi
"""


def hooks_dir(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A directory with the file hook for every event; returns it, the log and where the requests go."""
    directory, records, log = tmp_path / "hooks", tmp_path / "records", tmp_path / "hooks.log"
    directory.mkdir()
    records.mkdir()
    for event in ALL_EVENTS.split(","):
        path = directory / event
        path.write_text(FILE_HOOK.format(records=records, log=log))
        path.chmod(0o755)
    return directory, log, records


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for_events(log: Path, *lines: str) -> None:
    wait_until(lambda: set(lines) <= set(logged(log)), what=f"{lines} in {log}", timeout=10)


def test_file_hooks_every_event_in_order(start_server: StartServer, tmp_path: Path) -> None:
    directory, log, records = hooks_dir(tmp_path)
    server = start_server("--hooks-dir", str(directory), "--hooks-enabled-events", ALL_EVENTS)
    refused = requests.post(server.url, headers=TUS | {"Upload-Length": "11"}, timeout=IO_TIMEOUT)
    assert (refused.status_code, refused.text) == (400, "no filename provided")

    location = create_upload(server, 11, metadata_header(filename=FILENAME))
    new_id = upload_id(location)
    assert logged(log)[:2] == ["pre-create  0 11"] * 2  # no id yet; blocking: logged before the 201
    wait_for_events(log, f"post-create {new_id} 0 11")
    assert patch(location, 0, b"hello world").status_code == 204
    assert f"pre-finish {new_id} 11 11" in logged(log)  # blocking: before the 204
    wait_for_events(log, f"post-receive {new_id} 11 11", f"post-finish {new_id} 11 11")
    assert requests.delete(location, headers=TUS, timeout=IO_TIMEOUT).status_code == 204
    assert f"pre-terminate {new_id} 11 11" in logged(log)
    wait_for_events(log, f"post-terminate {new_id} 11 11")

    events = [line.split()[0] for line in logged(log)]
    # post-receive and post-finish of one PATCH go out beside each other: either may come first.
    assert events[:4] + sorted(events[4:6]) + events[6:] == [
        "pre-create", "pre-create", "post-create", "pre-finish", "post-finish", "post-receive", "pre-terminate",
        "post-terminate"]  # fmt: skip
    request = json.loads((records / f"post-finish-{new_id}.json").read_text())
    upload = request["Event"]["Upload"]
    assert (request["Type"], upload["ID"], upload["Size"], upload["Offset"]) == ("post-finish", new_id, 11, 11)
    assert upload["MetaData"] == {"filename": FILENAME}
    assert request["Event"]["HTTPRequest"]["Method"] == "PATCH"
    assert re.fullmatch(r"[0-9a-f]{32}", request["EventID"])


# --- fail closed --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["unreachable", "500", "garbage"])
def test_failing_pre_create_is_503_and_creates_nothing(
    start_server: StartServer, receiver: HookReceiver, failure: str
) -> None:
    url = f"http://127.0.0.1:{free_ports(1)[0]}/" if failure == "unreachable" else receiver.url
    answer = Answer(500, "down") if failure == "500" else Answer(200, "<html>no JSON</html>")
    receiver.script({"pre-create": answer})
    server = start_server("--hooks-http", url, *FAST_FAIL)
    creation = TUS | {"Upload-Length": "5"} | metadata_header(filename=FILENAME)
    with_body = creation | {"Content-Type": "application/offset+octet-stream"}
    for headers, body in [(creation, b""), (with_body, b"hello")]:
        response = requests.post(server.url, headers=headers, data=body, timeout=IO_TIMEOUT)
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) > 0
    assert not uploads_stored(server)
    assert "hook failed" in server.log()
    attempts = Counter(record.type for record in receiver.received())
    # A non-2xx answer is tried again (--hooks-http-retry 1); an answer that is not a hook response is not.
    expected = {"unreachable": {}, "500": {"pre-create": 4}, "garbage": {"pre-create": 2}}[failure]
    assert attempts == expected  # and no post-create: nothing was created


# --- the outbox: at least once ------------------------------------------------------------------------------------


def crash(server: ServerProcess) -> None:
    """SIGKILL the server and any worker process of it (granian's outlives its parent): nothing runs after."""
    root = psutil.Process(server.pid)
    workers = root.children(recursive=True)
    root.kill()
    for worker in workers:
        worker.kill()
    server.process.wait(IO_TIMEOUT)
    psutil.wait_procs(workers, timeout=IO_TIMEOUT)


def finished(upload: str) -> Callable[[list[Received]], bool]:
    """A condition on a receiver's records: the upload's post-finish was answered 2xx."""
    return lambda records: any(r.type == "post-finish" and r.upload_id == upload and r.status < 300 for r in records)


def attempts_of(records: list[Received], event: str, upload: str) -> list[Received]:
    return [record for record in records if record.type == event and record.upload_id == upload]


def check_one_event_id(attempts: list[Received]) -> str:
    """Every attempt at one event carries the same EventID, also as Idempotency-Key; the last was taken."""
    assert attempts, "never attempted"
    assert {(record.event_id, record.key) for record in attempts} == {(attempts[0].event_id,) * 2}, attempts
    assert attempts[-1].status == 200, attempts
    return attempts[0].event_id


def test_post_finish_survives_a_receiver_outage(start_server: StartServer, receiver: HookReceiver) -> None:
    receiver.script({"post-finish": Answer(500, "down")})
    server = start_server("--hooks-http", receiver.url, *ONE_TRY)
    location = create_upload(server, 5)
    assert patch(location, 0, b"hello").status_code == 204  # the receiver's outage never fails the upload
    new_id = upload_id(location)
    receiver.wait_for(lambda records: bool(attempts_of(records, "post-finish", new_id)), what="a failed post-finish")
    receiver.script()  # healthy again
    records = receiver.wait_for(finished(new_id), what="the post-finish delivered")
    attempts = attempts_of(records, "post-finish", new_id)
    check_one_event_id(attempts)
    assert [record.status for record in attempts[:-1]] == [500] * (len(attempts) - 1)
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(attempts)]
    assert min(gaps) >= 0.9, gaps  # tried again after the outbox's backoff (1 s, then 2 s ...), not at once
    assert check_one_event_id(attempts_of(records, "post-create", new_id)) != attempts[0].event_id


def test_post_finish_survives_kill_9_and_restart(start_server: StartServer, receiver: HookReceiver) -> None:
    receiver.script({"post-finish": Answer(503, "too late", delay=4)})  # past the 2 s timeout: never taken
    first = start_server("--hooks-http", receiver.url, *SLOW_TRY)
    one, two = create_upload(first, 5), create_upload(first, 3)
    ids = [upload_id(one), upload_id(two)]
    assert patch(one, 0, b"hello").status_code == 204
    assert patch(two, 0, b"abc").status_code == 204
    receiver.wait_for(lambda records: all(attempts_of(records, "post-finish", upload) for upload in ids),
                      what="both post-finish attempted")  # fmt: skip
    # Both post-finish events are being delivered, claimed by the deliverer that waits for their answers (which
    # come after its timeout): neither is taken when the server dies.
    crash(first)
    receiver.script()

    restarted = time.monotonic()
    start_server("--hooks-http", receiver.url, *SLOW_TRY, "--data-dir", str(first.data_dir))  # same data
    records = receiver.wait_for(
        lambda got: all(finished(upload)(got) for upload in ids), what="both post-finish", timeout=SLOW_CLAIM + 8
    )
    event_ids = [check_one_event_id(attempts_of(records, event, upload))
                 for event in ("post-create", "post-finish") for upload in ids]  # fmt: skip
    assert len(set(event_ids)) == 4, event_ids  # distinct events, distinct ids
    for upload, size in zip(ids, [5, 3], strict=True):
        delivered = attempts_of(records, "post-finish", upload)[-1].upload
        assert (delivered["Size"], delivered["Offset"]) == (size, size)
    # SQLite serves one process: the killed one's claims ended with it, and the restart sent both at once,
    # not when the claims would have run out.
    assert time.monotonic() - restarted < SLOW_CLAIM - 2


def test_three_instances_on_redis_deliver_each_event_once(
    start_server: StartServer, receiver: HookReceiver, redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"hooks{secrets.token_hex(4)}:"
    flags = ("--hooks-http", receiver.url, "--redis-url", redis_server.url, "--redis-prefix", prefix,
             "--data-dir", str(tmp_path / "shared-data"))  # fmt: skip
    instances = [start_server(*flags) for _ in range(3)]
    uploads = []
    for index in range(9):  # created on one instance, finished through the next
        created = create_upload(instances[index % 3], 4)
        location = instances[(index + 1) % 3].url + upload_id(created)
        assert patch(location, 0, b"data").status_code == 204
        uploads.append(upload_id(location))

    outbox = redis.Redis.from_url(redis_server.url)
    try:
        receiver.wait_for(lambda got: all(finished(upload)(got) for upload in uploads), what="every post-finish")
        # The outbox empties once each event was answered: no instance has one left to send.
        wait_until(lambda: outbox.zcard(prefix + "hooks") == 0, what="an empty outbox", timeout=10)
    finally:
        outbox.close()
    delivered: defaultdict[str, list[str]] = defaultdict(list)
    for record in receiver.received():
        if record.type in {"post-create", "post-finish"}:
            assert record.status == 200
            delivered[record.type].append(record.event_id)
    for event in ("post-create", "post-finish"):
        assert sorted(delivered[event]) == sorted(set(delivered[event])), f"an {event} delivered twice"
        assert len(delivered[event]) == len(uploads), event


class DuplicateDeliveryError(AssertionError):
    """An event was delivered (answered 2xx) more than once in a run where every attempt succeeded in time."""


BACKLOG = 32  # delivery.BATCH: one deliverer claims them all at once


def all_due(outbox: redis.Redis, prefix: str) -> bool:
    """Whether every event in the Redis outbox is due (not claimed, no retry pending): its score, whole µs
    since the epoch (state/redis.py), is past."""
    scores = cast(list[tuple[bytes, float]], outbox.zrange(prefix + "hooks", 0, -1, withscores=True))
    return all(score <= time.time() * 1e6 for _, score in scores)


def test_slow_backlog_is_delivered_once_by_three_instances(
    start_server: StartServer, receiver: HookReceiver, redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"hooks{secrets.token_hex(4)}:"
    flags = ("--hooks-http", receiver.url, "--hooks-http-retry", "0", "--hooks-http-timeout", "0.8", "--redis-url",
             redis_server.url, "--redis-prefix", prefix, "--data-dir", str(tmp_path / "shared-data"))  # fmt: skip
    receiver.script({"post-finish": Answer(500, "down")})
    recording = start_server(*flags)
    for _ in range(BACKLOG):
        assert patch(create_upload(recording, 1), 0, b"x").status_code == 204
    receiver.wait_for(lambda got: len({r.upload_id for r in got if r.type == "post-finish"}) == BACKLOG, what="all")
    recording.stop()
    outbox = redis.Redis.from_url(redis_server.url)
    try:  # every event due again: the next instance to start claims them all at once
        wait_until(lambda: all_due(outbox, prefix), what="the backlog due", timeout=2 * 0.8 + 15)
        # Each answer in 0.45 s, well within the 0.8 s timeout: a healthy receiver, only slow.
        receiver.script({"post-finish": Answer(200, "{}", delay=0.45)})
        for _ in range(3):
            start_server(*flags)
        wait_until(lambda: outbox.zcard(prefix + "hooks") == 0, what="an empty outbox", timeout=BACKLOG * 0.45 + 15)
    finally:
        outbox.close()
    delivered = Counter(r.event_id for r in receiver.received("post-finish") if r.status == 200)
    assert len(delivered) == BACKLOG
    twice = sorted(event_id for event_id, count in delivered.items() if count > 1)
    if twice:
        raise DuplicateDeliveryError(f"{len(twice)} of {BACKLOG} delivered twice: {twice}")
