"""The embedded state store: one SQLite database in WAL mode, no server needed.

Why SQLite: every update is one atomic transaction, and in WAL mode a commit appends to the
log instead of rewriting a file, so an update costs tens of microseconds rather than the
~1.5 ms of a write-fsync-rename per update (PERF.md A4). `synchronous=NORMAL` survives a crash
of the server process (the log is in the page cache); `fsync=True` selects `synchronous=FULL`,
which also survives power loss, and moves the commit to a worker thread so the event loop
never waits for the disk. There each commit waits for the disk, so the writes that arrive while
one commits go together in the next (a group commit; see `_write`).

Checkpoints (copying the log into the database file, with an fsync of each) run on a thread of
their own, with their own connection, so the event loop's commits never wait for the disk; see
`_Checkpointer`.

Several server processes on one machine can share the file (SQLite locks it); uploads are
then still locked per process only, so run one process unless a shared locker is configured.

The hook outbox is the table `hook_outbox`, one row per event (times in whole microseconds since the
epoch). An event is inserted in the transaction of the record change that causes it, right after that
change's statement and only if that statement changed a row; a claim is one UPDATE … RETURNING, so two
processes on one file never claim the same row (SQLite serializes writers).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from tusserver.coordination.locking import Lease
from tusserver.coordination.state.listing import Position, position_of
from tusserver.coordination.state.outbox import OutboxEvent, from_micros, micros, oldest_first
from tusserver.protocol.errors import StorageFullError, UploadExistsError, UploadNotFoundError
from tusserver.protocol.lifecycle import current_state
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["SQLiteStateStore"]

T = TypeVar("T")

logger = logging.getLogger("tusserver")

_SCHEMA = (
    # owner, state and created_at (µs since the epoch) repeat what `info` holds, for the status API's listing.
    "CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, info TEXT NOT NULL, expires_at REAL,"
    " owner TEXT, state TEXT, created_at INTEGER) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS uploads_expires_at ON uploads (expires_at) WHERE expires_at IS NOT NULL",
    # One index per listing (all, by owner, by state), each in listing order: a page is one range read, never
    # a sort. By owner and state, the owner's index is read and the state filtered (one caller's uploads).
    "CREATE INDEX IF NOT EXISTS uploads_listed ON uploads (created_at, id)",
    "CREATE INDEX IF NOT EXISTS uploads_listed_by_owner ON uploads (owner, created_at, id) WHERE owner IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS uploads_listed_by_state ON uploads (state, created_at, id)",
    # A rowid table: ties in not_before are claimed in the order they were recorded.
    "CREATE TABLE IF NOT EXISTS hook_outbox (id TEXT PRIMARY KEY, event TEXT NOT NULL, upload_id TEXT NOT NULL,"
    " payload TEXT NOT NULL, created_at INTEGER NOT NULL, attempts INTEGER NOT NULL, not_before INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS hook_outbox_not_before ON hook_outbox (not_before)",
)
_INSERT = "INSERT INTO uploads (id, info, expires_at, owner, state, created_at) VALUES (?, ?, ?, ?, ?, ?)"
# Owner and created_at never change after the INSERT. Setting the state rewrites its index entry even when it
# is unchanged (~5 µs a save, measured); knowing the stored state would take a read first, which costs more.
_UPDATE = "UPDATE uploads SET info = ?, expires_at = ?, state = ? WHERE id = ?"
_COLUMNS = "id, event, upload_id, payload, created_at, attempts, not_before"
# An id the outbox holds already is recorded: the event is not recorded twice, and the record change stands.
_RECORD_EVENT = f"INSERT OR IGNORE INTO hook_outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_CLAIM = (
    "UPDATE hook_outbox SET not_before = ?, attempts = attempts + 1 WHERE id IN"
    f" (SELECT id FROM hook_outbox WHERE not_before <= ? ORDER BY not_before, rowid LIMIT ?) RETURNING {_COLUMNS}"
)


_CHECKPOINT_PAGES = 16384
_CHECKPOINT_INTERVAL = 1.0  # seconds between background checkpoints
_CHECKPOINT_COMMITS = 1000  # and commits since the last one (a few MiB of log)


def _expires(info: UploadInfo) -> float | None:
    return info.expires_at.timestamp() if info.expires_at else None


def _listed(info: UploadInfo) -> tuple[str | None, str, int]:
    """The listing columns of a record: owner, state, created_at."""
    return info.owner, current_state(info), position_of(info).created


_LISTING_COLUMNS = ("owner TEXT", "state TEXT", "created_at INTEGER")
_BATCH = "SELECT id, info FROM uploads WHERE id > ? ORDER BY id LIMIT 1000"


class SQLiteStateStore:
    """Upload records in a SQLite file (see `UploadStateStore`).

    Args:
        path: the database file; its directory is created if missing.
        fsync: commit with `synchronous=FULL` on a worker thread (durable across power loss).
        checkpoint_interval: seconds between background checkpoints; None leaves them all to the commits.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        checkpoint_interval: float | None = _CHECKPOINT_INTERVAL,
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=5000")
        # The commit that takes the log past this size checkpoints what the background checkpointer has not
        # (then the log restarts from its beginning). Without the checkpointer, that commit would fsync up to
        # 64 MiB of log on the event loop: a 240 ms stall measured here.
        self._db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        self._db.execute(f"PRAGMA journal_size_limit={_CHECKPOINT_PAGES * 4096}")
        self._migrate()
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._fsync = fsync
        self._lock = threading.Lock()  # one statement at a time, whichever thread runs it
        # With fsync, a commit holds `_db` while the disk syncs; the event loop's reads use their own
        # connection rather than wait for it (WAL lets readers and a writer run at once).
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False) if fsync else None
        if self._reader is not None:
            self._reader.execute("PRAGMA busy_timeout=5000")
        self._batch: list[_Write] = []  # with fsync: the writes waiting for the next group commit
        self._committing = anyio.Lock()
        self._checkpointer = _Checkpointer(path, checkpoint_interval) if checkpoint_interval else None
        if self._checkpointer is not None:  # a store dropped without aclose() does not leave its thread running
            weakref.finalize(self, self._checkpointer.signal_stop)

    def _migrate(self) -> None:
        # Databases written before expiration existed lack the column; their records never expire.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(uploads)")}
        if columns and "expires_at" not in columns:
            self._db.execute("ALTER TABLE uploads ADD COLUMN expires_at REAL")
        if columns and "created_at" not in columns:
            self._add_listing_columns()

    def _add_listing_columns(self) -> None:
        """Databases written before the status API lack the listing columns: added and filled from each record,
        in one transaction (another process opening the file at the same time waits, then finds them)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if "created_at" not in {row[1] for row in db.execute("PRAGMA table_info(uploads)")}:
                for column in _LISTING_COLUMNS:
                    db.execute(f"ALTER TABLE uploads ADD COLUMN {column}")
                last = ""
                # In batches by id: the records are read as they are filled, never all at once.
                while batch := db.execute(_BATCH, (last,)).fetchall():
                    filled = [(*_listed(UploadInfo.model_validate_json(info)), upload_id) for upload_id, info in batch]
                    db.executemany("UPDATE uploads SET owner = ?, state = ?, created_at = ? WHERE id = ?", filled)
                    last = batch[-1][0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _run(self, fn: Callable[[], T], *, commit: bool = True) -> T:
        def locked() -> T:
            with self._lock:
                return fn()

        if commit and self._checkpointer is not None:
            self._checkpointer.commits += 1
        # Only a FULL-synchronous commit waits for the disk; reads never do, so they stay on the loop.
        if self._fsync and commit:
            return await anyio.to_thread.run_sync(locked)
        return locked()

    async def _write(self, statement: str, row: tuple[object, ...], *, events: Sequence[OutboxEvent] = ()) -> _Write:
        """`_commit_write`, with a full disk answered as such (507), not as an unexpected failure."""
        try:
            return await self._commit_write(_Write(statement, row, events))
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:  # None: not from SQLite itself
                raise StorageFullError("no space left for the upload records; retry later") from exc
            raise

    async def _commit_write(self, write: _Write) -> _Write:
        """Run one write (a statement, and the events it causes) in a transaction of its own, or with
        `fsync` in a group commit; returns it with its outcome.

        With `fsync`, a commit waits for the disk (~1 ms here), and commits run one at a time, so
        they capped a server at ~400 small uploads a second. The first write to find no batch
        open starts one and commits it once the commit before it is done; the writes arriving
        meanwhile join it and wait. Each write's outcome is its own (a duplicate id fails only its
        INSERT); a failed commit fails every write in it.
        """
        if not self._fsync:
            if not write.events:  # one statement commits by itself (autocommit), as cheap as a write gets
                await self._run(functools.partial(write.run, self._db))
                return write
            await self._run(functools.partial(self._commit, [write]))  # with its events: one transaction
        else:
            await self._group_commit(write)
        if write.error is not None:
            raise write.error
        return write

    async def _group_commit(self, write: _Write) -> None:
        write.done = anyio.Event()
        self._batch.append(write)
        if len(self._batch) > 1:
            await write.done.wait()
        else:
            with anyio.CancelScope(shield=True):  # the writes that joined depend on this one
                async with self._committing:
                    batch, self._batch = self._batch, []
                    try:
                        await self._run(functools.partial(self._commit, batch))
                    finally:
                        for joined in batch:
                            joined.done.set()

    def _commit(self, batch: list[_Write]) -> None:
        """The batch's writes in one transaction on the write connection (a worker thread's, with fsync)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                try:
                    write.run(db)
                except sqlite3.IntegrityError as exc:  # this write fails alone (its statement changed nothing)
                    write.error = exc
                    continue
                write.record_events(db)  # any failure here fails the whole batch: never a change without them
            db.execute("COMMIT")
        except Exception as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for write in batch:
                write.error = exc
            raise

    async def create(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Insert a record, and its events in the same transaction; raises UploadExistsError for a duplicate id."""
        row = (info.id, info.model_dump_json(), _expires(info), *_listed(info))
        try:
            await self._write(_INSERT, row, events=events)
        except sqlite3.IntegrityError:
            raise UploadExistsError() from None

    async def _read(self, query: str, row: tuple[object, ...]) -> list[Any]:
        """The rows of a query, read on the event loop (a read never waits for the disk)."""
        if self._reader is not None:
            return self._reader.execute(query, row).fetchall()
        return await self._run(lambda: self._db.execute(query, row).fetchall(), commit=False)

    async def get(self, upload_id: str) -> UploadInfo:
        """Load a record; raises UploadNotFoundError."""
        rows = await self._read("SELECT info FROM uploads WHERE id = ?", (upload_id,))
        if not rows:
            raise UploadNotFoundError()
        return UploadInfo.model_validate_json(rows[0][0])

    async def save(self, info: UploadInfo, *, lease: Lease | None = None, events: Sequence[OutboxEvent] = ()) -> None:
        """Replace a record in one transaction, with its events; raises UploadNotFoundError if it was deleted."""
        row = (info.model_dump_json(), _expires(info), current_state(info), info.id)
        saved = await self._write(_UPDATE, row, events=events)
        if saved.rowcount == 0:
            raise UploadNotFoundError()

    async def delete(self, upload_id: str, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Remove a record; its events are recorded in the same transaction if it was there."""
        await self._write("DELETE FROM uploads WHERE id = ?", (upload_id,), events=events)

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        """Ids of records that expire at or before `before`, read in one query."""
        for (upload_id,) in await self._read("SELECT id FROM uploads WHERE expires_at <= ?", (before.timestamp(),)):
            yield upload_id

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        state: UploadState | None = None,
        before: Position | None = None,
        limit: int = 100,
    ) -> list[UploadInfo]:
        """One page of records (see `SupportsListing`), one range read of a listing index."""
        if limit < 1:
            return []  # SQLite reads a negative LIMIT as none at all
        conditions: list[str] = ["1"]  # fixed fragments only: every value is a parameter
        row: list[object] = []
        if owner is not None:
            conditions.append("owner = ?")
            row.append(owner)
        if state is not None:
            conditions.append("state = ?")
            row.append(state.value)
        if before is not None:
            conditions.append("(created_at, id) < (?, ?)")
            row += [before.created, before.upload_id]
        query = f"SELECT info FROM uploads WHERE {' AND '.join(conditions)} ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = await self._read(query, (*row, limit))
        return [UploadInfo.model_validate_json(info) for (info,) in rows]

    async def outbox_due(self, now: datetime, *, limit: int, claim_for: float) -> list[OutboxEvent]:
        """Claim due events with one UPDATE … RETURNING (see `SupportsOutbox.outbox_due`)."""
        if limit < 1:
            return []  # SQLite reads a negative LIMIT as none at all
        until = micros(now + timedelta(seconds=claim_for))
        claimed = await self._write(_CLAIM, (until, micros(now), limit))
        return oldest_first(_event(row) for row in claimed.rows)

    async def outbox_done(self, *event_ids: str) -> None:
        """Remove events with one DELETE."""
        if event_ids:
            marks = ", ".join("?" * len(event_ids))
            await self._write(f"DELETE FROM hook_outbox WHERE id IN ({marks})", tuple(event_ids))

    async def outbox_resume(self, now: datetime) -> None:
        """Make every event due now: one process at a time serves a database (the in-process locker), so a
        claim found at start-up is a stopped process's. (Retries waiting for their backoff go now too.)"""
        await self._write("UPDATE hook_outbox SET not_before = ? WHERE not_before > ?", (micros(now),) * 2)

    async def outbox_retry(self, event_id: str, not_before: datetime) -> None:
        """Make an event due at `not_before`."""
        await self._write("UPDATE hook_outbox SET not_before = ? WHERE id = ?", (micros(not_before), event_id))

    async def aclose(self) -> None:
        """Stop the checkpointer and close the database."""
        if self._checkpointer is not None:
            await anyio.to_thread.run_sync(self._checkpointer.stop)
        if self._reader is not None:
            self._reader.close()
        self._db.close()


def _event(row: tuple[Any, ...]) -> OutboxEvent:
    event_id, event, upload_id, payload, created_at, attempts, not_before = row
    return OutboxEvent(
        id=event_id,
        event=event,
        upload_id=upload_id,
        payload=payload,
        created_at=from_micros(created_at),
        attempts=attempts,
        not_before=from_micros(not_before),
    )


def _event_row(event: OutboxEvent) -> tuple[object, ...]:
    return (event.id, event.event, event.upload_id, event.payload, micros(event.created_at), event.attempts,
            micros(event.not_before))  # fmt: skip


class _Write:
    """One write statement, and the events it causes, in a group commit; its outcome once the commit is over."""

    __slots__ = ("done", "error", "events", "row", "rowcount", "rows", "statement")

    def __init__(self, statement: str, row: tuple[object, ...], events: Sequence[OutboxEvent] = ()) -> None:
        self.statement, self.row, self.events = statement, row, events
        self.rowcount = 0
        self.rows: list[Any] = []  # what a statement with RETURNING returned
        self.error: Exception | None = None
        self.done: anyio.Event  # set by a group commit once it is over (made only for one)

    def run(self, db: sqlite3.Connection) -> None:
        """Run the statement (to its end: a RETURNING statement left unread would be cut short)."""
        cursor = db.execute(self.statement, self.row)
        self.rows = cursor.fetchall()
        self.rowcount = cursor.rowcount

    def record_events(self, db: sqlite3.Connection) -> None:
        """Insert the events, if the statement changed a row (a refused change causes none)."""
        if self.rowcount > 0:
            for event in self.events:
                db.execute(_RECORD_EVENT, _event_row(event))


class _Checkpointer:
    """Checkpoints the log on a thread of its own (PRAGMA wal_checkpoint(PASSIVE)), at most every `interval`
    seconds, and only once `_CHECKPOINT_COMMITS` commits have added to the log since the last time.

    A passive checkpoint copies what no reader needs and never blocks the server's connection, which
    keeps committing meanwhile. It rarely catches up with a busy log completely, so the log does not
    restart from there; but when a commit reaches `wal_autocheckpoint`, almost every page is already
    copied and on disk, and that commit's checkpoint, which restarts the log, has little left to do
    (worst commit measured here: 26 ms instead of 240 ms). A checkpoint syncs the disk (a cache flush
    of the whole device), so a server with little state to write, such as one receiving a few big
    uploads, is left alone.
    """

    def __init__(self, path: str | os.PathLike[str], interval: float) -> None:
        self.commits = 0  # counted by the store's connection, read by the thread
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path, interval), name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, path: str | os.PathLike[str], interval: float) -> None:
        uri = Path(path).resolve().as_uri() + "?mode=rw"  # never creates a database that was removed
        checkpointed = 0
        while not self._stopping.wait(interval):
            if self.commits - checkpointed < _CHECKPOINT_COMMITS:
                continue
            checkpointed = self.commits
            try:  # a connection per pass: nothing stays open between passes
                with contextlib.closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as db:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the commits' own checkpoints still run
                logger.warning("background checkpoint failed: %s", exc)

    def signal_stop(self) -> None:
        """Ask the thread to end after its current checkpoint."""
        self._stopping.set()

    def stop(self) -> None:
        """Let the current checkpoint finish, then end the thread."""
        self.signal_stop()
        self._thread.join()
