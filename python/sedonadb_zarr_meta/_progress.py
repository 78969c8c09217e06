"""Progress of long writes on stderr: shown when stderr is a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import IO


class Progress:
    """A one-line progress bar for ``total`` units of work (``None``: unknown total).

    ``enabled=None`` shows it only when ``stream`` is a terminal.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str = "rows",
        enabled: bool | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self._last >= 0.1:
            self._draw()

    def _draw(self, end: str = "") -> None:
        self._last = time.monotonic()
        elapsed = self._last - self.start
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"{self.label} [{bar:<30}] {share:4.0%} {self.done:,}/{self.total:,} {self.unit}"
        else:
            text = f"{self.label} {self.done:,} {self.unit}"
        self.stream.write(f"\r{text} {elapsed:5.1f} s{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw("\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
