"""Retention: which data the policies remove, and removing it without hurting ingestion.

Policies (global defaults in settings, per-application overrides on Application):
- max age: sessions whose last event is older than N days go, whole;
- max sessions per application: the newest N stay;
- max events per session: "drop_oldest" trims the oldest events here, "refuse" makes the
  drain store no more (recorder/drain.py) and count what it refused on the session;
- database byte budget: above FLIGHTREC_BODY_DROP_RATIO of it, captured HTTP bodies are
  dropped, oldest first (metadata stays); above the budget, the oldest sessions go.
Pinned sessions are never touched by any policy.

Every delete is a chunk of FLIGHTREC_PURGE_CHUNK rows in its own short transaction
followed by a pause, so the drain (the only other writer of the events table) never
waits long. A session is deleted only if no event arrived for it since it was planned
(its last_seq is unchanged); otherwise only the events planned for removal go.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Sum

from recorder import storage, timetravel
from recorder.fields import to_micros
from recorder.models import Application, Event, PurgeLog, Session, Severity
from recorder.redaction import BODY_KEYS, BODY_PARENTS

OVERFLOW_CHOICES = ("drop_oldest", "refuse")


@dataclass(frozen=True)
class Policy:
    retention_days: int  # 0 = keep forever
    max_sessions: int  # 0 = no limit
    max_events_per_session: int  # 0 = no limit
    overflow: str  # drop_oldest | refuse


def policy_for(application: Application) -> Policy:
    """The application's overrides on top of the global defaults."""

    def pick(value, default):
        return default if value is None else value

    return Policy(
        retention_days=pick(application.retention_days, settings.FLIGHTREC_RETENTION_DAYS),
        max_sessions=pick(application.max_sessions, settings.FLIGHTREC_MAX_SESSIONS_PER_APP),
        max_events_per_session=pick(
            application.max_events_per_session, settings.FLIGHTREC_MAX_EVENTS_PER_SESSION
        ),
        overflow=application.session_overflow or settings.FLIGHTREC_SESSION_OVERFLOW,
    )


def refuse_limits(app_ids) -> dict[int, int]:
    """For the drain: application id -> event limit, for applications that refuse."""
    limits = {}
    for app in Application.objects.filter(id__in=set(app_ids)):
        policy = policy_for(app)
        if policy.overflow == "refuse" and policy.max_events_per_session:
            limits[app.id] = policy.max_events_per_session
    return limits


@dataclass
class PurgeResult:
    policy: str
    application: Application | None
    detail: str = ""
    sessions: int = 0
    events: int = 0
    bodies: int = 0
    bytes: int = 0
    lines: list[str] = field(default_factory=list)  # what was (or would be) removed

    @property
    def removed_anything(self) -> bool:
        return bool(self.sessions or self.events or self.bodies)

    def summary(self, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        where = f"{self.application.name}: " if self.application else ""
        what = f"{self.sessions} sessions, {self.events} events"
        if self.bodies:
            what += f", {self.bodies} HTTP bodies"
        return f"{where}{self.policy} ({self.detail}) {verb} {what}, {self.bytes} bytes"


@dataclass
class _Tuning:
    chunk: int
    pause: float


def _tuning() -> _Tuning:
    return _Tuning(
        chunk=max(1, settings.FLIGHTREC_PURGE_CHUNK),
        pause=settings.FLIGHTREC_PURGE_PAUSE_MS / 1000,
    )


# --- Chunked deletes -------------------------------------------------------------------


def _delete_events_chunked(
    session_id: int, *, upto_seq: int | None, limit: int | None, extra: Q | None = None
) -> tuple[int, int]:
    """Delete a session's oldest events in (ts, seq) order, chunk by chunk.

    Walks the event_timeline index (session, ts, seq), so each chunk costs its own size
    whatever the session's length. Returns (events, bytes) removed.
    """
    tuning = _tuning()
    events = size = 0
    while limit is None or events < limit:
        take = tuning.chunk if limit is None else min(tuning.chunk, limit - events)
        qs = Event.objects.filter(session_id=session_id)
        if upto_seq is not None:
            qs = qs.filter(seq__lte=upto_seq)
        if extra is not None:
            qs = qs.filter(extra)
        with transaction.atomic():
            # The session row first, as keyframes_build and the drain do: on PostgreSQL a
            # keyframe build cannot fold the events this chunk removes and store the
            # result after it (on SQLite the IMMEDIATE transaction serializes anyway).
            list(Session.objects.select_for_update().filter(id=session_id).values_list("id"))
            rows = list(qs.order_by("ts", "seq").values_list("id", "size", "severity", "ts")[:take])
            if not rows:
                break
            Event.objects.filter(id__in=[r[0] for r in rows]).delete()
            # Every keyframe at or after the first removed event folded it in: drop them
            # in the same transaction (ts - 1: "after" it, its own ts included), so a
            # snapshot always equals a fold of the events that remain. The callers
            # rebuild them once the whole trim is done.
            timetravel.keyframes_invalidate(earliest={session_id: to_micros(rows[0][3]) - 1})
            n, b = len(rows), sum(r[1] for r in rows)
            errors = sum(1 for r in rows if r[2] >= Severity.ERROR)
            Session.objects.filter(id=session_id).update(
                event_count=F("event_count") - n,
                byte_count=F("byte_count") - b,
                error_count=F("error_count") - errors,
            )
        events += n
        size += b
        time.sleep(tuning.pause)
    return events, size


def sessions_delete(sessions: list[Session], *, extra: Q | None = None) -> tuple[int, int, int]:
    """Delete sessions chunk by chunk. Returns (sessions, events, bytes) removed.

    Events that arrived after planning (seq above the planned last_seq) are kept, and
    then so is their session.
    """
    removed_sessions = events = size = 0
    for session in sessions:
        n, b = _delete_events_chunked(
            session.id, upto_seq=session.last_seq, limit=None, extra=extra
        )
        events += n
        size += b
        with transaction.atomic():
            # Cascades to whatever else hangs off the session (all small by now).
            deleted, _ = Session.objects.filter(
                id=session.id, last_seq=session.last_seq, pinned=False
            ).delete()
        if deleted:
            removed_sessions += 1
        elif n:
            timetravel.keyframes_build(session_id=session.id)  # kept for its new events
        time.sleep(_tuning().pause)
    return removed_sessions, events, size


def _describe(session: Session) -> str:
    last = session.last_event_at or session.created_at
    return (
        f"  session {session.id} {session.key!r}: {session.event_count} events, "
        f"{session.byte_count} bytes, last event {last:%Y-%m-%d %H:%M}"
    )


def _apply_session_policy(
    result: PurgeResult,
    sessions: list[Session],
    *,
    dry_run: bool,
    planned: set[int],
    extra: Q | None = None,
) -> PurgeResult:
    planned.update(s.id for s in sessions)
    result.lines = [_describe(s) for s in sessions]
    if dry_run:
        result.sessions = len(sessions)
        result.events = sum(s.event_count for s in sessions)
        result.bytes = sum(s.byte_count for s in sessions)
    else:
        result.sessions, result.events, result.bytes = sessions_delete(sessions, extra=extra)
    return result


# --- Policies --------------------------------------------------------------------------


def _deletable(app: Application, planned: set[int]):
    # planned: sessions an earlier policy of this run removes (or, in a dry run, would
    # remove); later policies skip them, so a dry run reports what the real run does.
    return Session.objects.filter(application=app, pinned=False).exclude(id__in=planned)


def purge_max_age(
    app: Application, policy: Policy, *, now: datetime, dry_run: bool, planned: set[int]
):
    if not policy.retention_days:
        return None
    cutoff = now - timedelta(days=policy.retention_days)
    old = _deletable(app, planned).filter(
        Q(last_event_at__lt=cutoff) | Q(last_event_at__isnull=True, created_at__lt=cutoff)
    )
    result = PurgeResult("max_age", app, f"older than {policy.retention_days} days")
    # ts__lt=cutoff: an event with a fresh timestamp arriving meanwhile is not removed.
    return _apply_session_policy(
        result, list(old.order_by("id")), dry_run=dry_run, planned=planned, extra=Q(ts__lt=cutoff)
    )


def purge_max_sessions(app: Application, policy: Policy, *, dry_run: bool, planned: set[int]):
    if not policy.max_sessions:
        return None
    extra = _deletable(app, planned).order_by("-started_at", "-id")[policy.max_sessions :]
    result = PurgeResult("max_sessions", app, f"keep the newest {policy.max_sessions}")
    return _apply_session_policy(result, list(extra), dry_run=dry_run, planned=planned)


def purge_max_events(app: Application, policy: Policy, *, dry_run: bool, planned: set[int]):
    limit = policy.max_events_per_session
    if not limit or policy.overflow != "drop_oldest":
        return None
    result = PurgeResult("max_events", app, f"keep the newest {limit} events per session")
    for session in _deletable(app, planned).filter(event_count__gt=limit).order_by("id"):
        excess = session.event_count - limit
        result.lines.append(f"  session {session.id} {session.key!r}: oldest {excess} events")
        if dry_run:
            result.events += excess
            result.bytes += round(session.byte_count * excess / session.event_count)
            continue
        n, b = _delete_events_chunked(session.id, upto_seq=None, limit=excess)
        Session.objects.filter(id=session.id).update(trimmed_count=F("trimmed_count") + n)
        timetravel.keyframes_build(session_id=session.id)  # the trim removed them all
        result.events += n
        result.bytes += b
    return result


# --- Byte budget -----------------------------------------------------------------------


def _body_filter() -> Q:
    q = Q()
    for key in BODY_KEYS:
        q |= Q(payload__has_key=key)
    for parent in BODY_PARENTS:
        q |= Q(**{f"payload__{parent}__has_key": "body"})
    return Q(type="http") & q


def strip_bodies(payload: dict) -> tuple[dict, list[str]]:
    """A copy of an http payload without its captured bodies, and the paths removed."""
    out = dict(payload)
    removed = []
    for key in BODY_KEYS:
        if key in out:
            del out[key]
            removed.append(f"payload.{key}")
    for parent in BODY_PARENTS:
        sub = out.get(parent)
        if isinstance(sub, dict) and "body" in sub:
            out[parent] = {k: v for k, v in sub.items() if k != "body"}
            removed.append(f"payload.{parent}.body")
    return out, removed


def _body_bytes(payload: dict) -> int:
    stripped, _ = strip_bodies(payload)
    import orjson

    return len(orjson.dumps(payload)) - len(orjson.dumps(stripped))


def bodies_drop(*, target_bytes: int, app: Application | None, dry_run: bool) -> PurgeResult:
    """Drop captured HTTP bodies, oldest events first, until about target_bytes are freed."""
    tuning = _tuning()
    result = PurgeResult("http_bodies", app)
    qs = Event.objects.filter(_body_filter())
    if app is not None:
        qs = qs.filter(application=app)
    last_id = 0
    while result.bytes < target_bytes:
        # By id (arrival order), resuming after the last chunk: stripped rows are not
        # scanned again.
        rows = list(qs.filter(id__gt=last_id).order_by("id").only("id", "session_id", "payload", "size", "redacted")[: tuning.chunk])  # fmt: skip
        if not rows:
            break
        last_id = rows[-1].id
        changed, per_session = [], {}
        for event in rows:
            if result.bytes >= target_bytes:
                break
            freed = _body_bytes(event.payload)
            event.payload, paths = strip_bodies(event.payload)
            event.redacted = sorted(
                set(event.redacted or []) | {f"{p} (dropped by retention)" for p in paths}
            )
            event.size = max(0, event.size - freed)
            per_session[event.session_id] = per_session.get(event.session_id, 0) + freed
            result.bodies += 1
            result.bytes += freed
            changed.append(event)
        if dry_run or not changed:
            continue
        with transaction.atomic():
            Event.objects.bulk_update(changed, ["payload", "size", "redacted"])
            for session_id, freed in per_session.items():
                Session.objects.filter(id=session_id).update(byte_count=F("byte_count") - freed)
        time.sleep(tuning.pause)
    result.detail = f"over {settings.FLIGHTREC_BODY_DROP_RATIO:.0%} of the byte budget"
    return result


def purge_budget(
    *, app: Application | None, dry_run: bool, planned: set[int] | None = None
) -> list[PurgeResult]:
    """Keep the database under FLIGHTREC_MAX_DB_BYTES: bodies first, then oldest sessions."""
    budget = settings.FLIGHTREC_MAX_DB_BYTES
    if not budget:
        return []
    planned = set() if planned is None else planned
    results = []
    used = storage.database_used_bytes()
    soft = int(budget * settings.FLIGHTREC_BODY_DROP_RATIO)
    if used > soft:
        results.append(bodies_drop(target_bytes=used - soft, app=app, dry_run=dry_run))
        if not dry_run:
            storage.vacuum_incremental()
            used = storage.database_used_bytes()
        else:
            used -= results[-1].bytes
    # Several rounds: the bytes a session takes on disk (indexes, page slack) are only
    # estimated from its envelope bytes, so measure again after each round.
    rounds = 3 if connection.vendor == "sqlite" and not dry_run else 1
    for _ in range(rounds):
        if used <= budget:
            break
        overhead = _disk_overhead(used)
        need = used - budget
        candidates = Session.objects.filter(pinned=False).exclude(id__in=planned)
        if app is not None:
            candidates = candidates.filter(application=app)
        chosen, estimate = [], 0.0
        for session in candidates.order_by(F("last_event_at").asc(nulls_first=True), "id"):
            chosen.append(session)
            estimate += max(session.byte_count, 1) * overhead
            if estimate >= need:
                break
        if not chosen:
            break
        result = PurgeResult("max_db_bytes", app, f"budget {budget} bytes, used {used}")
        results.append(_apply_session_policy(result, chosen, dry_run=dry_run, planned=planned))
        if dry_run:
            break
        storage.vacuum_incremental()
        used = storage.database_used_bytes()
    return results


def _disk_overhead(used: int) -> float:
    """Bytes on disk per envelope byte: indexes, row headers, page slack."""
    envelope = Session.objects.aggregate(n=Sum("byte_count"))["n"] or 0
    return max(1.0, used / envelope) if envelope else 1.0


# --- Entry point -----------------------------------------------------------------------


def purge_run(
    *,
    app: Application | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[PurgeResult], None] | None = None,
) -> list[PurgeResult]:
    """Apply every policy (to one application or all), reclaim space, record the run."""
    started = datetime.now(UTC)
    now = now or started
    apps = [app] if app is not None else list(Application.objects.order_by("id"))
    planned: set[int] = set()
    results: list[PurgeResult] = []

    def keep(result):
        if result is not None:
            results.append(result)
            if progress:
                progress(result)

    for application in apps:
        policy = policy_for(application)
        keep(purge_max_age(application, policy, now=now, dry_run=dry_run, planned=planned))
        keep(purge_max_sessions(application, policy, dry_run=dry_run, planned=planned))
        keep(purge_max_events(application, policy, dry_run=dry_run, planned=planned))
    for result in purge_budget(app=app, dry_run=dry_run, planned=planned):
        keep(result)
    if dry_run:
        return results
    storage.vacuum_incremental()
    if settings.INBOX_DB != "default":
        storage.vacuum_incremental(settings.INBOX_DB)  # drained rows leave free pages too
    finished = datetime.now(UTC)
    logs = [
        PurgeLog(
            started_at=started,
            finished_at=finished,
            policy=r.policy,
            application=r.application,
            detail=r.detail[:200],
            sessions_removed=r.sessions,
            events_removed=r.events,
            bodies_dropped=r.bodies,
            bytes_removed=r.bytes,
        )  # fmt: skip
        for r in results
        if r.removed_anything
    ]
    if not logs:
        # Recorded anyway: "last purge" on /storage says the purge runs.
        logs = [PurgeLog(started_at=started, finished_at=finished, policy="none",
                         application=app, detail="nothing to remove")]  # fmt: skip
    PurgeLog.objects.bulk_create(logs)
    return results
