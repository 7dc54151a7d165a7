"""Validation of storage keys, shared by the backends."""

from __future__ import annotations

import re

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,200}")


def check_key(key: str) -> str:
    """Return `key` if it is safe as a file or object name, else raise ValueError.

    Keys are letters, digits, '-' and '_' only: no separators, no dots, no NUL, so no key
    can name anything outside the backend's root, however it was built.
    """
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"invalid storage key {key!r}")
    return key
