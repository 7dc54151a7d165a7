"""The upload life cycle's transitions (issue 21), pure: `UploadState` says what each state means.

uploading ──(last byte stored)──▶ uploaded ──(verdict)──▶ accepted | rejected
any state ──(DELETE)──▶ terminated;   any state ──(expiry)──▶ expired

Once its bytes are removed (terminated, expired, or rejected and swept), a record stays for a while as a
tombstone (`removed_at` set), so that the status API can say what became of the upload; tus requests get
what they got before tombstones existed: 404 for a removed upload (PROTOCOL.md items 59, 69).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tusserver.protocol.errors import UploadExpiredError, UploadNotFoundError, UploadRejectedError
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = [
    "ENDED",
    "JUDGED",
    "Verdict",
    "buried",
    "check_live",
    "check_usable",
    "concluded",
    "current_state",
    "finished",
    "judged",
    "rejected",
    "verdict_due",
]

JUDGED = frozenset({UploadState.ACCEPTED, UploadState.REJECTED})
ENDED = frozenset({UploadState.TERMINATED, UploadState.EXPIRED})
HELD = "held for a verdict"  # the reason of an upload a hook held without giving one
MAX_REASON = 1000  # characters: a reason is for people; the error body it goes into is one line


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a pre-finish hook decided about a finished upload: reject it, hold it (`uploaded`) until an admin
    decides, or neither (accept it); `reason` says why."""

    reject: bool = False
    hold: bool = False
    reason: str | None = None


def current_state(info: UploadInfo) -> UploadState:
    """`info.state`, with records written before the life cycle existed read as they would be now: a
    complete one still marked uploading was accepted (nothing judged it)."""
    if info.state is UploadState.UPLOADING and info.is_complete and info.finished_at is None:
        return UploadState.ACCEPTED
    return info.state


def finished(info: UploadInfo, now: datetime) -> UploadInfo:
    """The record once its last byte is stored: `uploaded`, awaiting a verdict."""
    return info.model_copy(update={"state": UploadState.UPLOADED, "finished_at": now})


def rejected(info: UploadInfo, reason: str, now: datetime) -> UploadInfo:
    """The record rejected for `reason`; cleanup removes it like an expired one, from `now` on."""
    return info.model_copy(update={"state": UploadState.REJECTED, "reason": _tidy(reason), "expires_at": now})


def concluded(info: UploadInfo, verdict: Verdict, now: datetime) -> UploadInfo:
    """A finished (`uploaded`) record with a pre-finish hook's verdict: rejected, held with a reason (kept
    `uploaded`: an admin decides), or accepted."""
    if verdict.reject:
        return rejected(info, verdict.reason or "rejected by a pre-finish hook", now)
    if verdict.hold:
        return info.model_copy(update={"reason": _tidy(verdict.reason or HELD)})
    return info.model_copy(update={"state": UploadState.ACCEPTED, "reason": _tidy(verdict.reason)})


def _tidy(reason: str | None) -> str | None:
    """A reason on one line (it ends up in an error body, `ERR_UPLOAD_REJECTED: <reason>`), not too long."""
    return None if reason is None else " ".join(reason.split())[:MAX_REASON]


def verdict_due(info: UploadInfo) -> bool:
    """True for a finished upload whose own checks (the digest, pre-finish) have not run to their end: kept
    `uploaded` without a reason, unlike one held for an admin (which always has one)."""
    return info.state is UploadState.UPLOADED and info.reason is None and info.removed_at is None


def judged(info: UploadInfo, *, accepted: bool, reason: str | None = None) -> UploadInfo:
    """The record with a verdict (a hook's, an admin's, or a digest check's).

    Raises:
        ValueError: the upload is not finished yet, has ended (terminated, expired), or its bytes are gone.
    """
    state = current_state(info)
    if state is UploadState.UPLOADING or state in ENDED or info.removed_at is not None:
        raise ValueError(f"an upload that is {state}{' and removed' if info.removed_at else ''} cannot be judged")
    verdict = UploadState.ACCEPTED if accepted else UploadState.REJECTED
    return info.model_copy(update={"state": verdict, "reason": _tidy(reason)})


def buried(info: UploadInfo, now: datetime, *, keep_until: datetime, terminated: bool = False) -> UploadInfo:
    """The tombstone of an upload whose bytes were just removed, kept until `keep_until`: `terminated` by a
    DELETE, or by cleanup `expired`, unless it had ended otherwise already (terminated, or rejected)."""
    state = current_state(info)
    if terminated:
        state = UploadState.TERMINATED
    elif state not in {UploadState.TERMINATED, UploadState.REJECTED}:
        state = UploadState.EXPIRED
    return info.model_copy(update={"state": state, "removed_at": now, "expires_at": keep_until})


def check_usable(info: UploadInfo, now: datetime) -> None:
    """What a HEAD, PATCH or GET of an upload that cannot be used answers.

    Raises:
        UploadNotFoundError: its bytes are removed (a tombstone): 404, as before tombstones existed.
        UploadRejectedError: it was rejected (403, with the reason).
        UploadExpiredError: it has expired, or is being removed (tus §Upload-Expires: 410 while the server
            still knows it).
    """
    state = current_state(info)
    if info.removed_at is not None and state is not UploadState.REJECTED:
        raise UploadNotFoundError()
    if state is UploadState.REJECTED:
        raise UploadRejectedError(info.reason)
    if state in ENDED or info.is_expired(now):
        raise UploadExpiredError()


def check_live(info: UploadInfo) -> None:
    """What a DELETE of a removed upload (a tombstone) answers: 404, as before tombstones existed (PROTOCOL.md
    items 69, 70). Any other may be deleted: a rejected one, or one whose termination stopped half-way.

    Raises:
        UploadNotFoundError: a tombstone.
    """
    if info.removed_at is not None:
        raise UploadNotFoundError()
