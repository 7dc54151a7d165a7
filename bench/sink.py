"""The hardware ceiling: a plain socket server that writes each request body to a file, one write() per recv.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) and just enough tus for the W1, W2 and W3 clients:
POST /files/ creates an empty file and answers 201 with a Location, PATCH /files/<name> writes the body at
Upload-Offset and answers 204, PUT writes the body from offset 0, HEAD answers 200 with the file's size as
Upload-Offset. There is no locking, no state, no validation
beyond what keeps the sink inside its directory: it is what "receive bytes and put them on disk" costs in Python.

Usage: python bench/sink.py --port PORT --dir DIRECTORY
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

RECV_BUFFER = 1 << 20
MAX_HEADER = 64 << 10
NAME = re.compile(r"/files/([A-Za-z0-9._-]{1,128})")


class BadRequest(Exception):
    """The request is outside what the sink speaks; the connection is answered 400 and closed."""


class Connection:
    """One client connection: reads requests one after another until the client closes it."""

    def __init__(self, sock: socket.socket, directory: Path, counter: itertools.count[int]) -> None:
        self.sock = sock
        self.directory = directory
        self.counter = counter
        self.buffer = bytearray(RECV_BUFFER)
        self.pending = b""  # bytes received past the end of the previous request

    def serve(self) -> None:
        try:
            while self._one_request():
                pass
        except BadRequest as exc:
            self._respond(f"400 Bad Request ({exc})", {"Connection": "close"})
        except OSError:
            pass
        finally:
            self.sock.close()

    def _one_request(self) -> bool:
        head = self._read_head()
        if head is None:
            return False
        method, target, headers = _parse_head(head)
        length = int(headers.get("content-length", "0"))
        if "chunked" in headers.get("transfer-encoding", ""):
            raise BadRequest("chunked bodies are not supported")
        if method == "POST":
            self._discard(length)
            name = str(next(self.counter))
            (self.directory / name).touch()
            self._respond("201 Created", {"Location": f"/files/{name}", "Upload-Offset": "0"})
        elif method in {"PATCH", "PUT"}:
            offset = int(headers.get("upload-offset", "0")) if method == "PATCH" else 0
            end = self._store(self._path(target), offset, length)
            self._respond("204 No Content", {"Upload-Offset": str(end)})
        elif method == "HEAD":
            self._respond("200 OK", {"Upload-Offset": str(self._path(target).stat().st_size)})
        else:
            self._discard(length)
            self._respond("204 No Content", {})
        return headers.get("connection", "").lower() != "close"

    def _read_head(self) -> bytes | None:
        data = self.pending
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEADER:
                raise BadRequest("header too large")
            chunk = self.sock.recv(65536)
            if not chunk:
                if data:
                    raise BadRequest("connection closed inside a header")
                return None
            data += chunk
        head, _, self.pending = data.partition(b"\r\n\r\n")
        return head

    def _path(self, target: str) -> Path:
        match = NAME.fullmatch(target.split("?", 1)[0])
        if not match or match.group(1).startswith("."):
            raise BadRequest("bad target")
        return self.directory / match.group(1)

    def _store(self, path: Path, offset: int, length: int) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            remaining = length - self._write_pending(fd, length)
            view = memoryview(self.buffer)
            while remaining > 0:
                received = self.sock.recv_into(view, min(remaining, RECV_BUFFER))
                if received == 0:
                    raise OSError("client closed inside a body")
                _write_all(fd, view[:received])
                remaining -= received
        finally:
            os.close(fd)
        return offset + length

    def _write_pending(self, fd: int, length: int) -> int:
        part, self.pending = self.pending[:length], self.pending[length:]
        if part:
            _write_all(fd, memoryview(part))
        return len(part)

    def _discard(self, length: int) -> None:
        part, self.pending = self.pending[:length], self.pending[length:]
        remaining = length - len(part)
        while remaining > 0:
            received = self.sock.recv_into(self.buffer, min(remaining, RECV_BUFFER))
            if received == 0:
                raise OSError("client closed inside a body")
            remaining -= received

    def _respond(self, status: str, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status}", "Tus-Resumable: 1.0.0", "Content-Length: 0"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line")
    headers: dict[str, str] = {}
    for line in header_lines:
        key, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("bad header line")
        headers[key.strip().lower()] = value.strip()
    return parts[0].upper(), parts[1], headers


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def serve(port: int, directory: Path) -> None:
    """Accept connections on 127.0.0.1:port forever; each connection gets a thread."""
    counter = itertools.count(1)
    with socket.create_server(("127.0.0.1", port), backlog=128) as listener:
        print(f"sink listening on 127.0.0.1:{port}", flush=True)
        while True:
            sock, _ = listener.accept()
            connection = Connection(sock, directory, counter)
            threading.Thread(target=connection.serve, daemon=True).start()


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit)
    args.dir.mkdir(parents=True, exist_ok=True)
    serve(args.port, args.dir)


if __name__ == "__main__":
    main()
