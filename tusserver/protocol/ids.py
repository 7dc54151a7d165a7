"""Upload ids: ours (128 random bits in hex), or chosen by a pre-create hook, and the storage keys they map to.

A hook may choose any URL-safe id (RFC 3986 unreserved characters: `A-Z a-z 0-9 - _ . ~`, at most 128, not
`.` or `..`). Storage keys are narrower (`[A-Za-z0-9_-]`: no dots, so no path or object-name games), so the
characters outside them are escaped, one-to-one: `_` as `__`, `.` as `_d`, `~` as `_t`. Our own ids have
none of the three and are their own keys.
"""

from __future__ import annotations

import re

__all__ = ["CUSTOM_ID", "MAX_KEY", "custom_id_problem", "storage_key", "upload_id_of"]

CUSTOM_ID = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._~-]{1,128}")
MAX_KEY = 200  # storage_backends._keys: a file or object name, with room for the suffixes backends add
_ESCAPES = {"_": "__", ".": "_d", "~": "_t"}
_UNESCAPES = {value[1]: key for key, value in _ESCAPES.items()}


def storage_key(upload_id: str) -> str:
    """The storage key of `upload_id` (itself, unless it has `_`, `.` or `~`)."""
    return "".join(_ESCAPES.get(character, character) for character in upload_id)


def upload_id_of(key: str) -> str | None:
    """The upload id whose storage key is `key`, None if `key` is no such key."""
    if "_" not in key:
        return key
    parts, index = [], 0
    while index < len(key):
        character = key[index]
        if character == "_":
            escaped = _UNESCAPES.get(key[index + 1 : index + 2])
            if escaped is None:
                return None
            parts.append(escaped)
            index += 2
        else:
            parts.append(character)
            index += 1
    return "".join(parts)


def custom_id_problem(upload_id: str) -> str | None:
    """Why a hook's id cannot be used (None: it can, if no upload has it yet)."""
    if not CUSTOM_ID.fullmatch(upload_id):
        return "it must be 1 to 128 of A-Z a-z 0-9 - _ . ~, and not . or .."
    if len(storage_key(upload_id)) > MAX_KEY:
        return f"escaped for storage it is longer than {MAX_KEY} characters"
    return None
