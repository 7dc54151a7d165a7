"""The resume store: a small SQLite file mapping a file's fingerprint to its upload URLs, and a download to its
ETag, so that running the same command again continues where it stopped, after a Ctrl-C, a crash or a reboot.

SQLite, not a JSON file: several `tusserver upload` processes may run at once (one per directory, say), and
each write is one atomic transaction that survives the process being killed half-way. An upload is recorded as
soon as the server has created it, before any byte is sent, so even a kill at the first PATCH resumes.
Entries untouched for `MAX_AGE` are dropped: servers expire unfinished uploads long before (tusserver: 7 days).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MAX_AGE", "DownloadRecord", "PartRecord", "ResumeStore", "UploadRecord", "default_store_path"]

MAX_AGE = 90 * 86400.0
STORE_VARIABLE = "TUSSERVER_CLIENT_STORE"


def default_store_path() -> Path:
    """`$TUSSERVER_CLIENT_STORE`, else `client.sqlite3` in the user's data directory (XDG on Linux)."""
    if os.environ.get(STORE_VARIABLE):
        return Path(os.environ[STORE_VARIABLE]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tusserver" / "client.sqlite3"


@dataclass
class PartRecord:
    """One upload on the server: the whole file, or one partial upload of it (bytes `start` to `start+length`)."""

    url: str
    start: int
    length: int


@dataclass
class UploadRecord:
    """What the store keeps about one file's upload.

    Attributes:
        parts: the uploads its bytes go to; one for a single stream, one per part for parallel uploads.
        final: the final (concatenated) upload's URL once it is created; None for a single stream.
        digest: the whole-file digest (`<algorithm> <base64>`), so that a resume does not hash the file again.
        done: the upload has finished; running again only checks that the server still has it.
    """

    length: int
    parts: list[PartRecord] = field(default_factory=list)
    final: str | None = None
    digest: str | None = None
    done: bool = False

    @property
    def url(self) -> str | None:
        """The URL the file ends up at: the final upload, or the single upload."""
        if self.final is not None:
            return self.final
        return self.parts[0].url if len(self.parts) == 1 else None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> UploadRecord:
        data: dict[str, Any] = json.loads(text)
        parts = [PartRecord(**part) for part in data.pop("parts", [])]
        return cls(parts=parts, **data)


@dataclass
class DownloadRecord:
    """A download in progress: the ETag its first bytes came with, which the rest must match."""

    etag: str | None
    length: int | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class ResumeStore:
    """A key-value table in SQLite; safe to share between threads and processes.

    Args:
        path: the database file (created with its directory); ":memory:" for a store that lives with the
            process; None for `default_store_path()`.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = str(default_store_path() if path is None else path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT, updated REAL)")
            self._db.execute("DELETE FROM entries WHERE updated < ?", (time.time() - MAX_AGE,))

    def _get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _put(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, value, time.time()))

    def get_upload(self, key: str) -> UploadRecord | None:
        """The record of a fingerprint, None if there is none (or it is unreadable: then it starts afresh)."""
        text = self._get("upload:" + key)
        try:
            return None if text is None else UploadRecord.from_json(text)
        except (ValueError, TypeError):
            return None

    def put_upload(self, key: str, record: UploadRecord) -> None:
        self._put("upload:" + key, record.to_json())

    def get_download(self, key: str) -> DownloadRecord | None:
        text = self._get("download:" + key)
        try:
            return None if text is None else DownloadRecord(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def put_download(self, key: str, record: DownloadRecord) -> None:
        self._put("download:" + key, record.to_json())

    def forget(self, key: str) -> None:
        """Drop both kinds of record under `key`."""
        with self._lock:
            self._db.execute("DELETE FROM entries WHERE key IN (?, ?)", ("upload:" + key, "download:" + key))

    def close(self) -> None:
        with self._lock:
            self._db.close()
