"""Progress of long commands: a line with count, rate and ETA every few seconds off a terminal."""

import io

from retention_crm.progress import progress_report


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_line_every_few_seconds_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    with progress_report(total=1_000, unit="lines", label="import", stream=stream, every=5, clock=clock) as tick:
        for _ in range(10):
            clock.now += 1
            tick(50)  # 50 lines a second
    lines = stream.getvalue().splitlines()
    assert lines[0] == "import: 250 / 1,000 lines (25 %), 50 lines/s, ETA 0:00:15"
    assert lines[1] == "import: 500 / 1,000 lines (50 %), 50 lines/s, ETA 0:00:10"
    assert lines[-1] == "import: 500 / 1,000 lines (50 %), 50 lines/s, ETA 0:00:10"  # the closing line
    assert len(lines) == 3


def test_without_a_total_it_counts_and_a_disabled_report_prints_nothing():
    stream, clock = io.StringIO(), Clock()
    with progress_report(total=None, unit="rows", label="seed", stream=stream, every=5, clock=clock) as tick:
        clock.now = 2
        tick(10)
    assert stream.getvalue() == "seed: 10 rows, 5 rows/s\n"
    quiet = io.StringIO()
    with progress_report(total=5, unit="rows", label="x", stream=quiet, enabled=False) as tick:
        tick(5)
    assert quiet.getvalue() == ""


def test_no_time_left_is_guessed_from_the_first_hundredth():
    stream, clock = io.StringIO(), Clock()
    with progress_report(total=100_000, unit="lines", label="import", stream=stream, every=5, clock=clock) as tick:
        clock.now = 20  # start-up and the first batches: two lines in 20 s say nothing of the rest
        tick(2)
        clock.now = 30
        tick(2_998)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "import: 2 / 100,000 lines (0 %), 0 lines/s"
    assert lines[1] == "import: 3,000 / 100,000 lines (3 %), 100 lines/s, ETA 0:16:10"
