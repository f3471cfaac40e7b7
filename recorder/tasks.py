"""Huey tasks. Thin: each one calls a plain function that holds the logic.

Waking the drain is coalesced through a flag in Huey's key-value store: a request sets
the flag and enqueues a drain only if the flag was not already set; the drain clears
the flag *before* reading the inbox. So every inbox row committed before the clear is
seen by the running drain, and every row committed after it enqueues a new drain.
A wake-up lost to a SIGKILL (Huey drops a task once a worker takes it) only delays:
the periodic sweep and the consumer's start-up drain pick the rows up.
"""

import logging

from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task, db_task, on_startup

from recorder import drain, payloads, retention, storage, timetravel

log = logging.getLogger(__name__)
WAKE_FLAG = "flightrec:drain-wanted"


def wake_drain() -> None:
    """Called after an inbox commit."""
    try:
        if HUEY.immediate:
            drain_inbox()
        elif HUEY.put_if_empty(WAKE_FLAG, b"1"):
            drain_inbox()
    except Exception:  # the queue being down must not fail an already-committed request
        log.exception("could not wake the drain; the periodic sweep will pick the batch up")


@db_task()
def drain_inbox() -> None:
    if not HUEY.immediate:
        HUEY.get(WAKE_FLAG)  # get() also deletes: clear before reading the inbox
    _drain_and_log()


def _drain_and_log() -> None:
    stats = drain.inbox_drain()
    if stats.batches:
        log.info(
            "drained %d batches, %d events (%d duplicates) in %.3fs",
            stats.batches, stats.events, stats.duplicates, stats.seconds,
        )  # fmt: skip
    if stats.sessions:
        build_keyframes(sorted(stats.sessions))


@db_task()
def build_keyframes(session_ids: list[int]) -> None:
    """Keyframes for sessions that got events (or whose keyframes a late event removed)."""
    for session_id in session_ids:
        timetravel.keyframes_build(session_id=session_id)


@db_periodic_task(crontab(minute="*"))
def sweep_inbox() -> None:
    """Safety net for lost wake-ups; cheap when the inbox is empty."""
    _drain_and_log()


@db_periodic_task(crontab(minute="*/5"))
def mark_abandoned_sessions() -> None:
    drain.sessions_mark_abandoned()


@db_periodic_task(crontab(minute="17"))
def purge() -> None:
    """Hourly retention. Periodic tasks are scheduled by one consumer only: run the
    others with `run_huey --no-periodic` (see README, Retention)."""
    results = retention.purge_run()
    storage.storage_sample()
    for result in results:
        if result.removed_anything:
            log.info("purge: %s", result.summary(dry_run=False))


@db_periodic_task(crontab(minute="43", hour="3"))
def train_payload_dictionary() -> None:
    """Daily: a new packing dictionary once the current one is a week old, so packing
    follows what applications send now (recorder/payloads.py)."""
    if payloads.dictionary_maybe_train() is not None:
        log.info("trained a new payload dictionary")


@on_startup()
def drain_on_start() -> None:
    # Batches acknowledged while no consumer ran are drained right away, not in a minute.
    if not HUEY.immediate:
        drain_inbox()
