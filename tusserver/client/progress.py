"""The progress line of `tusserver upload` and `download`: percent, bytes, rate and ETA, on a terminal only.

One line for the whole batch, redrawn in place at most `REFRESH` times a second, so a directory of 10,000 files
costs no more terminal output than one file. The rate is measured over the last `WINDOW` seconds, so the ETA
follows the link as it is now, not its average since the start.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["ProgressBar", "human_bytes"]

REFRESH = 0.1
WINDOW = 5.0
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count: float) -> str:
    """`1.5 GiB`: binary units, three significant digits."""
    for unit in _UNITS:
        if abs(count) < 1024 or unit == _UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.3g} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class ProgressBar:
    """Aggregates `progress(path, transferred, length)` callbacks into one redrawn line on `stream`.

    Args:
        stream: a terminal (the CLI passes stderr only if it is one).
        total: the bytes of the whole batch.
        files: how many files the batch has.
        clock: seconds, monotonic (a parameter for the tests).
    """

    def __init__(self, stream: TextIO, total: int, files: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.total = total
        self.files = files
        self._clock = clock
        self._positions: dict[Path, int] = {}
        self._finished: set[Path] = set()
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])  # the rate counts from the start
        self._drawn = float("-inf")
        self._width = 0

    def update(self, path: Path, transferred: int, length: int) -> None:
        """Record a file's position; redraw if the last drawing is older than `REFRESH`."""
        self._positions[path] = transferred
        if transferred >= length:
            self._finished.add(path)
        now = self._clock()
        if now - self._drawn >= REFRESH:
            self.draw(now)

    @property
    def transferred(self) -> int:
        return sum(self._positions.values())

    def line(self, now: float) -> str:
        """The text of the line at `now` (and it records the sample the rate is taken from)."""
        done = self.transferred
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > WINDOW:
            self._samples.popleft()
        (then, before) = self._samples[0]
        rate = (done - before) / (now - then) if now > then else 0.0
        percent = 100.0 * done / self.total if self.total else 100.0
        left = self.total - done
        eta = _clock_text(left / rate) if rate > 0 else "-:--:--"
        files = f"  {len(self._finished)}/{self.files} files" if self.files > 1 else ""
        amounts = f"{human_bytes(done)} of {human_bytes(self.total)}  {human_bytes(rate)}/s"
        return f"{percent:5.1f}%  {amounts}  ETA {eta}{files}"

    def draw(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        text = self.line(now)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)
        self._drawn = now

    def close(self) -> None:
        """Draw the last state and end the line."""
        self.draw()
        self.stream.write("\n")
        self.stream.flush()
