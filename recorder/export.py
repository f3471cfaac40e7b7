"""Exports: a session (or an application's time range) as NDJSON, JSON or HAR, streamed.

Every export is a generator of byte chunks, so a view can hand it to a
StreamingHttpResponse and a command can write it to a file, and memory stays flat
whatever the session's length: events are read in keyset chunks over (ts, seq) — never
OFFSET, never the whole session — and each chunk is encoded and let go.

NDJSON (the format of record): the first line is a session header
    {"session": {"key": …, …metadata…}, "application": …, "status": …, "started_at": …,
     …, "export_version": 1, "exported_at": …}
and every further line is one event in exactly the ingestion envelope of DESIGN.md
(id = the event uid, ts as RFC 3339 with microseconds, severity by name, only the
fields that are present, plus `redacted`, the paths scrubbed at ingestion). The
ingestion parser takes a `{"session": {...}}` line without "type" as the session of the
lines after it, so the file can be POSTed back to /api/v1/events as well as imported
with `manage.py import`; an export → import → export round trip gives the same bytes
apart from `exported_at`.

JSON is the same header object with an "events" array added, which /api/v1/events
also accepts. HAR 1.2 holds a session's `http` events for browser dev tools.

Exports hold only what was persisted: secrets scrubbed at ingestion stay scrubbed.
"""

import re
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connections
from django.db.models import Q, QuerySet

from recorder.fields import from_micros, to_micros
from recorder.models import Application, Event, Session, Severity

EXPORT_VERSION = 1
FORMATS = ("ndjson", "json", "har")
# Rows per keyset query: big enough that the per-query cost vanishes, small enough
# that a chunk of encoded lines stays a few megabytes at most.
CHUNK_ROWS = 2000

SEVERITY_NAME = {int(value): label for value, label in Severity.choices}

# Columns read per event, in this order (see _encode_events).
COLUMNS = (
    "ts", "seq", "uid", "type", "source", "severity", "message", "key", "correlation_id",
    "actor", "payload", "state", "redacted",
)  # fmt: skip


# --- Small encoders --------------------------------------------------------------------


def format_ts(micros: int) -> str:
    """µs since the epoch -> RFC 3339 UTC with exactly six fractional digits."""
    secs, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


class _TsFormatter:
    """format_ts with a one-second cache: consecutive events mostly share their second,
    and strftime is the costliest part of an event line."""

    __slots__ = ("secs", "prefix")

    def __init__(self):
        self.secs = -1
        self.prefix = ""

    def __call__(self, micros: int) -> str:
        secs, frac = divmod(micros, 1_000_000)
        if secs != self.secs:
            self.secs = secs
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        return f"{self.prefix}.{frac:06d}Z"


def severity_name(value: int) -> str:
    """The name the ingester maps back to the same number."""
    if value in SEVERITY_NAME:
        return SEVERITY_NAME[value]
    below = [v for v in SEVERITY_NAME if v <= value]
    return SEVERITY_NAME[max(below)] if below else "debug"


def _dt(value: datetime | None) -> str | None:
    return None if value is None else format_ts(to_micros(value))


def session_header(session: Session, *, exported_at: datetime | None = None, **extra) -> dict:
    """The first NDJSON line (and the JSON document minus its events).

    `session` is the batch-level session object of the ingestion envelope (key plus
    metadata), so ingestion restores the metadata; the rest is for `manage.py import`
    and for people reading the file.
    """
    application = session.application
    header = {
        "session": {"key": session.key, **(session.metadata or {})},
        "application": application.name,
        "environment": application.environment,
        "status": session.status,
        "status_reason": session.status_reason,
        "started_at": _dt(session.started_at),
        "ended_at": _dt(session.ended_at),
        "last_event_at": _dt(session.last_event_at),
        "event_count": session.event_count,
        "error_count": session.error_count,
        **extra,
        "export_version": EXPORT_VERSION,
        "exported_at": _dt(exported_at or datetime.now(UTC)),
    }
    return header


def _encode_events(chunk: list[tuple], session_key: str | None, ts_text: _TsFormatter,
                   sep: bytes) -> bytes:  # fmt: skip
    """Rows (COLUMNS order; the session key as 14th column when session_key is None) ->
    envelopes as compact JSON joined by `sep`.

    JSON columns come from the database as text (SQLite text, PostgreSQL jsonb loaded
    as text by Django's backend) and are spliced in as they are with orjson.Fragment:
    no parse and re-encode per event. One loop with local names, because this is the
    whole cost of an export beyond reading the rows.
    """
    dumps, fragment, names = orjson.dumps, orjson.Fragment, SEVERITY_NAME
    out = []
    append = out.append
    for row in chunk:
        (ts, _seq, uid, etype, source, severity, message, key, corr, actor, payload, state,
         redacted) = row[:13]  # fmt: skip
        ev: dict[str, Any] = {
            "id": uid,
            "session": session_key if session_key is not None else row[13],
            "ts": ts_text(ts),
            "type": etype,
        }
        if source is not None:
            ev["source"] = source
        ev["severity"] = names.get(severity) or severity_name(severity)
        if message is not None:
            ev["message"] = message
        if key is not None:
            ev["key"] = key
        if corr is not None:
            ev["correlation_id"] = corr
        if actor is not None:
            ev["actor"] = actor
        if payload is not None:
            ev["payload"] = fragment(payload)
        if state is not None:
            ev["state"] = fragment(state)
        if redacted is not None:
            ev["redacted"] = fragment(redacted)
        append(dumps(ev))
    return sep.join(out)


# --- Reading events in keyset chunks ---------------------------------------------------


def _raw_rows(qs: QuerySet, columns: tuple[str, ...]) -> list[tuple]:
    """Run an ORM-built query on a plain cursor: the ORM composes the WHERE clause
    (filters included), the cursor skips per-row field converters (JSON columns stay
    text, timestamps stay integers), which is most of the cost of a big export."""
    sql, params = qs.values_list(*columns).query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# SQLite settings for the length of one export (see _sequential_reads).
SQLITE_EXPORT_PRAGMAS = {"mmap_size": 0, "cache_size": -8000}


@contextmanager
def _sequential_reads(db_alias: str):
    """On SQLite, read an export through a small page cache and without mmap.

    An export reads every page of a session once, so neither helps it; but mapped pages
    count in the process's resident size, and with the 256 MB mmap of our settings a
    big export would leave the web worker hundreds of megabytes larger. The
    connection's own settings come back afterwards (it is reused by other requests).
    """
    connection = connections[db_alias]
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        saved = {}
        for name, value in SQLITE_EXPORT_PRAGMAS.items():
            cursor.execute(f"PRAGMA {name}")
            row = cursor.fetchone()
            if row is None:  # an in-memory database has no mmap
                continue
            saved[name] = row[0]
            cursor.execute(f"PRAGMA {name} = {int(value)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for name, value in saved.items():
                cursor.execute(f"PRAGMA {name} = {int(value)}")


def session_event_rows(
    session: Session, *, events: QuerySet | None = None, chunk: int = CHUNK_ROWS
) -> Iterator[list[tuple]]:
    """A session's events in timeline order (ts, seq), as lists of COLUMNS tuples.

    Keyset iteration: each query starts at the last (ts, seq) seen and walks the
    (session, ts, seq) index from there, so the millionth row costs what the first did.
    `ts >= t` bounds the index range; the OR only settles ties within that one ts.
    """
    base = (events if events is not None else Event.objects.all()).filter(session=session)
    yield from _keyset_chunks(base, COLUMNS, tie="seq", tie_column=1, chunk=chunk)


def application_event_rows(events: QuerySet, *, chunk: int = CHUNK_ROWS) -> Iterator[list[tuple]]:
    """Events across sessions in (ts, id) order, with the session key as a 14th column.

    seq is per session, so across sessions the tie-breaker is the row id; within one
    session id order is seq order (both are handed out in arrival order).
    """
    columns = (*COLUMNS, "session__key", "id")
    yield from _keyset_chunks(events, columns, tie="id", tie_column=14, chunk=chunk)


def _keyset_chunks(
    base: QuerySet, columns: tuple, *, tie: str, tie_column: int, chunk: int
) -> Iterator[list[tuple]]:
    """Rows in (ts, tie) order, chunk by chunk, each query starting after the last row
    seen; `tie_column` is where the tie-breaker sits in `columns` (ts is column 0)."""
    base = base.order_by("ts", tie)
    last: tuple[int, int] | None = None
    with _sequential_reads(base.db):
        while True:
            qs = base
            if last is not None:
                ts, after = last
                qs = qs.filter(ts__gte=ts).filter(Q(ts__gt=ts) | Q(**{f"{tie}__gt": after}))
            rows = _raw_rows(qs[:chunk], columns)
            if not rows:
                return
            yield rows
            if len(rows) < chunk:
                return
            last = (rows[-1][0], rows[-1][tie_column])


# --- Formats ---------------------------------------------------------------------------


def session_export(
    session: Session,
    *,
    fmt: str = "ndjson",
    events: QuerySet | None = None,
    extra: dict | None = None,
    exported_at: datetime | None = None,
    progress=None,
) -> Iterator[bytes]:
    """A session as byte chunks in `fmt`. `events` narrows the rows (timeline filters,
    access control); `progress(n)` is called with the number of events per chunk."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows = session_event_rows(session, events=events)
    if fmt == "har":
        http = (events if events is not None else Event.objects.all()).filter(type="http")
        yield from har_export(session, session_event_rows(session, events=http), progress)
        return
    header = session_header(session, exported_at=exported_at, **(extra or {}))
    ts_text = _TsFormatter()
    key = session.key
    if fmt == "ndjson":
        yield orjson.dumps(header) + b"\n"
        for chunk in rows:
            yield _encode_events(chunk, key, ts_text, b"\n") + b"\n"
            if progress:
                progress(len(chunk))
        return
    # JSON: the header object with an "events" array, written as it streams.
    yield orjson.dumps(header)[:-1] + b',"events":['
    first = True
    for chunk in rows:
        body = _encode_events(chunk, key, ts_text, b",")
        yield body if first else b"," + body
        first = False
        if progress:
            progress(len(chunk))
    yield b"]}"


def application_export(
    application: Application,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    fmt: str = "ndjson",
    events: QuerySet | None = None,
    exported_at: datetime | None = None,
    progress=None,
) -> Iterator[bytes]:
    """An application's events in [start, end) across sessions, for audit exports.

    NDJSON: one session header line per session with events in the range (so an import
    restores their metadata and status), then the events in time order, each naming
    its session. JSON: {"application", "from", "to", "sessions": [headers], "events"}.
    """
    if fmt not in ("ndjson", "json"):
        raise ValueError("an application export is ndjson or json")
    qs = (events if events is not None else Event.objects.all()).filter(application=application)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lt=end)
    exported_at = exported_at or datetime.now(UTC)
    scope = {"range": {"from": _dt(start), "to": _dt(end)}}
    session_ids = qs.order_by().values("session_id").distinct()
    sessions = (
        Session.objects.filter(id__in=session_ids)
        .select_related("application")
        .order_by("started_at", "id")
    )
    headers = (session_header(s, exported_at=exported_at, **scope) for s in sessions.iterator())
    ts_text = _TsFormatter()
    if fmt == "ndjson":
        for header in headers:
            yield orjson.dumps(header) + b"\n"
        for chunk in application_event_rows(qs):
            yield _encode_events(chunk, None, ts_text, b"\n") + b"\n"
            if progress:
                progress(len(chunk))
        return
    doc = {
        "application": application.name,
        "environment": application.environment,
        **scope,
        "export_version": EXPORT_VERSION,
        "exported_at": _dt(exported_at),
    }
    yield orjson.dumps(doc)[:-1] + b',"sessions":['
    yield b",".join(orjson.dumps(h) for h in headers)
    yield b'],"events":['
    first = True
    for chunk in application_event_rows(qs):
        body = _encode_events(chunk, None, ts_text, b",")
        yield body if first else b"," + body
        first = False
        if progress:
            progress(len(chunk))
    yield b"]}"


def gzip_chunks(chunks: Iterable[bytes], level: int = 6) -> Iterator[bytes]:
    """Compress a stream of chunks into one gzip member, chunk by chunk."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31 = gzip header
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


# --- HAR 1.2 ---------------------------------------------------------------------------

HAR_CREATOR = {"name": "flightrec", "version": "1"}


def _har_headers(value: Any) -> list[dict]:
    """Headers as a dict, a HAR [{name, value}] list or [[name, value]] pairs."""
    if isinstance(value, dict):
        return [{"name": str(k), "value": _text(v)} for k, v in value.items()]
    out = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "name" in item:
                out.append({"name": str(item["name"]), "value": _text(item.get("value"))})
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                out.append({"name": str(item[0]), "value": _text(item[1])})
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _header_value(headers: list[dict], name: str) -> str | None:
    name = name.lower()
    for h in headers:
        if h["name"].lower() == name:
            return h["value"]
    return None


def _number(value: Any, default: float = -1) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return default


def _query_string(url: str) -> list[dict]:
    from urllib.parse import parse_qsl, urlsplit

    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    return [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)]


def _body(part: dict, payload: dict, flat: str) -> Any:
    """A captured body: request.body / response.body, or a flat request_body field."""
    if "body" in part:
        return part["body"]
    return payload.get(flat)


def har_entry(ts_micros: int, payload: dict, *, message: str | None = None) -> dict:
    """One HAR entry from an `http` event's payload (fields we do not know are left out;
    HAR's required fields get HAR's "unknown" values: -1 sizes, empty lists)."""
    request = payload.get("request") if isinstance(payload.get("request"), dict) else {}
    response = payload.get("response") if isinstance(payload.get("response"), dict) else {}
    method = payload.get("method") or request.get("method") or "GET"
    url = payload.get("url") or request.get("url") or ""
    status = payload.get("status", payload.get("status_code", response.get("status", 0)))
    req_headers = _har_headers(request.get("headers", payload.get("request_headers")))
    res_headers = _har_headers(response.get("headers", payload.get("response_headers")))
    http_version = str(payload.get("http_version") or "HTTP/1.1")

    har_request: dict[str, Any] = {
        "method": str(method).upper(),
        "url": str(url),
        "httpVersion": http_version,
        "cookies": [],
        "headers": req_headers,
        "queryString": _query_string(str(url)),
        "headersSize": -1,
        "bodySize": -1,
    }
    req_body = _body(request, payload, "request_body")
    if req_body is not None:
        text = _text(req_body)
        mime = _header_value(req_headers, "content-type") or "application/octet-stream"
        har_request["postData"] = {"mimeType": mime, "text": text}
        har_request["bodySize"] = len(text.encode())

    res_body = _body(response, payload, "response_body")
    mime = _header_value(res_headers, "content-type") or "x-unknown"
    size = _number(response.get("size", payload.get("response_size")), -1)
    content: dict[str, Any] = {"size": int(size) if size >= 0 else 0, "mimeType": mime}
    if res_body is not None:
        content["text"] = _text(res_body)
        if size < 0:
            content["size"] = len(content["text"].encode())
    har_response = {
        "status": int(_number(status, 0)),
        "statusText": str(payload.get("status_text") or response.get("status_text") or ""),
        "httpVersion": http_version,
        "cookies": [],
        "headers": res_headers,
        "content": content,
        "redirectURL": _header_value(res_headers, "location") or "",
        "headersSize": -1,
        "bodySize": int(size) if size >= 0 else -1,
    }

    timings_in = payload.get("timings") if isinstance(payload.get("timings"), dict) else {}
    duration = _number(payload.get("duration_ms", payload.get("duration")), -1)
    timings = {
        "blocked": _number(timings_in.get("blocked")),
        "dns": _number(timings_in.get("dns")),
        "connect": _number(timings_in.get("connect")),
        "send": max(_number(timings_in.get("send"), 0), 0),
        "wait": max(_number(timings_in.get("wait"), duration if duration >= 0 else 0), 0),
        "receive": max(_number(timings_in.get("receive"), 0), 0),
        "ssl": _number(timings_in.get("ssl")),
    }
    total = sum(v for k, v in timings.items() if k != "ssl" and v > 0)
    entry = {
        "startedDateTime": format_ts(ts_micros),
        "time": duration if duration >= 0 else total,
        "request": har_request,
        "response": har_response,
        "cache": {},
        "timings": timings,
    }
    if message:
        entry["comment"] = message
    return entry


def har_export(session: Session, rows: Iterable[list[tuple]], progress=None) -> Iterator[bytes]:
    """HAR 1.2 of the given `http` event rows, streamed entry by entry."""
    log_head = {
        "version": "1.2",
        "creator": HAR_CREATOR,
        "pages": [],
        "comment": f"{session.application.name} session {session.key}",
    }
    yield b'{"log":' + orjson.dumps(log_head)[:-1] + b',"entries":['
    first = True
    for chunk in rows:
        parts = []
        for row in chunk:
            payload = orjson.loads(row[10]) if row[10] is not None else {}
            entry = har_entry(row[0], payload, message=row[6])
            entry["_flightrec"] = {"id": row[2], "seq": row[1]}
            parts.append(orjson.dumps(entry))
        if parts:
            body = b",".join(parts)
            yield body if first else b"," + body
            first = False
        if progress:
            progress(len(chunk))
    yield b"]}}"


# --- Names -----------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.")[:80] or "x"


EXTENSIONS = {"ndjson": "ndjson", "json": "json", "har": "har"}


def export_filename(
    application: Application,
    *,
    session: Session | None = None,
    fmt: str = "ndjson",
    gzipped: bool = False,
    when: datetime | None = None,
) -> str:
    """e.g. shop_run-42_20261121T100000Z.ndjson.gz — application, session and time."""
    stamp_from = when or (session.started_at if session else None) or datetime.now(UTC)
    stamp = stamp_from.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    middle = _safe(session.key) if session else "audit"
    name = f"{_safe(application.name)}_{middle}_{stamp}.{EXTENSIONS[fmt]}"
    return name + (".gz" if gzipped else "")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 string or epoch seconds from a query string, as an aware datetime."""
    if value in (None, ""):
        return None
    from recorder.ingest import ItemError, parse_ts

    raw: Any = value
    try:
        raw = float(value)
    except ValueError:
        pass
    try:
        return from_micros(parse_ts(raw))
    except ItemError as exc:
        raise ValueError(str(exc)) from None
