"""The README's "Authorization" section, taken apart so that tests run each of its snippets as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parent.parent.parent / "README.md"


def section_blocks(language: str, section: str = "Authorization") -> list[str]:
    """The fenced blocks of `language` in the README's `section` (a "## " heading), in order."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
