"""Read endpoints for sessions and their events."""

from datetime import datetime

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from recorder import queries
from recorder.access import visible_sessions
from recorder.api.auth import read_auth
from recorder.api.errors import READ_ERRORS

router = Router(tags=["sessions"], auth=read_auth)


def principal(request: HttpRequest):
    """An API key (request.auth) or the logged-in user."""
    return request.auth if not hasattr(request.auth, "is_authenticated") else request.user


class SessionOut(Schema):
    id: int
    application: str
    environment: str
    key: str
    status: str
    status_reason: str
    started_at: datetime
    ended_at: datetime | None
    last_event_at: datetime | None
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


@router.get(
    "/sessions", response={200: SessionPage, **READ_ERRORS}, summary="List sessions, newest first"
)
def list_sessions(request: HttpRequest, cursor: str | None = None, limit: int = 50):
    sessions = visible_sessions(principal(request)).select_related("application")
    items, next_cursor = queries.sessions_page(sessions, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/sessions/{session_id}", response={200: SessionOut, **READ_ERRORS}, summary="One session"
)
def get_session(request: HttpRequest, session_id: int):
    sessions = visible_sessions(principal(request)).select_related("application")
    return get_object_or_404(sessions, id=session_id)


@router.get(
    "/sessions/{session_id}/events",
    response={200: EventPage, **READ_ERRORS},
    summary="A session's timeline",
)
def list_events(request: HttpRequest, session_id: int, after: str | None = None, limit: int = 100):
    session = get_object_or_404(visible_sessions(principal(request)), id=session_id)
    items, next_cursor = queries.timeline_page(session, after=after, limit=limit)
    return {"items": items, "next_cursor": next_cursor}
