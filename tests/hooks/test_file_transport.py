"""File hooks (tusserver/coordination/hooks/files.py) with real executables written by each test: `#!/bin/sh`
scripts, and one in Python as tusd's examples are, each run as a real process."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable
from pathlib import Path

import anyio
import pytest

from tusserver.coordination.hooks.dispatch import HookFailedError
from tusserver.coordination.hooks.files import FileHooks
from tusserver.coordination.hooks.model import (
    HookChangeFileInfo,
    HookEventData,
    HookHTTPRequest,
    HookHTTPResponse,
    HookRequest,
    HookResponse,
    HookUpload,
)

pytestmark = pytest.mark.anyio

BOUND = 5.0  # seconds any single invoke may take here


def write_hook(directory: Path, name: str, script: str, *, executable: bool = True) -> Path:
    path = directory / name
    path.write_text(script)
    path.chmod(0o755 if executable else 0o644)
    return path


def hook_request(
    event: str = "pre-create", *, size: int | None = 11, metadata: dict[str, str] | None = None
) -> HookRequest:
    upload = HookUpload(ID="abc", Size=size, SizeIsDeferred=size is None, Offset=5, MetaData=metadata or {})
    http = HookHTTPRequest(Method="POST", URI="/files/", Header={"Tus-Resumable": ["1.0.0"]})
    return HookRequest(Type=event, EventID="evt-1", Event=HookEventData(Upload=upload, HTTPRequest=http))


async def timed(call: Awaitable[HookResponse]) -> HookResponse:
    with anyio.fail_after(BOUND):
        return await call


async def fails(call: Awaitable[HookResponse], match: str) -> None:
    with anyio.fail_after(BOUND), pytest.raises(HookFailedError, match=match) as caught:
        await call
    assert "\n" not in str(caught.value)


def is_gone(pid: int) -> bool:
    """Whether process `pid` has ended (exited, or a zombie no one has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


async def until_gone(pid: int) -> None:
    """Polls: the kernel tells no one when an orphan dies; SIGKILL takes effect within milliseconds."""
    for _ in range(int(BOUND / 0.01)):
        if is_gone(pid):
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"process {pid} still running")


# --- what the hook gets ---------------------------------------------------------------------------------------


async def test_the_request_arrives_on_stdin_and_the_upload_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_THE_SERVER", "inherited")
    script = (
        '#!/bin/sh\ncat > stdin.json\nprintf "%s|%s|%s|%s" "$TUS_ID" "$TUS_OFFSET" "$TUS_SIZE" "$FROM_THE_SERVER" >env'
    )
    write_hook(tmp_path, "post-create", script)
    request = hook_request("post-create")
    assert await timed(FileHooks(tmp_path).invoke(request)) == HookResponse()
    assert json.loads((tmp_path / "stdin.json").read_bytes()) == json.loads(request.to_json())  # run in the directory
    assert (tmp_path / "env").read_text() == "abc|5|11|inherited"


async def test_tus_size_is_empty_while_the_length_is_deferred(tmp_path: Path) -> None:
    write_hook(tmp_path, "post-create", '#!/bin/sh\nprintf "[%s]" "$TUS_SIZE" > size\n')
    await timed(FileHooks(tmp_path).invoke(hook_request("post-create", size=None)))
    assert (tmp_path / "size").read_text() == "[]"


async def test_a_request_larger_than_a_pipe_reaches_a_hook_that_reads_it(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\nwc -c > length\n")
    request = hook_request(metadata={"filename": "x" * 300_000})
    await timed(FileHooks(tmp_path).invoke(request))
    assert int((tmp_path / "length").read_text()) == len(request.to_json())


async def test_a_hook_that_never_reads_its_stdin_is_no_failure(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\nprintf '{\"StopUpload\": true}'\n")
    request = hook_request(metadata={"filename": "x" * 300_000})  # more than the pipe holds: the write breaks
    assert (await timed(FileHooks(tmp_path).invoke(request))).StopUpload


# --- what the hook answers ------------------------------------------------------------------------------------


async def test_stdout_is_the_response(tmp_path: Path) -> None:
    answer = '{"RejectUpload": true, "HTTPResponse": {"StatusCode": 403, "Body": "no", "Headers": {"X": "y"}}}'
    write_hook(tmp_path, "pre-create", f"#!/bin/sh\nprintf '%s\\n' '{answer}'\n")
    response = await timed(FileHooks(tmp_path).invoke(hook_request()))
    assert response == HookResponse(HTTPResponse=HookHTTPResponse(StatusCode=403, Body="no"), RejectUpload=True)


async def test_a_python_hook_answers_from_the_request(tmp_path: Path) -> None:
    script = f"""#!{sys.executable}
import json, sys
upload = json.load(sys.stdin)["Event"]["Upload"]
print(json.dumps({{"ChangeFileInfo": {{"ID": "prefix-" + upload["ID"], "MetaData": {{"name": "renamed"}}}}}}))
"""
    write_hook(tmp_path, "pre-create", script)
    response = await timed(FileHooks(tmp_path).invoke(hook_request()))
    assert response.ChangeFileInfo == HookChangeFileInfo(ID="prefix-abc", MetaData={"name": "renamed"})


async def test_no_output_is_an_empty_response(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\nexit 0\n")
    assert await timed(FileHooks(tmp_path).invoke(hook_request())) == HookResponse()


async def test_an_event_without_a_file_is_an_empty_response(tmp_path: Path) -> None:
    write_hook(tmp_path, "post-finish", "#!/bin/sh\nexit 1\n")  # another event's hook
    assert await timed(FileHooks(tmp_path).invoke(hook_request("pre-create"))) == HookResponse()


async def test_stderr_is_logged_line_by_line_with_event_and_upload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tusserver.hooks")
    write_hook(tmp_path, "post-finish", "#!/bin/sh\necho 'first line' >&2\nprintf 'second' >&2\n")
    await timed(FileHooks(tmp_path).invoke(hook_request("post-finish")))
    lines = [record.getMessage() for record in caplog.records if record.name == "tusserver.hooks"]
    assert lines == ["post-finish hook for upload abc: first line", "post-finish hook for upload abc: second"]


# --- failures -------------------------------------------------------------------------------------------------


async def test_a_non_zero_exit_fails(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\necho '{}'\nexit 3\n")
    await fails(FileHooks(tmp_path).invoke(hook_request()), "pre-create hook .*: exited with status 3")


async def test_output_that_is_not_a_hook_response_fails(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\necho hello\n")
    await fails(FileHooks(tmp_path).invoke(hook_request()), "output is not a hook response")


async def test_a_file_that_cannot_be_executed_fails(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\nexit 0\n", executable=False)
    await fails(FileHooks(tmp_path).invoke(hook_request()), "not an executable file")


async def test_an_executable_without_an_interpreter_line_fails(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "exit 0\n")
    await fails(FileHooks(tmp_path).invoke(hook_request()), "could not be run")


async def test_a_hook_past_its_timeout_is_killed_with_all_it_started(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\necho $$ > hook.pid\nsleep 30 &\necho $! > child.pid\nwait\n")
    await fails(FileHooks(tmp_path, timeout=1.0).invoke(hook_request()), r"still running after 1 s, killed")
    assert is_gone(int((tmp_path / "hook.pid").read_text()))  # reaped before invoke returned
    await until_gone(int((tmp_path / "child.pid").read_text()))


async def test_output_past_the_cap_fails_at_once(tmp_path: Path) -> None:
    write_hook(tmp_path, "pre-create", "#!/bin/sh\nexec yes '{}'\n")  # would print forever
    hooks = FileHooks(tmp_path, timeout=60.0, max_output=1000)
    await fails(hooks.invoke(hook_request()), "output over 1000 bytes, killed")  # within BOUND, not the timeout


async def test_an_event_name_never_becomes_a_path(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    write_hook(tmp_path, "evil", "#!/bin/sh\ntouch ran\n")
    await fails(FileHooks(tmp_path / "hooks").invoke(hook_request("../evil")), "unknown event")
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "hooks" / "ran").exists()


def test_the_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        FileHooks(tmp_path / "missing")
