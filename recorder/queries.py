"""Read-side selectors: pages of sessions and timelines with keyset cursors.

Keyset pagination (WHERE (ts, seq) > (last ts, last seq)) instead of OFFSET, so the
last page of a million-event session costs the same as the first: the timeline index
(session, ts, seq) is walked from the cursor on.
"""

import base64

from django.db.models import Q, QuerySet
from ninja.errors import HttpError

from recorder.fields import from_micros, to_micros
from recorder.models import Event, Session

MAX_LIMIT = 1000


def encode_cursor(*parts: int) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = [int(p) for p in raw.split(":")]
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "cursor is not valid: pass next_cursor from a previous page") from None
    if len(parts) != size:
        raise HttpError(400, "cursor is not valid: pass next_cursor from a previous page")
    return parts


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise HttpError(400, f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def sessions_page(
    sessions: QuerySet[Session], *, cursor: str | None = None, limit: int = 50
) -> tuple[list[Session], str | None]:
    """Newest first, by (started_at, id) descending."""
    limit = _limit(limit)
    if cursor:
        started_us, last_id = decode_cursor(cursor, 2)
        started = from_micros(started_us)
        sessions = sessions.filter(
            Q(started_at__lt=started) | Q(started_at=started, id__lt=last_id)
        )
    items = list(sessions.order_by("-started_at", "-id")[: limit + 1])
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(to_micros(last.started_at), last.id)
    return items, next_cursor


def timeline_page(
    session: Session, *, after: str | None = None, limit: int = 100, events: QuerySet | None = None
) -> tuple[list[Event], str | None]:
    """Events of one session in (ts, seq) order, starting after the cursor."""
    limit = _limit(limit)
    qs = (events if events is not None else Event.objects).filter(session=session)
    if after:
        ts_us, seq = decode_cursor(after, 2)
        qs = qs.filter(Q(ts__gt=ts_us) | Q(ts=ts_us, seq__gt=seq))
    items = list(qs.order_by("ts", "seq")[: limit + 1])
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(to_micros(last.ts), last.seq)
    return items, next_cursor
