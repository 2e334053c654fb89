"""Progress of a long command (SPEC §7): a bar on a terminal, a plain line every few seconds
otherwise (cron, pipes, CI logs), both with the count, the rate and the time left.

    with progress_report(total=50_003, unit="lines", label="import_purchases", stream=sys.stderr) as tick:
        for batch in batches:
            ...
            tick(len(batch))
"""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

LINE_EVERY_SECONDS = 5.0
# Below this share of the total the rate says little about the rest (the first results of an
# import come after its start-up and its first batches), so no time left is guessed yet.
ETA_AFTER_SHARE = 0.01


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LineProgress:
    """The off-terminal form: one line per ``every`` seconds, and one at the end."""

    def __init__(
        self, *, total: int | None, unit: str, label: str, stream: TextIO, every: float, clock: Callable[[], float]
    ) -> None:
        self.total, self.unit, self.label, self.stream = total, unit, label, stream
        self.every, self.clock = every, clock
        self.done = 0
        self.started = self.last = clock()

    def line(self) -> str:
        elapsed = self.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            share = f" / {self.total:,} {self.unit} ({100 * self.done / self.total:.0f} %)"
            known = rate and self.done >= ETA_AFTER_SHARE * self.total
            eta = f", ETA {_duration((self.total - self.done) / rate)}" if known else ""
        else:
            share, eta = f" {self.unit}", ""
        return f"{self.label}: {self.done:,}{share}, {rate:,.0f} {self.unit}/s{eta}"

    def tick(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def finish(self) -> None:
        print(self.line(), file=self.stream, flush=True)


@contextmanager
def progress_report(
    *,
    total: int | None,
    unit: str,
    label: str,
    stream: TextIO | None = None,
    enabled: bool = True,
    every: float = LINE_EVERY_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Callable[[int], None]]:
    """Yields ``tick(count)``. A terminal gets a bar; anything else a line every ``every`` seconds."""
    stream = stream or sys.stderr
    if not enabled:

        def ignore(count: int = 1) -> None:
            return None

        yield ignore
        return
    if stream.isatty():
        with tqdm(total=total, unit=f" {unit}", desc=label, file=stream, leave=False) as bar:
            yield bar.update
        return
    lines = LineProgress(total=total, unit=unit, label=label, stream=stream, every=every, clock=clock)
    yield lines.tick
    lines.finish()
