"""File hooks: an executable per event in a directory, as tusd's `-hooks-dir` (and Git's hooks).

`DIRECTORY/<event>` (`hooks/pre-create`, no extension) runs in DIRECTORY with the JSON request on stdin and
`TUS_ID`, `TUS_OFFSET` and `TUS_SIZE` (empty while the length is deferred) added to the server's
environment. Its stdout is the JSON response (nothing: an empty response); each line of its stderr is
logged with the event and the upload. An event without a file is an empty response, as in tusd, so a
directory holds only the hooks it needs. A non-zero exit, a file that is there but cannot be run, output
that is not a hook response, or running past `timeout` is a failure.

The hook runs in a session of its own, so that a failure (a timeout, output over the cap, the server
shutting down) kills everything it started, not just its first process. A hook that exits 0 may leave
work running in the background, if that work lets go of stdout and stderr (`job >log 2>&1 &`): the answer
is read until they close.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from tusserver.coordination.hooks.dispatch import HookFailedError
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookRequest, HookResponse, HookUpload, InvalidHookResponseError

__all__ = ["MAX_OUTPUT", "FileHooks"]

logger = logging.getLogger("tusserver.hooks")

MAX_OUTPUT = 64 * 1024
"""The most stdout taken from a hook, in bytes: the same cap as an HTTP hook's answer (http.MAX_RESPONSE)."""
_LONGEST_LOG_LINE = 8 * 1024  # a stderr "line" without a newline is logged in pieces of this size


class FileHooks:
    """Runs `directory/<event>` for each event.

    Args:
        directory: holds the hook executables, named after the events.
        timeout: seconds a hook may run; then it is killed and the event fails.
        max_output: the most stdout taken, in bytes; more is a failure.

    Raises:
        ValueError: `directory` is not a directory, or a number is out of range.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, timeout: float = 15.0, max_output: int = MAX_OUTPUT
    ) -> None:
        self.directory = Path(directory).resolve()  # the hooks run in it: an absolute path stays right there
        if not self.directory.is_dir():
            raise ValueError(f"hooks directory {directory} is not a directory")
        if timeout <= 0 or max_output < 0:
            raise ValueError("file hooks need timeout > 0 and max_output >= 0")
        self.timeout, self.max_output = timeout, max_output

    async def invoke(self, request: HookRequest) -> HookResponse:
        """Run the event's executable, if there is one, and decode what it printed.

        Raises:
            HookFailedError: an unknown event, a file that cannot be run, a non-zero exit, a timeout, or
                output that is not a hook response.
        """
        try:
            event = HookEvent(request.Type)
        except ValueError:
            raise HookFailedError(f"no file hook for unknown event {request.Type!r}") from None
        path = self.directory / event.value  # from the enum, never from the request: no path from input
        if not await anyio.to_thread.run_sync(_runnable, path):
            return HookResponse()
        output = await self._run(path, event, request)
        try:
            return HookResponse.decode(output)
        except InvalidHookResponseError as exc:
            raise HookFailedError(f"{event} hook {path}: output is not a hook response: {exc}") from None

    async def aclose(self) -> None:
        """Nothing to release: each hook's process ends with its event."""

    async def _run(self, path: Path, event: HookEvent, request: HookRequest) -> bytes:
        """Run the hook to its end and return its stdout; on any failure, kill its whole session."""
        try:
            process = await anyio.open_process(
                [path], cwd=self.directory, env=_environment(request.Event.Upload), start_new_session=True
            )
        except OSError as exc:  # no `#!` line, a missing interpreter, a mount without exec
            raise HookFailedError(f"{event} hook {path}: could not be run: {exc.strerror or exc}") from None
        code, output, exited = None, None, False
        try:
            with anyio.fail_after(self.timeout):
                code, output = await self._communicate(process, event, request)
            exited = output is not None
        except TimeoutError:
            raise HookFailedError(f"{event} hook {path}: still running after {self.timeout:g} s, killed") from None
        finally:
            with anyio.CancelScope(shield=True):
                if not exited:
                    _kill_session(process)
                await process.aclose()
        if output is None:
            raise HookFailedError(f"{event} hook {path}: output over {self.max_output} bytes, killed")
        if code != 0:
            raise HookFailedError(f"{event} hook {path}: {_exit_reason(code)}")
        return output

    async def _communicate(
        self, process: Process, event: HookEvent, request: HookRequest
    ) -> tuple[int | None, bytes | None]:
        """Feed stdin, log stderr and read stdout all at once (a hook may write before it reads); returns
        the exit code and stdout, or (None, None) as soon as stdout passes the cap."""
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
        assert stdin is not None, "open_process pipes all three by default"
        assert stdout is not None
        assert stderr is not None
        code = None
        async with anyio.create_task_group() as group:
            group.start_soon(_feed, stdin, request.to_json())
            group.start_soon(_log_lines, stderr, event, request.Event.Upload.ID)
            output = await _read_at_most(stdout, self.max_output)
            if output is None:
                group.cancel_scope.cancel()  # stop feeding and logging: the caller kills the hook
            else:
                code = await process.wait()
        return code, output


def _runnable(path: Path) -> bool:
    """Whether the hook is there to run (checked in a worker thread: the directory may be a slow mount).

    Raises:
        HookFailedError: the file is there but is not an executable file (a missed `chmod +x` must not
            silently let every upload through).
    """
    if not path.exists():
        return False
    if not path.is_file() or not os.access(path, os.X_OK):
        raise HookFailedError(f"{path.name} hook {path}: not an executable file")
    return True


def _environment(upload: HookUpload) -> dict[str, str]:
    size = "" if upload.Size is None or upload.SizeIsDeferred else str(upload.Size)
    return {**os.environ, "TUS_ID": upload.ID, "TUS_OFFSET": str(upload.Offset), "TUS_SIZE": size}


async def _feed(stdin: ByteSendStream, data: bytes) -> None:
    """Write the request and close stdin; a hook that exits without reading it is no failure of ours."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stdin.send(data)
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stdin.aclose()


async def _read_at_most(stream: ByteReceiveStream, limit: int) -> bytes | None:
    """The stream to its end, or None as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _log_lines(stderr: ByteReceiveStream, event: HookEvent, upload_id: str) -> None:
    """Log each stderr line as it comes, so a hook's progress shows while it runs."""
    pending = b""
    async for chunk in stderr:
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            _log(event, upload_id, line)
        while len(pending) > _LONGEST_LOG_LINE:
            _log(event, upload_id, pending[:_LONGEST_LOG_LINE])
            pending = pending[_LONGEST_LOG_LINE:]
    if pending:
        _log(event, upload_id, pending)


def _log(event: HookEvent, upload_id: str, line: bytes) -> None:
    logger.info("%s hook for upload %s: %s", event, upload_id or "-", line.decode(errors="replace").rstrip("\r"))


def _kill_session(process: Process) -> None:
    """SIGKILL the hook and everything it started (its session's process group, whose id is its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
