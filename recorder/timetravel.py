"""Time travel: the state of a session at any instant, diffs, and paced replay.

A *position* on a timeline is a (ts, seq) pair, ts in µs since the epoch: timeline order
is (ts, seq) everywhere. "At t" always means "every event at or before t"; t is an event
(its own position) or a time (the position after every event with that ts).

Snapshots are cheap because of keyframes (recorder.models.Keyframe): the fold of a
session up to a point, stored every KEYFRAME_EVERY_OPS state ops or KEYFRAME_EVERY_EVENTS
events, whichever comes first. Counting events too keeps the tail bounded in a session
with long stretches of keyed events and no state ops. A snapshot is then one keyframe
read, one range scan of at most one keyframe interval, and two small indexed queries
(recent events, details of the latest-per-key events).

Keyframes go stale when a late event lands before them. The drain deletes, in the same
transaction as the insert, every keyframe after the earliest inserted event
(`keyframes_invalidate`); `keyframes_build` then rebuilds from the last one still valid.
Until it has, snapshots fold from an earlier keyframe: slower, never wrong.
Retention removing a session's oldest events (recorder/retention.py) does the same in
each delete chunk for every keyframe at or after the first event removed, then rebuilds:
after a trim, snapshots fold only what remains.

Documents from recorder.state share structure with their inputs: nothing here modifies
a state document in place.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction

from recorder import payloads
from recorder import state as state_engine
from recorder.fields import from_micros, to_micros
from recorder.ingest import ItemError, parse_ts
from recorder.models import Event, Keyframe, Session, Severity

KEYFRAME_EVERY_OPS = getattr(settings, "FLIGHTREC_KEYFRAME_EVERY_OPS", 500)
KEYFRAME_EVERY_EVENTS = getattr(settings, "FLIGHTREC_KEYFRAME_EVERY_EVENTS", 1000)
# Events read per keyframe-building transaction: on SQLite that transaction holds the
# write lock, so keep it short enough not to stall the drain.
BUILD_CHUNK_EVENTS = 10_000
RECENT = 20
MAX_ERRORS = 100  # errors kept per keyframe and returned per snapshot (the latest ones)
MAX_LATEST_KEYS = 1000  # keys whose events a snapshot returns in full
SEQ_MAX = 2**62  # "after every event with this ts"

SEVERITY_LABELS = {int(value): label for value, label in Severity.choices}
DETAIL_FIELDS = (
    "id", "uid", "seq", "ts", "type", "source", "severity", "key", "correlation_id", "actor",
    "message", "payload", "state",
)  # fmt: skip
FOLD_FIELDS = ("id", "ts", "seq", "type", "severity", "key", "state")
JSON_FIELDS = ("payload", "state")


class PositionError(ValueError):
    """`at`, `from` or `to` could not be understood, or names an event elsewhere."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, order=True)
class Position:
    ts: int  # µs
    seq: int
    event_id: int | None = field(default=None, compare=False)


def position_parse(session: Session, raw: str, *, name: str = "at") -> Position:
    """An event id (digits) or a time (RFC 3339, or epoch seconds with a decimal point).

    Bare digits always mean an event id, because share links carry event ids; a time
    in epoch seconds needs its decimal point (`1700000000.0`).
    """
    raw = (raw or "").strip()
    if not raw:
        raise PositionError(f"{name} is required: an event id or a time")
    if raw.isdigit():
        found = Event.objects.filter(session=session, id=int(raw)).values_list("ts", "seq").first()
        if found is None:
            raise PositionError(f"{name}: there is no event {raw} in session {session.id}", 404)
        return Position(to_micros(found[0]), found[1], int(raw))
    try:
        value: Any = float(raw)
    except ValueError:
        value = raw
    try:
        return Position(parse_ts(value), SEQ_MAX)
    except ItemError as exc:
        raise PositionError(
            f"{name} {raw[:40]!r} is neither an event id nor a time ({exc})"
        ) from None


# --------------------------------------------------------------------------
# Folding: the running totals a keyframe stores and a snapshot continues
# --------------------------------------------------------------------------


@dataclass
class Fold:
    """State, latest event id per key, counts and errors, at some position."""

    state: dict = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)
    types: Counter = field(default_factory=Counter)
    severities: Counter = field(default_factory=Counter)
    errors: list[dict] = field(default_factory=list)
    error_total: int = 0
    ops: int = 0
    events: int = 0

    @classmethod
    def from_keyframe(cls, kf: Keyframe | None) -> Fold:
        if kf is None:
            return cls()
        return cls(
            state=kf.state,
            latest=dict(kf.latest),
            types=Counter(kf.counts.get("type", {})),
            severities=Counter(kf.counts.get("severity", {})),
            errors=list(kf.errors),
            error_total=kf.error_total,
            ops=kf.ops,
            events=kf.events,
        )

    def add(self, event_id: int, type_: str, severity: int, key: str | None, op: Any) -> None:
        self.events += 1
        self.types[type_] += 1
        self.severities[SEVERITY_LABELS.get(severity, str(severity))] += 1
        if key is not None:
            self.latest[key] = event_id
        if op is None:
            return
        self.ops += 1
        try:
            self.state = state_engine.apply_op(self.state, op)
        except state_engine.StateOpError as exc:
            self.error_total += 1
            self.errors.append({"event": event_id, "error": str(exc)})
            if len(self.errors) > MAX_ERRORS:
                del self.errors[0]

    def counts(self) -> dict:
        return {
            "events": self.events,
            "type": dict(self.types),
            "severity": dict(self.severities),
        }


def _keyframe_before(session_id: int, pos: Position) -> Keyframe | None:
    """The last keyframe at or before pos."""
    return (
        Keyframe.objects.filter(session_id=session_id, ts__lte=pos.ts)
        .exclude(ts=pos.ts, seq__gt=pos.seq)
        .order_by("-ts", "-seq")
        .first()
    )


def _json(value: Any) -> Any:
    # Raw cursors hand JSON columns back as text on SQLite (and on PostgreSQL, where
    # Django registers a text loader for jsonb); decoding with orjson is several times
    # faster than the ORM's per-row converters, which dominated a snapshot's cost.
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _events_between(
    session_id: int,
    after: Position | None,
    upto: Position | None,
    fields,
    limit: int | None = None,
):
    """Events in (after, upto] in timeline order, as tuples of `fields` (ts in µs).

    Raw SQL that works unchanged on SQLite and PostgreSQL. A ts range plus NOT (ts = edge
    AND seq beyond it) lets both walk the (session, ts, seq) index; an OR of (ts, seq)
    comparisons would not always.
    """
    table = Event._meta.db_table
    columns = ", ".join(payloads.column_sql(f) for f in fields)
    sql = f"SELECT {columns} FROM {table} WHERE session_id = %s"
    params: list[Any] = [session_id]
    if after is not None:
        sql += " AND ts >= %s AND NOT (ts = %s AND seq <= %s)"
        params += [after.ts, after.ts, after.seq]
    if upto is not None:
        sql += " AND ts <= %s AND NOT (ts = %s AND seq > %s)"
        params += [upto.ts, upto.ts, upto.seq]
    sql += " ORDER BY ts, seq"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    json_at = [i for i, f in enumerate(fields) if f in JSON_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            for row in batch:
                if json_at:
                    row = list(row)
                    for i in json_at:
                        if row[i] is not None:
                            row[i] = _json(row[i])
                yield row


def fold_at(session_id: int, pos: Position) -> tuple[Fold, int]:
    """The fold of every event at or before pos; also how many events were scanned."""
    kf = _keyframe_before(session_id, pos)
    current = Fold.from_keyframe(kf)
    start = Position(kf.ts, kf.seq) if kf else None
    scanned = 0
    for event_id, _ts, _seq, type_, severity, key, op in _events_between(
        session_id, start, pos, FOLD_FIELDS
    ):
        scanned += 1
        current.add(event_id, type_, severity, key, op)
    if scanned > 2 * KEYFRAME_EVERY_EVENTS:
        _request_build(session_id)
    return current, scanned


def _request_build(session_id: int) -> None:
    """Keyframes are missing or stale here: have the queue rebuild them."""
    from recorder.tasks import build_keyframes  # tasks import this module

    build_keyframes([session_id])


# --------------------------------------------------------------------------
# Keyframe maintenance
# --------------------------------------------------------------------------


def keyframes_invalidate(*, earliest: dict[int, int]) -> int:
    """Delete keyframes after a newly inserted event; `earliest` = session id -> min ts µs.

    Called by the drain inside its insert transaction, so no reader ever sees a keyframe
    that misses an event before it. New events get the session's highest seq, so a
    keyframe with the same ts is before them and stays valid.
    """
    deleted = 0
    for session_id, ts in earliest.items():
        deleted += Keyframe.objects.filter(session_id=session_id, ts__gt=ts).delete()[0]
    return deleted


def keyframes_build(
    *,
    session_id: int,
    every_ops: int | None = None,
    every_events: int | None = None,
    chunk: int = BUILD_CHUNK_EVENTS,
) -> int:
    """Add the keyframes a session is missing, continuing from its last one.

    Each chunk runs in one transaction that first locks the session row, as the drain's
    session update does: on PostgreSQL a drain inserting a late event and this build
    cannot interleave, and on SQLite the IMMEDIATE transaction serializes them anyway.
    So a keyframe is never written from a read that missed a committed late event.
    Returns the number of keyframes created.
    """
    every_ops = every_ops or KEYFRAME_EVERY_OPS
    every_events = every_events or KEYFRAME_EVERY_EVENTS
    created = 0
    while True:
        with transaction.atomic():
            session = Session.objects.select_for_update().filter(id=session_id).first()
            if session is None:
                return created
            last = Keyframe.objects.filter(session_id=session_id).order_by("-ts", "-seq").first()
            done = last.events if last else 0
            if session.event_count - done < min(every_ops, every_events):
                return created  # not enough new events for another keyframe
            current = Fold.from_keyframe(last)
            start = Position(last.ts, last.seq) if last else None
            ops_at, events_at = current.ops, current.events
            new: list[Keyframe] = []
            read = 0
            for event_id, ts, seq, type_, severity, key, op in _events_between(
                session_id, start, None, FOLD_FIELDS, limit=chunk
            ):
                read += 1
                current.add(event_id, type_, severity, key, op)
                if current.ops - ops_at >= every_ops or current.events - events_at >= every_events:
                    new.append(_keyframe(session_id, current, event_id, ts, seq))
                    ops_at, events_at = current.ops, current.events
            Keyframe.objects.bulk_create(new)
            created += len(new)
            if read < chunk:
                return created


def _keyframe(session_id: int, current: Fold, event_id: int, ts: int, seq: int) -> Keyframe:
    return Keyframe(
        session_id=session_id,
        ts=ts,
        seq=seq,
        event_id=event_id,
        ops=current.ops,
        events=current.events,
        state=current.state,
        latest=dict(current.latest),
        counts={"type": dict(current.types), "severity": dict(current.severities)},
        errors=list(current.errors),
        error_total=current.error_total,
    )


# --------------------------------------------------------------------------
# Snapshot and diff
# --------------------------------------------------------------------------


def event_json(ev: dict) -> dict:
    """An event as the snapshot, diff and replay documents show it."""
    out = dict(ev)
    ts = out["ts"]
    ts_us = ts if isinstance(ts, int) else to_micros(ts)
    out["ts"] = from_micros(ts_us).isoformat().replace("+00:00", "Z")
    out["ts_us"] = ts_us
    out["severity"] = SEVERITY_LABELS.get(out["severity"], str(out["severity"]))
    return out


def _events_by_id(ids: list[int]) -> dict[int, dict]:
    out = {}
    columns = ", ".join(payloads.column_sql(f) for f in DETAIL_FIELDS)
    with connection.cursor() as cursor:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {columns} FROM {Event._meta.db_table} WHERE id IN ({marks})", chunk
            )
            for row in cursor.fetchall():
                ev = dict(zip(DETAIL_FIELDS, row, strict=True))
                for name in JSON_FIELDS:
                    ev[name] = _json(ev[name])
                out[ev["id"]] = event_json(ev)
    return out


def _latest_json(latest: dict[str, int]) -> tuple[dict[str, dict], bool]:
    keys = sorted(latest)[:MAX_LATEST_KEYS]
    found = _events_by_id([latest[k] for k in keys])
    return {k: found[latest[k]] for k in keys if latest[k] in found}, len(latest) > len(keys)


def snapshot_at(*, session: Session, at: Position) -> dict:
    """Everything the snapshot pane shows at `at` (see DESIGN.md, "Time travel")."""
    current, scanned = fold_at(session.id, at)
    base = Event.objects.filter(session=session)
    if at.event_id is not None:
        here = base.filter(id=at.event_id)
    else:
        here = base.filter(ts__lte=at.ts).order_by("-ts", "-seq")[:1]
    event = next(iter(here.values(*DETAIL_FIELDS)), None)
    anchor = Position(to_micros(event["ts"]), event["seq"]) if event else at
    # Strictly before the event at t (the event itself is returned apart).
    recent = list(
        base.filter(ts__lte=anchor.ts)
        .exclude(ts=anchor.ts, seq__gte=anchor.seq if event else SEQ_MAX)
        .order_by("-ts", "-seq")
        .values(*DETAIL_FIELDS)[:RECENT]
    )
    latest, truncated = _latest_json(current.latest)
    return {
        "session": session.id,
        "at": {
            "ts": from_micros(at.ts).isoformat().replace("+00:00", "Z"),
            "event_id": at.event_id,
        },
        "event": event_json(event) if event else None,
        "state": current.state,
        "latest": latest,
        "latest_truncated": truncated,
        "counts": current.counts(),
        "recent": [event_json(e) for e in reversed(recent)],
        "errors": current.errors,
        "error_count": current.error_total,
        "cost": {"events_folded": scanned},
    }


def diff_between(*, session: Session, start: Position, end: Position) -> dict:
    """What changed from `start` to `end`: state as RFC 6902, `latest` per key, counts."""
    before, _ = fold_at(session.id, start)
    after, _ = fold_at(session.id, end)
    changed = sorted(
        k
        for k in before.latest.keys() | after.latest.keys()
        if before.latest.get(k) != after.latest.get(k)
    )
    truncated = len(changed) > MAX_LATEST_KEYS
    changed = changed[:MAX_LATEST_KEYS]
    ids = {before.latest.get(k) for k in changed} | {after.latest.get(k) for k in changed}
    found = _events_by_id(sorted(i for i in ids if i is not None))
    return {
        "session": session.id,
        "state": state_engine.diff(before.state, after.state),
        "latest": {
            k: {"from": found.get(before.latest.get(k)), "to": found.get(after.latest.get(k))}
            for k in changed
        },
        "latest_truncated": truncated,
        "counts": {
            "events": after.events - before.events,
            "type": _counter_delta(before.types, after.types),
            "severity": _counter_delta(before.severities, after.severities),
        },
        "errors": [e for e in after.errors if e not in before.errors],
    }


def _counter_delta(a: Counter, b: Counter) -> dict[str, int]:
    return {k: b[k] - a[k] for k in sorted(a.keys() | b.keys()) if b[k] != a[k]}


REPLAY_INDEX_LIMIT = 100_000


def replay_index(*, session: Session, limit: int = REPLAY_INDEX_LIMIT) -> dict:
    """[id, ts µs, seq, severity label] of every event, for the player's clock and scrubber.

    Four numbers a row keep 100,000 events near 4 MB of JSON: the player schedules and
    draws from this and fetches details (snapshots) only where it stops.
    """
    rows = list(
        Event.objects.filter(session=session)
        .order_by("ts", "seq")
        .values_list("id", "ts", "seq", "severity")[: limit + 1]
    )
    return {
        "events": [
            [i, to_micros(ts), seq, SEVERITY_LABELS.get(sev, str(sev))]
            for i, ts, seq, sev in rows[:limit]
        ],
        "truncated": len(rows) > limit,
    }


# --------------------------------------------------------------------------
# Replay as Server-Sent Events
# --------------------------------------------------------------------------

REPLAY_PAGE = 500
KEEPALIVE_SECONDS = 15.0
REPLAY_MAX_SECONDS = getattr(settings, "FLIGHTREC_REPLAY_MAX_SECONDS", 3600)


def _max_streams() -> int:
    # gunicorn gthread workers serve one request per thread, and a stream holds its
    # thread for its whole length: at most half of a process's threads may stream, so
    # ingestion and page views always find a free one.
    configured = getattr(settings, "FLIGHTREC_REPLAY_MAX_STREAMS", None)
    if configured:
        return int(configured)
    return max(1, settings.FLIGHTREC_WEB_THREADS // 2)


_streams = threading.BoundedSemaphore(_max_streams())


class ReplayBusy(Exception):
    """Every replay slot of this process is taken."""


def replay_slot() -> Callable[[], None]:
    """Take a stream slot or raise ReplayBusy; returns the function that gives it back."""
    if not _streams.acquire(blocking=False):
        raise ReplayBusy
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            _streams.release()

    return release


def _sse(kind: str, data: dict, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return (head + f"event: {kind}\ndata: ").encode() + orjson.dumps(data) + b"\n\n"


def _release_connection() -> None:
    """Give the DB connection back before sleeping: a stream must not pin one.

    Outside a transaction a closed connection simply reopens on the next query. Inside
    one (only under a test's wrapping transaction) closing would break it, so we don't.
    """
    if not connection.in_atomic_block:
        connection.close()


def replay_stream(
    *,
    session_id: int,
    speed: float,
    start: Position | None = None,
    end: Position | None = None,
    skip_idle: float | None = None,
    max_seconds: float = REPLAY_MAX_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """SSE messages: each event at its real gap from the first, divided by `speed`.

    Times are targets on a monotonic clock measured from the start, not sleeps between
    events, so scheduling error does not accumulate. `speed` = inf sends as fast as the
    client reads. Gaps longer than `skip_idle` seconds are shortened to `skip_idle`.
    Events are read a page at a time and the connection is released between pages.
    """
    t0 = clock()
    offset = 0.0  # scheduled seconds since t0
    previous_ts: int | None = None
    # The range includes the event (or the time) it starts at.
    after = None
    if start is not None:
        after = (
            Position(start.ts - 1, SEQ_MAX)
            if start.seq == SEQ_MAX
            else Position(start.ts, start.seq - 1)
        )
    sent = 0
    yield _sse("start", {"session": session_id, "speed": speed, "skip_idle": skip_idle})
    while True:
        page = list(_replay_page(session_id, after, end))
        _release_connection()
        for ev in page:
            ts = ev["ts_us"]
            if previous_ts is not None:
                gap = (ts - previous_ts) / 1_000_000
                if skip_idle is not None and gap > skip_idle:
                    gap = skip_idle
                offset += gap / speed
            previous_ts = ts
            if offset > max_seconds:
                yield _sse("end", {"sent": sent, "reason": f"replay limit of {max_seconds} s"})
                return
            while True:
                wait = t0 + offset - clock()
                if wait <= 0:
                    break
                if wait > KEEPALIVE_SECONDS:
                    sleep(KEEPALIVE_SECONDS)
                    yield b": keepalive\n\n"  # also notices a client that has gone
                else:
                    sleep(wait)
            ev["replay"] = {
                "offset": round(offset, 6),
                "late_ms": round((clock() - t0 - offset) * 1000, 3),
            }
            sent += 1
            yield _sse("event", ev, ev["id"])
        if len(page) < REPLAY_PAGE:
            break
        last = page[-1]
        after = Position(last["ts_us"], last["seq"])
    yield _sse("end", {"sent": sent, "reason": "end of range"})


def _replay_page(session_id: int, after: Position | None, end: Position | None) -> list[dict]:
    rows = _events_between(session_id, after, end, DETAIL_FIELDS, limit=REPLAY_PAGE)
    return [event_json(dict(zip(DETAIL_FIELDS, row, strict=True))) for row in rows]
