"""Folding the purchase trigger's pending changes into the rollup deltas (metrics/rollup_triggers_sql.py).

The trigger leaves each write's effect on the day chain, the single-order days and the cohort cells
pending; ``rollups_fold`` computes it for every pending change at once. It runs in a task right
after writes commit, in the minute's compaction, and in any read that finds changes pending
(``read_folded``), so no read ever answers from rollups that miss a committed purchase.
"""

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import current_app
from django.core.cache import cache
from django.db import connection, transaction

from metrics.rollup_sql import PENDING_TABLE

FOLD_LOCK = 72_102  # one fold (or rebuild) at a time: two would take the same pending rows
FOLD_WAIT_SECONDS = 2.0  # how long a read waits for another fold before it answers without the rollups
FOLD_POLL_SECONDS = 0.05
FOLD_ATTEMPTS = 2  # a read folds at most this often; writes committing meanwhile wait for the next read

# Selected first by every fast read, so the usual read (nothing pending) stays one statement.
PENDING_CHECK = f"(SELECT EXISTS (SELECT 1 FROM {PENDING_TABLE}))"

FOLD_TASK = "metrics.fold_purchase_changes"
FOLD_SOON_KEY = "metrics:rollups-fold-queued"
# At most one fold task a second per cache, however many writes commit: the task runs that second
# later, so the writes that found it queued (the key still set) have committed when it folds.
FOLD_SOON_SECONDS = 1

Row = TypeVar("Row")
logger = logging.getLogger(__name__)


def _fold_lock_take(cursor: Any, wait_seconds: float) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FOLD_LOCK])
        if cursor.fetchone()[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(FOLD_POLL_SECONDS)


def rollups_fold(*, wait_seconds: float = 0.0) -> int | None:
    """Turn the committed pending purchase changes into rollup deltas, in one statement; returns how
    many pending rows it took, or None when another fold still held the lock after ``wait_seconds``.
    Changes of writers still in flight stay for the next fold."""
    with transaction.atomic(), connection.cursor() as cursor:
        if not _fold_lock_take(cursor, wait_seconds):
            return None
        cursor.execute("SELECT metrics_purchase_changes_fold()")
        return int(cursor.fetchone()[0])


def rollups_pending() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {PENDING_TABLE})")
        return bool(cursor.fetchone()[0])


def read_folded(read: Callable[[], tuple[Row, bool]]) -> Row | None:
    """``read()`` answers (row, whether changes were pending when it read); when they were, fold
    them and read again. None when another fold held the lock too long: the caller answers live."""
    for attempt in range(FOLD_ATTEMPTS + 1):
        row, pending = read()
        if not pending or attempt == FOLD_ATTEMPTS:
            return row
        if rollups_fold(wait_seconds=FOLD_WAIT_SECONDS) is None:
            return None
    return row


def rollups_fold_soon() -> None:
    """Queue a fold after purchases were written (the write services call it on commit), so the
    pending changes stay about one batch long and a read rarely has any to fold. Best effort: when
    the broker is away, the minute's compaction and the next read fold them."""
    if not cache.add(FOLD_SOON_KEY, True, timeout=FOLD_SOON_SECONDS):
        return
    try:
        current_app.send_task(FOLD_TASK, queue="metrics", ignore_result=True, countdown=FOLD_SOON_SECONDS)
    except Exception:  # a write that committed must not fail over its follow-up
        logger.warning("metrics.rollups_fold_not_queued", exc_info=True)
