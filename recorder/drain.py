"""The drain: inbox rows in, Session and Event rows out.

The consumer side of the durability invariant (see DESIGN.md). Many inbox batches go
into one transaction; events are bulk-inserted with the per-application uid constraint
ignoring duplicates; sessions are upserted and their counters moved; only after the
events' commit are the inbox rows deleted. A crash anywhere in between leaves the
inbox rows in place, and draining them again inserts nothing twice: uids already
stored are filtered out before seq numbers and counters are handed out.
"""

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.db import OperationalError, connection, transaction

from recorder import metrics, payloads, retention, search
from recorder.fields import from_micros, to_micros
from recorder.models import ApiKey, Event, InboxBatch, Session, Severity
from recorder.timetravel import keyframes_invalidate

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "application_id", "session_id", "seq", "ts", "received_at", "type", "source", "severity",
    "key", "correlation_id", "actor", "message", "payload", "state", "uid", "size", "redacted",
)  # fmt: skip
JSON_COLUMNS = ("payload", "state", "redacted")
# SQLite limits a statement to 32766 parameters; stay well under for uid lookups.
LOOKUP_CHUNK = 500


@dataclass
class DrainStats:
    batches: int = 0
    events: int = 0
    duplicates: int = 0
    refused: int = 0  # over a session's event limit with overflow "refuse"
    seconds: float = 0.0
    # Sessions that received events: their keyframes may need building.
    sessions: set[int] = field(default_factory=set)

    def add(self, other: "DrainStats") -> None:
        self.sessions |= other.sessions
        self.batches += other.batches
        self.events += other.events
        self.duplicates += other.duplicates
        self.refused += other.refused
        self.seconds += other.seconds


# SQLite: one drain at a time per process (see inbox_drain).
_draining = threading.Lock()


def inbox_drain(*, max_batches: int = 200, max_events: int = 20_000) -> DrainStats:
    """Drain the inbox until it is empty. Safe to run from several workers at once.

    On SQLite (the inbox in its own file) a second drain in the same process waits for
    the first to finish, then drains what is left. Side by side, the second one waited
    for the write lock anyway and then, in the moment between the first one's event
    commit and its inbox delete, claimed the same rows again and drained them as
    duplicates: a quarter of all drained events in `python -m bench ingest`, where the
    consumer's two threads run a drain each. The uid constraint kept that correct, not
    cheap. While it waits, the wake-up flag stays set, so senders queue no more drains.
    Drains in other processes (two consumers) still meet only the constraint.
    """
    if settings.INBOX_DB == "default":
        # PostgreSQL: FOR UPDATE SKIP LOCKED gives concurrent drains different rows.
        return _drain_until_empty(max_batches, max_events)
    with _draining:
        return _drain_until_empty(max_batches, max_events)


def _drain_until_empty(max_batches: int, max_events: int) -> DrainStats:
    total = DrainStats()
    retries = 0
    while True:
        try:
            stats = drain_once(max_batches=max_batches, max_events=max_events)
        except OperationalError as exc:
            # PostgreSQL may pick this transaction as a deadlock victim (e.g. against an
            # UPDATE of many sessions). Nothing was committed: the rows are still there.
            if _sqlstate(exc) not in RETRYABLE or retries >= 5:
                raise
            retries += 1
            log.warning("drain transaction rolled back (%s); retrying", _sqlstate(exc))
            time.sleep(0.05 * retries)
            continue
        if stats.batches == 0:
            return total
        total.add(stats)
        if stats.events:
            # A packing dictionary when one is due (two indexed lookups otherwise):
            # between transactions, as a steady stream may keep this loop going for hours.
            payloads.dictionary_maybe_train()


# deadlock_detected, serialization_failure
RETRYABLE = ("40P01", "40001")


def _sqlstate(exc: Exception) -> str:
    return getattr(exc.__cause__, "sqlstate", None) or ""


def drain_once(*, max_batches: int = 200, max_events: int = 20_000) -> DrainStats:
    """One transaction's worth: up to max_batches inbox rows or about max_events events."""
    started = time.perf_counter()
    same_db = settings.INBOX_DB == "default"
    with transaction.atomic():
        rows = _claim(max_batches, max_events, lock=same_db)
        if not rows:
            return DrainStats()
        stats = apply_batches(rows)
        # In the same transaction as the events: the counters are exactly as durable.
        metrics.drain_observe(
            accepted=sum(r.event_count for r in rows), stored=stats.events,
            duplicates=stats.duplicates, refused=stats.refused,
            seconds=time.perf_counter() - started,
        )  # fmt: skip
        if same_db:
            # PostgreSQL: one transaction covers the events and the inbox delete.
            InboxBatch.objects.filter(id__in=[r.id for r in rows]).delete()
    if not same_db:
        # SQLite: the inbox is another file, so this is a second commit. A crash right
        # here leaves rows that the next drain finds already stored and skips.
        InboxBatch.objects.filter(id__in=[r.id for r in rows]).delete()
    stats.seconds = time.perf_counter() - started
    return stats


def _claim(max_batches: int, max_events: int, *, lock: bool) -> list[InboxBatch]:
    qs = InboxBatch.objects.order_by("id")
    if lock and connection.features.has_select_for_update_skip_locked:
        # Several consumers on PostgreSQL each take different rows.
        qs = qs.select_for_update(skip_locked=True)
        return _within(qs[:max_batches], max_events)
    # One drain at a time (SQLite): choose by the counts first, then read the bodies of
    # the chosen rows only. Reading max_batches bodies to keep the first few (about 40
    # batches of 500 fill max_events) cost more than the two queries.
    chosen = _within(qs.values_list("id", "event_count")[:max_batches], max_events)
    return list(InboxBatch.objects.filter(id__in=[pk for pk, _ in chosen]).order_by("id"))


def _within(rows, max_events: int) -> list:
    """The first rows (objects or (id, event_count) pairs) that hold at most max_events
    events, and always at least one row."""
    taken, events = [], 0
    for row in rows:
        count = row[1] if isinstance(row, tuple) else row.event_count
        if taken and events + count > max_events:
            break
        taken.append(row)
        events += count
    return taken


class _Sessions:
    """The sessions a drain touches, loaded once, changed in memory, saved once."""

    def __init__(self):
        self.by_key: dict[tuple[int, str], Session] = {}
        self.changed: set[tuple[int, str]] = set()

    def load(self, wanted: dict[tuple[int, str], dict], *, lock: bool = False) -> None:
        """Create the sessions that do not exist yet, then read them all.

        lock=True (PostgreSQL, several consumers): the rows are read FOR UPDATE, so two
        drains that touch the same session take turns and each continues from the
        other's last_seq and counters instead of overwriting them. Inserts and locks go
        in one global order, (application, key) then (application, id), so two drains
        never wait on each other in a circle.
        """
        by_app = defaultdict(list)
        for app_id, key in wanted:
            by_app[app_id].append(key)
        found = {
            (app_id, key)
            for app_id, keys in by_app.items()
            for key in Session.objects.filter(application_id=app_id, key__in=keys).values_list(
                "key", flat=True
            )
        }
        missing = [
            Session(
                application_id=app_id,
                key=key,
                started_at=from_micros(first["started_us"]),
                metadata=first["metadata"],
            )
            for (app_id, key), first in sorted(wanted.items())
            if (app_id, key) not in found
        ]
        if missing:
            # ignore_conflicts: another consumer may create the same session right now.
            Session.objects.bulk_create(missing, ignore_conflicts=True)
        lock = lock and connection.features.has_select_for_update
        for app_id in sorted(by_app):
            qs = Session.objects.filter(application_id=app_id, key__in=by_app[app_id])
            if lock:
                qs = qs.select_for_update().order_by("id")
            for session in qs:
                self.by_key[(app_id, session.key)] = session

    def get(self, app_id: int, key: str) -> Session:
        self.changed.add((app_id, key))
        return self.by_key[(app_id, key)]

    SAVED = (
        "status", "status_reason", "started_at", "ended_at", "last_event_at", "metadata",
        "event_count", "error_count", "byte_count", "last_seq", "refused_count",
    )  # fmt: skip

    def save(self) -> None:
        """One UPDATE per changed session, run as one executemany in id order (the lock
        order). bulk_update's CASE expressions cost more to build than the UPDATEs to
        run; the values are prepared by the fields exactly as bulk_update does it."""
        changed = sorted((self.by_key[k] for k in self.changed), key=lambda s: s.id)
        if not changed:
            return
        fields = [Session._meta.get_field(name) for name in self.SAVED]
        quote = connection.ops.quote_name
        sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        rows = [
            [f.get_db_prep_save(getattr(s, f.attname), connection) for f in fields] + [s.id]
            for s in changed
        ]
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {quote(Session._meta.db_table)} SET {sets} WHERE id = %s", rows
            )


def _wanted_sessions(docs) -> dict[tuple[int, str], dict]:
    """Every session the batches mention, with what to create it from if it is new."""
    wanted: dict[tuple[int, str], dict] = {}
    for row, doc in docs:
        received = to_micros(row.received_at)
        if row.kind == InboxBatch.Kind.EVENTS:
            for key, meta in doc["sessions"].items():
                wanted.setdefault((row.application_id, key), {"started_us": None, "metadata": {}})
                if meta:
                    wanted[(row.application_id, key)]["metadata"] = meta
            earliest: dict[str, int] = {}  # per session key: plain keys in the event loop
            for ev in doc["events"]:
                key, ts = ev["session"], ev["ts"]
                if ts < earliest.get(key, ts + 1):
                    earliest[key] = ts
            for key, ts in earliest.items():
                entry = wanted[(row.application_id, key)]
                if entry["started_us"] is None or ts < entry["started_us"]:
                    entry["started_us"] = ts
            for key in doc["sessions"]:
                # A batch-level session that none of the batch's events belong to (each
                # event named its own) still gets created, started when it was received.
                entry = wanted[(row.application_id, key)]
                if entry["started_us"] is None:
                    entry["started_us"] = received
        else:
            meta = doc["metadata"]
            entry = wanted.setdefault(
                (row.application_id, doc["key"]), {"started_us": None, "metadata": {}}
            )
            if row.kind == InboxBatch.Kind.SESSION:
                entry["metadata"] = {k: v for k, v in meta.items() if k != "started_at"}
                if meta.get("started_at") is not None:
                    entry["started_us"] = meta["started_at"]
            if entry["started_us"] is None:
                entry["started_us"] = received
    return wanted


def _known_uids(app_id: int, uids: list[str]) -> set[str]:
    # Raw SQL: building a 500-parameter IN through the ORM costs more than running it.
    known: set[str] = set()
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        for i in range(0, len(uids), LOOKUP_CHUNK):
            chunk = uids[i : i + LOOKUP_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT uid FROM {table} WHERE application_id = %s AND uid IN ({marks})",
                [app_id, *chunk],
            )
            known.update(row[0] for row in cursor.fetchall())
    return known


class _Conflict(Exception):
    """The fast path met uids that are already stored; redo the batch the careful way."""


def apply_batches(rows: list[InboxBatch]) -> DrainStats:
    """Turn inbox rows into sessions and events, inside the caller's transaction.

    Fast path: insert without looking uids up first. Nearly always nothing is stored
    yet, and the INSERT's row count proves it. If the count is short (a retried batch,
    a re-drain after a crash), the savepoint is rolled back and the batches are applied
    again with the stored uids filtered out first, so seq numbers and counters are
    only ever handed to events that are really inserted.
    """
    docs = [(row, _load(bytes(row.body))) for row in rows]
    wanted = _wanted_sessions(docs)
    if settings.INBOX_DB == "default":
        # Several drains can run at once here: hold the sessions for this transaction.
        # The fast path's savepoint is inside, so a retry keeps the locks.
        _Sessions().load(wanted, lock=True)
    try:
        with transaction.atomic():
            return _apply(docs, wanted, known=None)
    except _Conflict:
        uids_by_app = defaultdict(list)
        for row, doc in docs:
            if row.kind == InboxBatch.Kind.EVENTS:
                uids_by_app[row.application_id].extend(ev["uid"] for ev in doc["events"])
        known = {app_id: _known_uids(app_id, uids) for app_id, uids in uids_by_app.items()}
        return _apply(docs, wanted, known=known)


def _load(body: bytes) -> dict:
    doc = orjson.loads(body)
    # PostgreSQL cannot store NUL in text or jsonb; orjson writes it as \u0000, so the
    # byte search keeps the common case free.
    if b"\\u0000" in body and connection.vendor == "postgresql":
        doc = _without_nul(doc)
        for ev in doc.get("events", ()):
            for name in JSON_COLUMNS:  # JSON text inside the spool: clean its values too
                if isinstance(ev.get(name), str) and "\\u0000" in ev[name]:
                    ev[name] = orjson.dumps(_without_nul(orjson.loads(ev[name]))).decode()
    return doc


def _without_nul(value):
    """NUL in every string (keys too) becomes U+FFFD, the replacement character."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _insert_sql() -> str:
    columns = ", ".join(connection.ops.quote_name(c) for c in EVENT_COLUMNS)
    # JSON columns arrive as text; PostgreSQL needs the cast to jsonb.
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    marks = ", ".join(f"%s{cast}" if c in JSON_COLUMNS else "%s" for c in EVENT_COLUMNS)
    # ON CONFLICT DO NOTHING (SQLite and PostgreSQL): a uid already stored is skipped.
    return f"INSERT INTO {Event._meta.db_table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"


def event_row(app_id: int, session: Session, ev: dict, received: int) -> tuple:
    """The INSERT values of one event in spool form (recorder.ingest.event_spool_form),
    in EVENT_COLUMNS order, after the caller moved the session's seq on."""
    return (
        app_id, session.id, session.last_seq, ev["ts"], received, ev["type"], ev.get("source"),
        ev["severity"], ev.get("key"), ev.get("correlation_id"), ev.get("actor"),
        ev.get("message"), ev.get("payload"), ev.get("state"), ev["uid"], ev.get("size", 0),
        ev.get("redacted"),
    )  # fmt: skip


def insert_events(values: list[tuple], *, fast: bool = False) -> int:
    """Bulk insert (skipping stored uids) and index for full text, in the caller's
    transaction. Returns how many rows were inserted (-1 if the driver cannot tell).

    fast=True on PostgreSQL: COPY instead, which raises _Conflict if any uid is already
    stored; the caller must hold a savepoint to roll back to.
    """
    if fast and connection.vendor == "postgresql":
        inserted = _copy_events(values)  # the GIN full-text index is kept by PostgreSQL
    else:
        # Everything above this id after the insert is ours (the caller holds the lock).
        indexed_up_to = search.fts_last_event_id()
        with connection.cursor() as cursor:
            cursor.executemany(_insert_sql(), _packed(values))
            # psycopg 3 and sqlite3 both sum the rows of every execution here.
            inserted = cursor.rowcount
        _fts_index(values, indexed_up_to, inserted)
    # An event older than a stored keyframe makes that keyframe wrong: drop them in the
    # same transaction, whoever inserts (the drain or the importer).
    earliest: dict[int, int] = {}  # session id -> earliest ts inserted
    for row in values:
        session_id, ts = row[1], row[3]
        if ts < earliest.get(session_id, ts + 1):
            earliest[session_id] = ts
    keyframes_invalidate(earliest=earliest)
    return inserted


PAYLOAD_INDEX = EVENT_COLUMNS.index("payload")
MESSAGE_INDEX = EVENT_COLUMNS.index("message")


def _fts_index(values: list[tuple], indexed_up_to: int, inserted: int) -> None:
    """Full-text index the rows just inserted (SQLite; PostgreSQL keeps its own).

    When every row went in, their ids are known without reading them back: each new
    rowid is above every id before it, so the k-th row of `values` has the k-th id above
    indexed_up_to, and MIN/MAX/COUNT prove those ids have no gap. Then the message and
    the payload text in hand are indexed directly, which spares unpacking every payload
    through fr_json(). Otherwise (some uids were stored already) the rows are read back.
    """
    if connection.vendor != "sqlite":
        return
    n = len(values)
    if n and inserted == n:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT MIN(id), MAX(id), COUNT(*) FROM {Event._meta.db_table} WHERE id > %s",
                [indexed_up_to],
            )
            first, last, count = cursor.fetchone()
        if count == n and last - first + 1 == n:
            m, p = MESSAGE_INDEX, PAYLOAD_INDEX
            search.fts_index_rows([(first + k, row[m], row[p]) for k, row in enumerate(values)])
            return
    search.fts_index_new_events(indexed_up_to)


def _packed(values: list[tuple]) -> list[tuple]:
    """SQLite stores payloads packed with the current dictionary (recorder/payloads.py);
    PostgreSQL stores the JSON text as jsonb."""
    dict_id = payloads.current_dict_id()
    if dict_id is None:
        return values
    i, pack = PAYLOAD_INDEX, payloads.packer(dict_id)
    out = []
    for row in values:
        if (text := row[i]) is not None and (packed := pack(text)) is not text:
            row = (*row[:i], packed, *row[i + 1 :])  # only rows whose payload shrank
        out.append(row)
    return out


def _copy_events(values: list[tuple]) -> int:
    """PostgreSQL's fast path: COPY, about 2.5 times the rows per second of executemany
    (bench/ingest_postgres.py). COPY has no ON CONFLICT: a uid already stored fails the
    whole COPY, which rolls back to the fast path's savepoint and becomes a _Conflict."""
    from psycopg.errors import UniqueViolation  # installed with the PostgreSQL backend

    columns = ", ".join(connection.ops.quote_name(c) for c in EVENT_COLUMNS)
    with connection.cursor() as cursor:
        try:
            # The psycopg cursor under Django's wrapper: Django has no COPY of its own.
            with cursor.cursor.copy(f"COPY {Event._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        except UniqueViolation:
            raise _Conflict from None
    return len(values)


def _apply(docs, wanted, *, known: dict[int, set[str]] | None) -> DrainStats:
    sessions = _Sessions()
    sessions.load(wanted)
    stats = DrainStats(batches=len(docs))
    limits = retention.refuse_limits({row.application_id for row, _ in docs})
    values = []
    key_used = {}
    seen: dict[int, set[str]] = defaultdict(set)
    if known is not None:
        seen.update(known)
    for row, doc in docs:
        app_id = row.application_id
        received = to_micros(row.received_at)
        if row.api_key_id:
            key_used[row.api_key_id] = row.received_at
        if row.kind != InboxBatch.Kind.EVENTS:
            _apply_session_op(sessions.get(app_id, doc["key"]), row.kind, doc["metadata"], received)
            continue
        for key, meta in doc["sessions"].items():
            if meta:
                session = sessions.get(app_id, key)
                session.metadata = {**session.metadata, **meta}
        app_seen = seen[app_id]
        limit = limits.get(app_id)
        # This batch's sessions by key, and the earliest and latest event time (µs) each
        # got: compared as integers here, turned into datetimes once per session below.
        batch_sessions: dict[str, Session] = {}
        spans: dict[str, list[int]] = {}
        for ev in doc["events"]:
            uid = ev["uid"]
            if uid in app_seen:  # already stored, or twice in this drain
                stats.duplicates += 1
                continue
            app_seen.add(uid)
            key = ev["session"]
            session = batch_sessions.get(key)
            if session is None:
                session = batch_sessions[key] = sessions.get(app_id, key)
            if limit and session.event_count >= limit:
                # The session is full and its application refuses rather than trims:
                # count it on the session, where the dashboard shows it.
                session.refused_count += 1
                stats.refused += 1
                continue
            session.last_seq += 1
            _counts_after(session, ev)
            ts = ev["ts"]
            span = spans.get(key)
            if span is None:
                spans[key] = [ts, ts]
            elif ts < span[0]:
                span[0] = ts
            elif ts > span[1]:
                span[1] = ts
            values.append(event_row(app_id, session, ev, received))
        for key, (earliest, latest) in spans.items():
            _times_after(batch_sessions[key], earliest, latest)
    if values:
        inserted = insert_events(values, fast=known is None)
        if inserted != len(values):
            if known is None:
                raise _Conflict
            # Only a concurrent drain on PostgreSQL can get here; the constraint kept
            # the row single, the counters of this drain are off by the difference.
            log.warning("drain inserted %d of %d rows", inserted, len(values))
    stats.events = len(values)
    stats.sessions = {row[1] for row in values}  # sessions whose keyframes may need building
    sessions.save()
    for key_id, used in sorted(key_used.items()):  # lock order, as for sessions
        ApiKey.objects.filter(id=key_id).update(last_used_at=used)
    return stats


# Plain values for the per-event comparisons (enum members compare more slowly).
ERROR, FATAL = int(Severity.ERROR), int(Severity.FATAL)
ABANDONED = Session.Status.ABANDONED.value


def _count(session: Session, ev: dict) -> None:
    """One event arrived (the importer): counters, status and time range."""
    _counts_after(session, ev)
    _times_after(session, ev["ts"], ev["ts"])


def _counts_after(session: Session, ev: dict) -> None:
    """Counters and status after one event; the drain moves time ranges once per batch."""
    session.event_count += 1
    session.byte_count += ev.get("size", 0)
    severity = ev["severity"]
    if severity >= ERROR:
        session.error_count += 1
    if severity >= FATAL or session.status == ABANDONED or ev["type"] == "crash":
        _status_after(session, ev)


def _times_after(session: Session, earliest: int, latest: int) -> None:
    """Events from earliest to latest (µs) arrived: move the session's time range."""
    last = from_micros(latest)
    if session.last_event_at is None or last > session.last_event_at:
        session.last_event_at = last
    first = from_micros(earliest)
    if first < session.started_at:
        session.started_at = first


def _status_after(session: Session, ev: dict) -> None:
    if ev["severity"] >= Severity.FATAL or ev["type"] == "crash":
        if session.status in (Session.Status.OPEN, Session.Status.ABANDONED):
            session.status = Session.Status.CRASHED
            what = ev.get("message") or ev["type"]
            session.status_reason = f"fatal event: {what}"[:200]
    elif session.status == Session.Status.ABANDONED:
        # It was only quiet, not gone.
        session.status = Session.Status.OPEN
        session.status_reason = ""


def _apply_session_op(session: Session, kind: str, meta: dict, received: int) -> None:
    if kind == InboxBatch.Kind.SESSION:
        if meta.get("started_at") is not None:
            session.started_at = from_micros(meta["started_at"])
        session.metadata = {
            **session.metadata,
            **{k: v for k, v in meta.items() if k != "started_at"},
        }
        return
    # End marker: the app said goodbye. A crash it reports itself wins over "ended".
    ended_us = meta.get("ended_at") or meta.get("ts")
    if ended_us is None:
        ended_us = to_micros(session.last_event_at) if session.last_event_at else received
    session.ended_at = from_micros(ended_us)
    if meta.get("status") == Session.Status.CRASHED:
        session.status = Session.Status.CRASHED
        session.status_reason = str(meta.get("reason") or "ended as crashed by the sender")[:200]
    elif session.status != Session.Status.CRASHED:
        session.status = Session.Status.ENDED
        session.status_reason = str(meta.get("reason") or "end marker received")[:200]


def sessions_mark_abandoned(*, now: datetime | None = None) -> int:
    """Open sessions silent for longer than the idle limit are abandoned (no end marker)."""
    now = now or datetime.now(UTC)
    limit = settings.FLIGHTREC_ABANDON_AFTER_SECONDS
    cutoff = from_micros(to_micros(now) - limit * 1_000_000)
    quiet = Session.objects.filter(status=Session.Status.OPEN, last_event_at__lt=cutoff)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            # A session a drain holds right now is getting events, so it is not quiet;
            # skipping it also keeps this UPDATE from deadlocking against the drain.
            quiet = Session.objects.filter(
                id__in=list(quiet.select_for_update(skip_locked=True).values_list("id", flat=True))
            )
        return quiet.update(
            status=Session.Status.ABANDONED,
            status_reason=f"no end marker and no event for {limit // 60} minutes",
        )
