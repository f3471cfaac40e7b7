"""Snapshot, diff and replay of a session (see DESIGN.md, "Time travel").

`at`, `from` and `to` take an event id (digits) or a time (RFC 3339, or epoch seconds
with a decimal point).
"""

import math

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema
from ninja.errors import HttpError

from recorder import timetravel
from recorder.access import visible_sessions
from recorder.api.auth import read_auth
from recorder.api.errors import READ_ERRORS, Error
from recorder.api.sessions import principal
from recorder.models import Session

router = Router(tags=["time travel"], auth=read_auth)

MAX_SPEED = 1000.0


class SnapshotOut(Schema):
    session: int
    at: dict
    event: dict | None
    state: dict
    latest: dict[str, dict]
    latest_truncated: bool
    counts: dict
    recent: list[dict]
    errors: list[dict]
    error_count: int
    cost: dict


class DiffOut(Schema):
    session: int
    state: list[dict]
    latest: dict[str, dict]
    latest_truncated: bool
    counts: dict
    errors: list[dict]


def _session(request: HttpRequest, session_id: int) -> Session:
    # Another application's session is indistinguishable from a missing one.
    return get_object_or_404(visible_sessions(principal(request)), id=session_id)


def _position(session: Session, raw: str | None, name: str) -> timetravel.Position:
    try:
        return timetravel.position_parse(session, raw or "", name=name)
    except timetravel.PositionError as exc:
        raise HttpError(exc.status, exc.message) from None


@router.get(
    "/sessions/{session_id}/snapshot",
    response={200: SnapshotOut, **READ_ERRORS},
    summary="State, latest value per key, counts and recent events at an instant",
)
def snapshot(request: HttpRequest, session_id: int, at: str):
    session = _session(request, session_id)
    return timetravel.snapshot_at(session=session, at=_position(session, at, "at"))


@router.get(
    "/sessions/{session_id}/diff",
    response={200: DiffOut, **READ_ERRORS},
    summary="What changed in state (JSON Patch) and latest values between two instants",
)
def diff(
    request: HttpRequest,
    session_id: int,
    start: str = Query(..., alias="from"),
    end: str = Query(..., alias="to"),
):
    session = _session(request, session_id)
    return timetravel.diff_between(
        session=session,
        start=_position(session, start, "from"),
        end=_position(session, end, "to"),
    )


class ReplayIndexOut(Schema):
    # Rows of [id, ts µs, seq, severity]. Declared as plain lists: pydantic writes a
    # tuple as the draft-07 "items: [...]" form, which OpenAPI 3.1 schemas reject.
    events: list[list[int | str]]
    truncated: bool


@router.get(
    "/sessions/{session_id}/replay/index",
    response={200: ReplayIndexOut, **READ_ERRORS},
    summary="Every event as [id, ts µs, seq, severity], for a player's clock and scrubber",
)
def replay_index(request: HttpRequest, session_id: int):
    return timetravel.replay_index(session=_session(request, session_id))


def _speed(raw: str) -> float:
    if raw.strip().lower() in ("max", "inf", "0"):
        return math.inf  # as fast as the client reads
    try:
        speed = float(raw)
    except ValueError:
        speed = -1.0
    if not 0 < speed <= MAX_SPEED:
        raise HttpError(400, f"speed must be a number in (0, {MAX_SPEED:g}] or max")
    return speed


@router.get(
    "/sessions/{session_id}/replay",
    summary="Replay as Server-Sent Events, each event at its real time divided by speed",
    response={200: None, 429: Error, **READ_ERRORS},
)
def replay(
    request: HttpRequest,
    session_id: int,
    speed: str = "1",
    start: str | None = Query(None, alias="from"),
    end: str | None = Query(None, alias="to"),
    skip_idle: float | None = None,
):
    session = _session(request, session_id)
    pace = _speed(speed)
    if skip_idle is not None and skip_idle < 0:
        raise HttpError(400, "skip_idle must be a number of seconds ≥ 0")
    first = _position(session, start, "from") if start else None
    last = _position(session, end, "to") if end else None
    try:
        release = timetravel.replay_slot()
    except timetravel.ReplayBusy:
        busy = JsonResponse({"detail": "too many replays are streaming; retry shortly"}, status=429)
        busy["Retry-After"] = "5"
        return busy
    stream = _Stream(
        timetravel.replay_stream(
            session_id=session.id, speed=pace, start=first, end=last, skip_idle=skip_idle
        ),
        release,
    )
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
    return response


class _Stream:
    """The SSE body; closing it (end, error or client gone) gives the slot back.

    A class rather than a generator's finally: the server closes the body even when it
    never started iterating, and an unstarted generator would not run its finally.
    """

    def __init__(self, messages, release):
        self.messages = messages
        self.release = release

    def __iter__(self):
        return iter(self.messages)

    def close(self) -> None:
        try:
            self.messages.close()
        finally:
            self.release()
