"""The upload life cycle's transitions (issue 21), pure: `UploadState` says what each state means.

uploading ──(last byte stored)──▶ uploaded ──(verdict)──▶ accepted | rejected
any state ──(DELETE)──▶ terminated;   any state ──(expiry)──▶ expired
"""

from __future__ import annotations

from datetime import datetime

from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["ENDED", "JUDGED", "current_state", "finished", "judged"]

JUDGED = frozenset({UploadState.ACCEPTED, UploadState.REJECTED})
ENDED = frozenset({UploadState.TERMINATED, UploadState.EXPIRED})


def current_state(info: UploadInfo) -> UploadState:
    """`info.state`, with records written before the life cycle existed read as they would be now: a
    complete one still marked uploading was accepted (nothing judged it)."""
    if info.state is UploadState.UPLOADING and info.is_complete and info.finished_at is None:
        return UploadState.ACCEPTED
    return info.state


def finished(info: UploadInfo, now: datetime) -> UploadInfo:
    """The record once its last byte is stored: `uploaded`, awaiting a verdict."""
    return info.model_copy(update={"state": UploadState.UPLOADED, "finished_at": now})


def judged(info: UploadInfo, *, accepted: bool, reason: str | None = None) -> UploadInfo:
    """The record with a verdict (a hook's, an admin's, or a digest check's).

    Raises:
        ValueError: the upload is not finished yet, or has ended (terminated, expired).
    """
    state = current_state(info)
    if state is UploadState.UPLOADING or state in ENDED:
        raise ValueError(f"an upload that is {state} cannot be judged")
    verdict = UploadState.ACCEPTED if accepted else UploadState.REJECTED
    return info.model_copy(update={"state": verdict, "reason": reason})
