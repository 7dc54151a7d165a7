"""The client's pure decisions (`tusserver.client.protocol`), the progress line and the resume store; no server.

Item numbers are those of ../shared/PROTOCOL.md.
"""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tusserver.client.progress import ProgressBar, human_bytes
from tusserver.client.protocol import (
    MIN_PART,
    Capabilities,
    Outcome,
    backoff,
    classify,
    encode_metadata,
    format_digest,
    parse_content_range,
    parse_digest,
    plan_parts,
    read_metadata,
    retry_after,
    safe_name,
)
from tusserver.client.store import DownloadRecord, PartRecord, ResumeStore, UploadRecord

MiB = 1024 * 1024


def test_capabilities_come_from_options_headers() -> None:
    # Items 8 and 10: Tus-Extension lists the extensions, Tus-Checksum-Algorithm the algorithms.
    headers = {
        "Tus-Extension": "creation,creation-with-upload, checksum,concatenation",
        "Tus-Checksum-Algorithm": "sha1,md5",
        "Tus-Max-Size": "1073741824",
    }
    capabilities = Capabilities.from_headers(headers)
    assert capabilities.concatenation
    assert capabilities.creation_with_upload
    assert capabilities.checksum_algorithms == ("sha1", "md5")
    assert capabilities.max_size == 1 << 30
    # @tus/server: no concatenation, no checksum; an algorithm list without `checksum` counts for nothing.
    node = Capabilities.from_headers({"tus-extension": "creation,termination", "tus-checksum-algorithm": "sha1"})
    assert not node.concatenation
    assert node.checksum_algorithms == ()


@pytest.mark.parametrize(
    ("length", "parallel", "expected"),
    [
        (0, 4, [(0, 0)]),
        (10 * MiB, 4, [(0, 10 * MiB)]),  # too small to split
        (2 * MIN_PART, 1, [(0, 2 * MIN_PART)]),
        (2 * MIN_PART, 4, [(0, MIN_PART), (MIN_PART, MIN_PART)]),
        (100 * MiB + 1, 4, [(0, 26 * MiB), (26 * MiB, 26 * MiB), (52 * MiB, 26 * MiB), (78 * MiB, 22 * MiB + 1)]),
    ],
)
def test_parts_are_contiguous_whole_mib_and_at_least_the_minimum(
    length: int, parallel: int, expected: list[tuple[int, int]]
) -> None:
    parts = plan_parts(length, parallel)
    assert parts == expected
    assert sum(size for _, size in parts) == length
    assert all(start + size == following for (start, size), (following, _) in itertools.pairwise(parts))


def test_parts_never_exceed_the_servers_concat_limit() -> None:
    assert len(plan_parts(1000 * MIN_PART, 100, max_parts=100)) == 100
    assert len(plan_parts(1000 * MIN_PART, 100, max_parts=7)) == 7


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (204, "", Outcome.DONE),
        (409, "", Outcome.RESYNC),  # item 19: offsets differ; HEAD tells the right one
        (423, "", Outcome.RETRY),  # item 28: busy upload
        (460, "", Outcome.RETRY),  # item 62: the chunk was discarded; send it again
        (500, "ERR_READ_TIMEOUT: ...", Outcome.RETRY),  # item 27
        (503, "", Outcome.RETRY),
        (507, "", Outcome.RETRY),
        (400, "ERR_UPLOAD_INTERRUPTED: another request", Outcome.RESYNC),
        (400, "ERR_INVALID_OFFSET: bad", Outcome.FAIL),
        (404, "", Outcome.GONE),
        (410, "", Outcome.GONE),
        (413, "", Outcome.FAIL),
        (403, "", Outcome.FAIL),
    ],
)
def test_statuses_map_to_what_the_client_does(status: int, body: str, outcome: Outcome) -> None:
    assert classify(status, body) is outcome


def test_retry_after_takes_seconds_or_a_date_and_is_capped() -> None:
    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    assert retry_after("1", now) == 1.0
    assert retry_after("Mon, 07 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Mon, 07 Dec 2026 11:00:00 GMT", now) == 0.0
    assert retry_after("86400", now) == 300.0
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff(attempt, base=0.5, cap=30.0, jitter=0.5) for attempt in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(0, base=0.5, cap=30.0, jitter=0.0) == 0.25
    assert backoff(10_000, base=0.5, cap=30.0, jitter=0.99) < 45.0


def test_metadata_round_trips_and_is_padded_base64() -> None:
    # Item 39: `key base64`, a bare key for an empty value; values are padded base64.
    value = encode_metadata({"filename": "world_domination_plan.pdf", "is_confidential": "", "name": "é"})
    assert value == "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,name w6k="
    assert read_metadata(value) == {"filename": "world_domination_plan.pdf", "is_confidential": "", "name": "é"}
    assert read_metadata("k !!!") == {}  # a foreign server's malformed header is no metadata, not a crash
    assert read_metadata(None) == {}


def test_digest_is_declared_as_algorithm_and_base64() -> None:
    declared = format_digest("sha1", bytes.fromhex("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"))
    assert declared == "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00="  # item 61's vector for "hello"
    assert parse_digest(declared) == ("sha1", bytes.fromhex("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"))
    assert parse_digest("md4 qvTGHdzF6KLavt4PO0gs2a6pQ00=") is None
    assert parse_digest("sha1 not base64!") is None
    assert parse_digest(None) is None


def test_content_range_and_download_names() -> None:
    assert parse_content_range("bytes 100-199/1000") == (100, 199, 1000)
    assert parse_content_range("bytes 0-0/*") == (0, 0, None)
    assert parse_content_range("bytes */1000") is None
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("dir\\evil\r\n.txt") == "evil.txt"
    assert safe_name("..") is None
    assert safe_name("/files/") is None


def test_progress_line_shows_percent_rate_and_eta() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar(out, total=100 * MiB, files=2, clock=lambda: now[0])
    bar.update(Path("a"), 0, 50 * MiB)
    now[0] = 2.0
    bar.update(Path("a"), 50 * MiB, 50 * MiB)
    line = out.getvalue().rsplit("\r", 1)[-1]
    assert line.startswith(" 50.0%  50 MiB of 100 MiB  25 MiB/s  ETA 0:00:02  1/2 files")
    bar.close()
    assert out.getvalue().endswith("\n")
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**4) == "3 TiB"


def test_store_keeps_records_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "store.sqlite3"
    first = ResumeStore(path)
    record = UploadRecord(10, parts=[PartRecord("http://h/files/a", 0, 10)], digest="xxh128 AAAA")
    first.put_upload("k", record)
    first.put_download("d", DownloadRecord('"etag"', 10))
    first.close()
    second = ResumeStore(path)  # another process, after a reboot
    assert second.get_upload("k") == record
    assert record.url == "http://h/files/a"
    assert second.get_download("d") == DownloadRecord('"etag"', 10)
    second.forget("k")
    assert second.get_upload("k") is None
    second.close()
