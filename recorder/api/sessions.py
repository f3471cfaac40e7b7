"""Read endpoints: sessions, timelines with filters, histogram, events, correlation, latest.

Filters are read from the raw query string by recorder.queries.parse_event_filters (so
repeated parameters and the filter-bar syntax work the same here as on the dashboard);
they are also declared on each endpoint so they show up in the OpenAPI document.
"""

from datetime import datetime

from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema

from recorder import queries
from recorder.access import visible_events, visible_sessions
from recorder.api.auth import read_auth
from recorder.api.errors import READ_ERRORS
from recorder.api.ingest import router as ingest_router
from recorder.fields import to_micros
from recorder.models import Event

router = Router(tags=["sessions"], auth=read_auth)
# django-ninja builds one URL pattern per path *per router*, so a GET on a path that the
# ingestion router already POSTs to (/sessions, /events) would be shadowed by its
# POST-only view (405). Those two reads are registered on that router, with read auth.
shared_paths = ingest_router


def principal(request: HttpRequest):
    """An API key (request.auth) or the logged-in user."""
    return request.auth if not hasattr(request.auth, "is_authenticated") else request.user


class Error(Schema):
    detail: str


class SessionOut(Schema):
    id: int
    application: str
    application_id: int
    environment: str
    key: str
    status: str
    status_reason: str
    started_at: datetime
    ended_at: datetime | None
    last_event_at: datetime | None
    duration_seconds: float | None
    metadata: dict
    event_count: int
    error_count: int
    byte_count: int
    pinned: bool

    @staticmethod
    def resolve_application(obj) -> str:
        return obj.application.name

    @staticmethod
    def resolve_environment(obj) -> str:
        return obj.application.environment

    @staticmethod
    def resolve_duration_seconds(obj) -> float | None:
        end = obj.ended_at or obj.last_event_at
        return (end - obj.started_at).total_seconds() if end else None


class SessionPage(Schema):
    items: list[SessionOut]
    next_cursor: str | None


class EventOut(Schema):
    id: int
    uid: str
    session_id: int
    seq: int
    ts: datetime
    received_at: datetime
    type: str
    source: str | None
    severity: str
    key: str | None
    correlation_id: str | None
    actor: str | None
    message: str | None
    payload: dict | None
    state: dict | None
    redacted: list | None

    @staticmethod
    def resolve_severity(obj) -> str:
        return obj.get_severity_display()


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None
    prev_cursor: str | None = None
    # Cursor of the last item even when nothing follows yet: a live tail polls with it.
    last_cursor: str | None = None


class EventInSession(EventOut):
    session_key: str
    application: str

    @staticmethod
    def resolve_session_key(obj) -> str:
        return obj.session.key

    @staticmethod
    def resolve_application(obj) -> str:
        return obj.session.application.name


class EventInSessionPage(Schema):
    items: list[EventInSession]
    next_cursor: str | None
    prev_cursor: str | None = None


class Bucket(Schema):
    start: datetime
    counts: dict[str, int]


class Histogram(Schema):
    start: datetime
    end: datetime
    bucket_seconds: float
    severities: list[str]
    buckets: list[Bucket]


class EventFilterParams(Schema):
    """Documented here; read from the query string by parse_event_filters."""

    type: list[str] | None = None
    severity: str | None = None
    source: list[str] | None = None
    key: str | None = None
    correlation_id: str | None = None
    actor: str | None = None
    since: str | None = None
    until: str | None = None
    q: str | None = None
    where: list[str] | None = None
    filter: str | None = None


def _filters(request: HttpRequest) -> queries.EventFilters:
    return queries.parse_event_filters(request.GET)


def _page_dict(page: queries.Page, order=queries.SESSION_ORDER) -> dict:
    last = page.items[-1] if page.items else None
    return {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "prev_cursor": page.prev_cursor,
        "last_cursor": queries.encode_cursor(to_micros(last.ts), getattr(last, order[1]))
        if last
        else None,
    }


ERRORS = READ_ERRORS


@shared_paths.get(
    "/sessions",
    response={200: SessionPage, **ERRORS},
    summary="List sessions",
    auth=read_auth,
    tags=["sessions"],
)
def list_sessions(
    request: HttpRequest,
    q: str | None = None,
    app: str | None = None,
    environment: str | None = None,
    version: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    sort: str = "-started",
    cursor: str | None = None,
    limit: int = 50,
):
    """Newest first by default. `q` searches the session key and metadata, `app` takes
    names or ids (comma list), `status` open/ended/crashed/abandoned (comma list),
    `since`/`until` bound the start time, `sort` is -started, started, -events, -errors."""
    sessions = visible_sessions(principal(request)).select_related("application")
    sessions = queries.filter_sessions(sessions, queries.parse_session_filters(request.GET))
    items, next_cursor = queries.sessions_page(sessions, cursor=cursor, limit=limit, sort=sort)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="One session")
def get_session(request: HttpRequest, session_id: int):
    sessions = visible_sessions(principal(request)).select_related("application")
    return get_object_or_404(sessions, id=session_id)


@router.get(
    "/sessions/{session_id}/events",
    response={200: EventPage, **ERRORS},
    summary="A session's timeline, filtered",
)
def list_events(
    request: HttpRequest,
    session_id: int,
    filters: Query[EventFilterParams],
    after: str | None = None,
    before: str | None = None,
    last: bool = False,
    start: str | None = None,
    at: int | None = None,
    limit: int = 100,
):
    """Events in (ts, seq) order. Filters: `type` (repeat or comma list), `severity`
    (minimum), `source`, `key` (`*` wildcards), `correlation_id`, `actor`, `since`,
    `until`, `q` (full text over message and payload), `where` (repeatable payload
    condition: `status>=500`, `method=POST`, `topic~sensors/*`), `filter` (a whole
    filter-bar line). Pages: `after`/`before` a cursor, `last=true` for the final page,
    `start` (a time) to jump, `at` (an event id) for a page around that event."""
    session = get_object_or_404(visible_sessions(principal(request)), id=session_id)
    qs = queries.filter_events(
        Event.objects.filter(session=session), _filters(request), session_id=session.id
    )
    if at is not None:
        target = get_object_or_404(Event, id=at, session=session)
        return _page_dict(queries.events_around(qs, target, limit=limit))
    page = queries.events_page(
        qs,
        after=after,
        before=before,
        last=last,
        start=queries.parse_time(start, "start") if start else None,
        limit=limit,
    )
    return _page_dict(page)


@router.get(
    "/sessions/{session_id}/histogram",
    response={200: Histogram, **ERRORS},
    summary="Event rate over a session, by severity",
)
def session_histogram(
    request: HttpRequest, session_id: int, filters: Query[EventFilterParams], buckets: int = 60
):
    """Counts per time bucket and severity over the session (or over since/until), with
    the same filters as the timeline. Empty buckets are included: idle stretches."""
    session = get_object_or_404(visible_sessions(principal(request)), id=session_id)
    f = _filters(request)
    qs = queries.filter_events(Event.objects.filter(session=session), f, session_id=session.id)
    start = f.since or session.started_at
    end = f.until or session.ended_at or session.last_event_at or session.started_at
    if f.until is None and session.last_event_at and session.last_event_at > end:
        end = session.last_event_at
    return queries.histogram(qs, start=start, end=max(start, end), buckets=buckets)


@router.get("/events/{event_id}", response={200: EventInSession, **ERRORS}, summary="One event")
def get_event(request: HttpRequest, event_id: int):
    events = visible_events(principal(request)).select_related("session__application")
    return get_object_or_404(events, id=event_id)


@shared_paths.get(
    "/events",
    response={200: EventInSessionPage, **ERRORS},
    summary="Events across sessions, filtered",
    auth=read_auth,
    tags=["sessions"],
)
def list_all_events(
    request: HttpRequest,
    filters: Query[EventFilterParams],
    app: str | None = None,
    session: int | None = None,
    after: str | None = None,
    before: str | None = None,
    last: bool = False,
    limit: int = 100,
):
    """Events of every visible session in (ts, id) order; the same filters as a
    timeline, plus `app` (name or id) and `session` (id). Use since/until: a time range
    is what keeps this fast on a large database."""
    qs = visible_events(principal(request)).select_related("session__application")
    if app:
        qs = qs.filter(
            Q(application__name=app) | Q(application_id=int(app) if app.isdigit() else -1)
        )
    if session is not None:
        qs = qs.filter(session_id=session)
    qs = queries.filter_events(qs, _filters(request), session_id=session)
    page = queries.events_page(
        qs, after=after, before=before, last=last, limit=limit, order=queries.GLOBAL_ORDER
    )
    return {"items": page.items, "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor}


@router.get(
    "/correlation/{correlation_id}",
    response={200: EventInSessionPage, **ERRORS},
    summary="A correlation chain across sessions",
)
def correlation_chain(
    request: HttpRequest,
    correlation_id: str,
    app: str | None = None,
    after: str | None = None,
    limit: int = 100,
):
    """Every visible event with this correlation id, across the sessions of the
    application (`app`: name or id, to pick one when several use the same id)."""
    qs = queries.correlation_events(principal(request), correlation_id, app=app)
    page = queries.events_page(qs, after=after, limit=limit, order=queries.GLOBAL_ORDER)
    return {"items": page.items, "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor}


class LatestGroup(Schema):
    key: str
    events: list[EventOut]


class LatestOut(Schema):
    items: list[LatestGroup]


@router.get("/latest", response={200: LatestOut, **ERRORS}, summary="Latest events per key")
def latest(
    request: HttpRequest,
    pattern: str = "*",
    n: int = 1,
    session: int | None = None,
    app: str | None = None,
):
    """For each key matching `pattern` (`*` wildcards, e.g. `accuracy::*`), its latest
    `n` events (newest first), in one session or across the visible sessions."""
    if session is not None and not -(2**63) <= session < 2**63:
        # SQLite's driver refuses it; PostgreSQL would compare it as numeric and find
        # nothing. Say so the same way on both.
        raise OverflowError(session)
    return {
        "items": queries.latest_by_key(
            principal(request), pattern=pattern, n=n, session_id=session, app=app
        )
    }
