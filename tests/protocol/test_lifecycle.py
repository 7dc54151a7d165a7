"""Issue 21, pure: the life cycle's transitions (tusserver.protocol.lifecycle), the whole-file digest a client
declares and its Repr-Digest (tusserver.protocol.digests), and the expiry of partial uploads (rules.expiry)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from storage_backends.base import StorageRef
from tusserver.protocol import errors, lifecycle
from tusserver.protocol.digests import check_digest, declared_digest, empty_digest, repr_digest
from tusserver.protocol.headers import CreateRequest
from tusserver.protocol.lifecycle import Verdict
from tusserver.protocol.model import UploadInfo, UploadState
from tusserver.protocol.rules import expiry, plan_create

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=7)
HELLO_SHA256 = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()


def upload(**fields: object) -> UploadInfo:
    """A complete upload of 5 bytes, created at T0, with `fields` changed."""
    base = UploadInfo(id="u1", length=5, offset=5, storage=StorageRef(backend="memory", key="u1"), created_at=T0)
    return base.model_copy(update=fields)


def metadata_checksum(value: str) -> dict[str, str]:
    return {"checksum": base64.b64encode(value.encode()).decode()}


def test_legacy_complete_record_reads_as_accepted() -> None:
    """A record written before the life cycle (default state, no finished time) was never judged: accepted."""
    assert lifecycle.current_state(upload()) is UploadState.ACCEPTED
    assert lifecycle.current_state(upload(offset=2)) is UploadState.UPLOADING


@pytest.mark.parametrize(
    ("verdict", "state", "reason"),
    [
        (Verdict(), UploadState.ACCEPTED, None),
        (Verdict(reason="scanned"), UploadState.ACCEPTED, "scanned"),
        (Verdict(hold=True), UploadState.UPLOADED, "held for a verdict"),
        (Verdict(hold=True, reason="review"), UploadState.UPLOADED, "review"),
        (Verdict(reject=True), UploadState.REJECTED, "rejected by a pre-finish hook"),
        (Verdict(reject=True, reason="virus"), UploadState.REJECTED, "virus"),
    ],
    ids=["accept", "accept-reason", "hold", "hold-reason", "reject", "reject-reason"],
)
def test_concluded(verdict: Verdict, state: UploadState, reason: str | None) -> None:
    done = lifecycle.concluded(lifecycle.finished(upload(), T0), verdict, LATER)
    assert (done.state, done.reason, done.finished_at) == (state, reason, T0)
    assert lifecycle.verdict_due(done) is False  # a held upload awaits an admin, not the server


def test_rejected_upload_is_due_for_cleanup_at_once() -> None:
    assert lifecycle.rejected(upload(expires_at=None), "bad", T0).expires_at == T0


def test_verdict_is_due_while_finished_upload_has_neither_verdict_nor_reason() -> None:
    assert lifecycle.verdict_due(lifecycle.finished(upload(), T0))
    assert not lifecycle.verdict_due(upload())  # legacy: accepted


@pytest.mark.parametrize(
    "info",
    [upload(offset=2), upload(state=UploadState.TERMINATED), upload(state=UploadState.REJECTED, removed_at=T0)],
    ids=["uploading", "terminated", "removed"],
)
def test_judged_refuses_what_cannot_be_judged(info: UploadInfo) -> None:
    with pytest.raises(ValueError, match="cannot be judged"):
        lifecycle.judged(info, accepted=True)


@pytest.mark.parametrize(
    ("state", "terminated", "expected"),
    [
        (UploadState.UPLOADING, False, UploadState.EXPIRED),
        (UploadState.ACCEPTED, False, UploadState.EXPIRED),
        (UploadState.REJECTED, False, UploadState.REJECTED),  # the status API still says why
        (UploadState.TERMINATED, False, UploadState.TERMINATED),  # a DELETE that stopped half-way
        (UploadState.ACCEPTED, True, UploadState.TERMINATED),
    ],
)
def test_buried(state: UploadState, terminated: bool, expected: UploadState) -> None:
    tombstone = lifecycle.buried(upload(state=state), T0, keep_until=LATER, terminated=terminated)
    assert (tombstone.state, tombstone.removed_at, tombstone.expires_at) == (expected, T0, LATER)


@pytest.mark.parametrize(
    ("info", "error"),
    [
        (upload(state=UploadState.ACCEPTED, removed_at=T0), errors.UploadNotFoundError),
        (upload(state=UploadState.EXPIRED, removed_at=T0), errors.UploadNotFoundError),
        (upload(state=UploadState.REJECTED, reason="virus", removed_at=T0), errors.UploadRejectedError),
        (upload(state=UploadState.REJECTED, reason="virus"), errors.UploadRejectedError),
        (upload(state=UploadState.TERMINATED, expires_at=T0), errors.UploadExpiredError),
        (upload(expires_at=T0), errors.UploadExpiredError),
        (upload(state=UploadState.UPLOADED, reason="review"), None),
        (upload(expires_at=LATER), None),
    ],
    ids=["tombstone", "expired", "rejected-removed", "rejected", "terminating", "past-expiry", "held", "live"],
)
def test_check_usable(info: UploadInfo, error: type[errors.TusError] | None) -> None:
    """HEAD, PATCH and GET: 404 for a tombstone (as before tombstones), 403 with the reason once rejected."""
    if error is None:
        lifecycle.check_usable(info, T0)
        return
    with pytest.raises(error) as raised:
        lifecycle.check_usable(info, T0)
    if error is errors.UploadRejectedError:
        assert (raised.value.http_status, raised.value.text()) == (403, "ERR_UPLOAD_REJECTED: virus\n")


def test_check_live_refuses_only_tombstones() -> None:
    lifecycle.check_live(upload(state=UploadState.REJECTED))
    with pytest.raises(errors.UploadNotFoundError):
        lifecycle.check_live(upload(state=UploadState.TERMINATED, removed_at=T0))


def test_declared_digest_parses_the_checksum_metadata() -> None:
    declared = declared_digest(metadata_checksum(f"sha256 {HELLO_SHA256}"))
    assert declared is not None
    assert (declared.algorithm, declared.digest) == ("sha256", hashlib.sha256(b"hello").digest())
    assert declared_digest({"filename": "eA=="}) is None


@pytest.mark.parametrize(
    "value",
    ["md4 AAAA", "SHA256 " + HELLO_SHA256, "sha256", "sha256 !!!", "sha256:" + HELLO_SHA256],
    ids=["unknown-algorithm", "upper-case", "no-digest", "not-base64", "no-space"],
)
def test_declared_digest_that_cannot_be_checked_is_a_400(value: str) -> None:
    with pytest.raises(errors.InvalidMetadataError, match="'checksum' must be"):
        declared_digest(metadata_checksum(value))
    with pytest.raises(errors.InvalidMetadataError):
        declared_digest({"checksum": "not base64!"})


def test_creation_refuses_a_declared_digest_that_cannot_be_checked() -> None:
    create = CreateRequest(5, False, metadata_checksum("md4 AAAA"), None, has_body=False, body_is_offset_stream=False)
    with pytest.raises(errors.InvalidMetadataError):
        plan_create(create, max_size=None, extensions=())


def test_check_digest() -> None:
    declared = declared_digest(metadata_checksum(f"sha256 {HELLO_SHA256}"))
    assert declared is not None
    assert check_digest(declared, hashlib.sha256(b"hello").digest()).digest == f"sha256 {HELLO_SHA256}"
    mismatch = check_digest(declared, hashlib.sha256(b"jello").digest())
    assert mismatch.digest is None
    assert (mismatch.mismatch or "").startswith("checksum mismatch: the file's sha256")


@pytest.mark.parametrize(
    ("algorithm", "header"),
    [("sha256", "sha-256"), ("sha512", "sha-512"), ("md5", "md5"), ("sha1", "sha"), ("crc32", None), ("xxh64", None)],
)
def test_repr_digest_uses_rfc_9530_keys(algorithm: str, header: str | None) -> None:
    """RFC 9530 §7.2: registered keys only; crc32 (not crc32c) and xxHash have none, so no header."""
    encoded = base64.b64encode(empty_digest(algorithm)).decode()
    found = repr_digest(upload(digest=f"{algorithm} {encoded}"))
    assert found == ({"Repr-Digest": f"{header}=:{encoded}:"} if header else {})
    assert repr_digest(upload()) == {}


@pytest.mark.parametrize(
    ("complete", "partial", "expected"), [(True, True, 60), (True, False, None), (False, True, 60)]
)
def test_finished_partial_expires_like_an_unfinished_upload(
    complete: bool, partial: bool, expected: int | None
) -> None:
    """Issue 21, item 7: finals copy a partial's bytes, so a finished partial expires after `expiration`."""
    found = expiry(T0, complete=complete, expiration=60, retention=None, partial=partial)
    assert found == (T0 + timedelta(seconds=expected) if expected is not None else None)


def test_reasons_are_kept_on_one_line() -> None:
    """A reason ends up in a one-line error body: line breaks from a hook do not."""
    done = lifecycle.concluded(upload(), Verdict(reject=True, reason="bad\r\nX-Injected: 1  " + "x" * 2000), T0)
    assert done.reason is not None
    assert done.reason.startswith("bad X-Injected: 1 x")
    assert len(done.reason) == 1000
