"""Several provider connections at once for one batch: one lane per connection.

A send over SMTP is mostly waiting: four round trips to the server, then the record of its outcome
in the database. One connection at a time leaves the worker idle most of the batch. Lanes share
the batch's messages (each takes the next one when it is free) and each lane sends over its own
connection, then records that message's outcome through its own database connection before it
takes another. So a worker that dies mid-batch leaves at most one sent-but-unrecorded message per
lane, and no lane waits for another's records.

Lane 0 runs in the calling thread (where Celery raises its soft time limit); the others in threads
of their own, which close their database connections when they end. When the caller stops (an
exception in lane 0) or a lane fails, no lane takes another message; those never taken are handed
back by ``untaken`` so the caller can put them back in the queue.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from django.db import connections

T = TypeVar("T")


class Lanes(Generic[T]):
    def __init__(self, items: Sequence[T], *, count: int) -> None:
        self.items = list(items)
        self.count = max(1, min(count, len(self.items)))
        self.next = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

    def take(self) -> T | None:
        """The next message for a lane, or None once all are taken or the run is stopping."""
        with self.lock:
            if self.stopping.is_set() or self.next >= len(self.items):
                return None
            item = self.items[self.next]
            self.next += 1
            return item

    def untaken(self) -> list[T]:
        with self.lock:
            return self.items[self.next :]

    def run(self, lane: Callable[[int, Callable[[], T | None]], None]) -> None:
        """Run ``lane(number, take)`` in ``count`` lanes until every item is taken; re-raises the
        first error of any lane once all lanes have stopped."""
        threads = [
            threading.Thread(target=self._thread, args=(lane, number), name=f"send-lane-{number}", daemon=True)
            for number in range(1, self.count)
        ]
        for thread in threads:
            thread.start()
        try:
            lane(0, self.take)
            for thread in threads:
                thread.join()
        except BaseException:  # e.g. the soft time limit, in lane 0's send or while waiting for the others
            self.stopping.set()
            for thread in threads:
                thread.join()  # each lane records the message it is sending, then stops
            raise
        if self.errors:
            raise self.errors[0]

    def _thread(self, lane: Callable[[int, Callable[[], T | None]], None], number: int) -> None:
        try:
            lane(number, self.take)
        except BaseException as error:  # handed to the caller's thread
            self.errors.append(error)
            self.stopping.set()
        finally:
            connections.close_all()  # this thread's own database connections
