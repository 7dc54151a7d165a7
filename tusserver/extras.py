"""How to install an optional extra, said so that it works where this copy of tusserver came from.

From a checkout (an editable install, or `python -m tusserver` run in one) the extra must come from that
checkout, not from a package index: `.venv/bin/python -m pip install '.[redis]'`. From an installed
distribution it is `python -m pip install 'tusserver[redis]'`. Either names the interpreter that runs
tusserver, so the extra lands in the right environment.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

__all__ = ["install_command", "with_install_commands"]

_HINT = re.compile(r"pip install '(?:tusserver|\.)\[([a-z0-9_,-]+)\]'")


def _checkout() -> Path | None:
    """The source tree this package runs from, if it is one (pyproject.toml of project tusserver beside it)."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text()
    except OSError:
        return None
    return root if re.search(r'^name\s*=\s*"tusserver"', text, re.MULTILINE) else None


def _shown(path: Path) -> str:
    """`path` relative to the working directory when below it (".", ".venv/bin/python"), else absolute."""
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return relative.as_posix() if relative.parts else "."


def install_command(extra: str) -> str:
    """The command that installs `extra` (e.g. "redis") into the environment running this process."""
    python = Path(sys.executable)
    interpreter = _shown(python) if os.sep in sys.executable else sys.executable
    if "/" in interpreter and not interpreter.startswith(("/", ".")):
        interpreter = "./" + interpreter
    checkout = _checkout()
    target = "tusserver" if checkout is None else _shown(checkout)
    return f"{interpreter} -m pip install '{target}[{extra}]'"


def with_install_commands(message: str) -> str:
    """`message` with each `pip install 'tusserver[EXTRA]'` in it replaced by `install_command(EXTRA)`."""
    return _HINT.sub(lambda match: install_command(match.group(1)), message)
