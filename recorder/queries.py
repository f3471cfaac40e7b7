"""Read-side selectors: event filters, pages of sessions and timelines with keyset cursors.

Keyset pagination (WHERE (ts, seq) > (last ts, last seq)) instead of OFFSET, so the
last page of a million-event session costs the same as the first: the timeline index
(session, ts, seq) is walked from the cursor on. Every cursor condition is written as
`ts >= a AND (ts > a OR seq > b)` so that both databases can seek to `a` in the index
instead of walking from the start and filtering.

Filters come from three places that must agree: API query parameters
(`parse_event_filters`), the dashboard's single filter bar (`parse_filter_bar`, Seq or
Sentry style `type:http severity:>=warn status>=500 topic~sensors/* free text`), and
code. All produce an `EventFilters`, applied by `filter_events`.
"""

import base64
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.db import connection
from django.db.models import BigIntegerField, BooleanField, Count, F, Func, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from ninja.errors import HttpError

from recorder import search
from recorder.fields import from_micros, to_micros
from recorder.ingest import ItemError, parse_ts
from recorder.models import Event, Session, Severity

MAX_LIMIT = 1000
SEVERITY_BY_NAME = {
    "debug": Severity.DEBUG, "info": Severity.INFO, "warn": Severity.WARN,
    "warning": Severity.WARN, "error": Severity.ERROR, "fatal": Severity.FATAL,
    "critical": Severity.FATAL,
}  # fmt: skip


class FilterError(ValueError):
    """A filter parameter or filter-bar token that cannot be understood. The message
    names the parameter or token, so it can go back to the user as is."""


# --------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------

# Payload field names: dotted paths of plain keys. Kept strict because the path ends up
# in a JSON path expression (as a bound parameter, but `"` and `.` have meaning there).
_PATH_PART = re.compile(r"^[A-Za-z0-9_\-@$]+$")
_CONDITION = re.compile(r"^([A-Za-z0-9_\-@$.]+)(>=|<=|!=|=|>|<|~)(.*)$", re.DOTALL)
_RELATIVE = re.compile(r"^-(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class PayloadCondition:
    """`path op value` on the event payload, e.g. status>=500, method=POST, topic~a/*."""

    path: tuple[str, ...]
    op: str
    value: str

    @property
    def number(self) -> Decimal | None:
        try:
            number = Decimal(self.value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None

    def __str__(self) -> str:
        return ".".join(self.path) + self.op + self.value


@dataclass
class EventFilters:
    types: list[str] = field(default_factory=list)
    min_severity: int | None = None
    sources: list[str] = field(default_factory=list)
    key: str | None = None  # `*` wildcards
    correlation_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    q: str = ""  # full text over message and payload
    where: list[PayloadCondition] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self == EventFilters()

    def merge(self, other: "EventFilters") -> "EventFilters":
        """Both sets of conditions; lists add up, the other's single values win."""
        merged = EventFilters(
            types=_unique(self.types + other.types),
            sources=_unique(self.sources + other.sources),
            where=self.where + other.where,
            q=" ".join(p for p in (self.q, other.q) if p),
        )
        for name in ("min_severity", "key", "correlation_id", "actor", "since", "until"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(merged, name, theirs if theirs is not None else mine)
        return merged

    def to_params(self) -> dict[str, list[str]]:
        """Query parameters that parse back to these filters (for shareable URLs)."""
        out: dict[str, list[str]] = {}
        if self.types:
            out["type"] = list(self.types)
        if self.min_severity is not None:
            out["severity"] = [Severity(self.min_severity).label]
        if self.sources:
            out["source"] = list(self.sources)
        for name in ("key", "correlation_id", "actor"):
            if getattr(self, name):
                out[name] = [getattr(self, name)]
        for name in ("since", "until"):
            if getattr(self, name):
                out[name] = [getattr(self, name).isoformat().replace("+00:00", "Z")]
        if self.q:
            out["q"] = [self.q]
        if self.where:
            out["where"] = [str(c) for c in self.where]
        return out


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_severity_name(value: str, where: str) -> int:
    level = SEVERITY_BY_NAME.get(value.strip().lower().lstrip(">=").strip())
    if level is None:
        raise FilterError(f"{where}: {value!r} is not a severity (debug, info, warn, error, fatal)")
    return int(level)


def parse_time(value: str, where: str, *, now: datetime | None = None) -> datetime:
    """RFC 3339, a date, epoch seconds, or relative to now: -15m, -2h, -7d."""
    value = value.strip()
    if m := _RELATIVE.match(value):
        now = now or datetime.now(UTC)
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        raw: Any = float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else value
        if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raw += "T00:00:00Z"
        return from_micros(parse_ts(raw))
    except ItemError:
        raise FilterError(
            f"{where}: {value!r} is not a time (RFC 3339, epoch seconds, or like -15m)"
        ) from None


def parse_condition(text: str, where: str = "where") -> PayloadCondition:
    m = _CONDITION.match(text.strip())
    if not m:
        raise FilterError(
            f"{where}: {text!r} is not a payload condition like status>=500, method=POST "
            "or topic~sensors/*"
        )
    path, op, value = m.groups()
    parts = tuple(path.split("."))
    if not all(_PATH_PART.match(p) for p in parts):
        raise FilterError(f"{where}: {path!r} is not a payload field path like a.b.c")
    condition = PayloadCondition(parts, op, value)
    if op in (">", ">=", "<", "<=") and condition.number is None:
        raise FilterError(f"{where}: {text!r} compares with {value!r}, which is not a number")
    return condition


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    if hasattr(params, "getlist"):
        raw = params.getlist(name)
    else:
        raw = params.get(name)
        raw = [] if raw is None else [raw] if isinstance(raw, str) else list(raw)
    return [v for v in (str(x).strip() for x in raw) if v]


def _last(params: Mapping[str, Any], name: str) -> str | None:
    values = _values(params, name)
    return values[-1] if values else None


def parse_event_filters(params: Mapping[str, str | list[str]]) -> EventFilters:
    """Filters from query parameters: type (repeat or comma list), severity (minimum),
    source, key (`*` wildcards), correlation_id, actor, since, until, q (full text),
    where (repeatable payload condition), and filter (a whole filter-bar string)."""
    f = EventFilters()
    for value in _values(params, "type"):
        f.types += [t.strip() for t in value.split(",") if t.strip()]
    f.types = _unique(f.types)
    if severity := _last(params, "severity"):
        f.min_severity = parse_severity_name(severity, "severity")
    for value in _values(params, "source"):
        f.sources += [s.strip() for s in value.split(",") if s.strip()]
    f.key = _last(params, "key")
    f.correlation_id = _last(params, "correlation_id")
    f.actor = _last(params, "actor")
    if since := _last(params, "since"):
        f.since = parse_time(since, "since")
    if until := _last(params, "until"):
        f.until = parse_time(until, "until")
    f.q = " ".join(_values(params, "q"))
    f.where = [parse_condition(v) for v in _values(params, "where")]
    if bar := _last(params, "filter"):
        f = f.merge(parse_filter_bar(bar))
    return f


_BAR_FIELDS = {
    "type": "type", "types": "type", "severity": "severity", "level": "severity",
    "source": "source", "key": "key", "correlation": "correlation_id",
    "correlation_id": "correlation_id", "cid": "correlation_id", "actor": "actor",
    "since": "since", "after": "since", "until": "until", "before": "until",
}  # fmt: skip
_BAR_TOKEN = re.compile(r"^([A-Za-z_]+):(.*)$", re.DOTALL)


def parse_filter_bar(text: str) -> EventFilters:
    """One line of `field:value` tokens, payload conditions and free text.

    `type:http,log` (or repeated) · `severity:>=warn` (minimum) · `source:net` ·
    `key:accuracy::*` · `correlation:abc` · `actor:ada` · `since:-1h` / `until:2026-01-01`
    · `status>=500`, `method=POST`, `topic~sensors/*` on payload fields · anything else
    is full text. Double quotes group: `message:"a b"` or `"two words"`.
    """
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError as exc:
        raise FilterError(f"filter: {exc} (unbalanced quotes?)") from None
    f = EventFilters()
    free: list[str] = []
    for token in tokens:
        m = _BAR_TOKEN.match(token)
        if m and not m.group(2).startswith("//"):
            name, value = m.group(1).lower(), m.group(2)
            target = _BAR_FIELDS.get(name)
            if target is None:
                raise FilterError(
                    f"filter: unknown field {name!r} in {token!r} (fields: type, severity, "
                    f"source, key, correlation, actor, since, until; payload: {name}=…)"
                )
            if not value:
                raise FilterError(f"filter: {token!r} needs a value after the colon")
            if target == "type":
                f.types = _unique(f.types + [t for t in value.split(",") if t])
            elif target == "source":
                f.sources = _unique(f.sources + [s for s in value.split(",") if s])
            elif target == "severity":
                f.min_severity = parse_severity_name(value, f"filter {token!r}")
            elif target in ("since", "until"):
                setattr(f, target, parse_time(value, f"filter {token!r}"))
            else:
                setattr(f, target, value)
        elif _CONDITION.match(token) and not token.startswith(("http://", "https://")):
            f.where.append(parse_condition(token, f"filter {token!r}"))
        else:
            free.append(token)
    f.q = " ".join(free)
    return f


# --------------------------------------------------------------------------------------
# Applying filters
# --------------------------------------------------------------------------------------


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _escape_glob(text: str) -> str:
    """GLOB pattern for `*`-wildcard text: every other special character is literal."""
    return "".join(f"[{c}]" if c in "[]?" else c for c in text)


def wildcard_q(name: str, pattern: str) -> Q:
    """`*` matches any run of characters, case-sensitively, on both databases."""
    if "*" not in pattern:
        return Q(**{name: pattern})
    stripped = pattern.rstrip("*")
    if "*" not in stripped:
        q = Q(**{f"{name}__startswith": stripped})
        if connection.vendor == "sqlite":
            # SQLite's LIKE is case-insensitive and cannot use the index; a range can.
            q &= Q(**{f"{name}__gte": stripped, f"{name}__lt": stripped + "\U0010ffff"})
            # ...and startswith (LIKE) is case-insensitive there, so pin the case with GLOB.
            q &= Q(_Glob(F(name), stripped + "*"))
        return q
    return Q(_Glob(F(name), pattern))


class _Glob(Func):
    """Case-sensitive `*` pattern match: GLOB on SQLite, LIKE on PostgreSQL."""

    output_field = BooleanField()

    def __init__(self, expression, pattern: str):
        super().__init__(expression)
        self.pattern = pattern

    def as_sql(self, compiler, connection, **extra):
        lhs, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "sqlite":
            return f"({lhs} GLOB %s)", (*params, _escape_glob(self.pattern))
        like = _escape_like(self.pattern).replace("*", "%")
        return f"({lhs} LIKE %s ESCAPE '\\')", (*params, like)


class _PayloadTest(Func):
    """One payload condition as SQL: JSON1 on SQLite, jsonb on PostgreSQL.

    Comparisons with a number are numeric and only match JSON numbers (a string "600"
    is not >= 500). `=` matches a JSON number equal to the value, a string equal to it,
    or true/false/null. `~` is a `*` wildcard match on strings. A missing field never
    matches, not even `!=`.
    """

    output_field = BooleanField()

    def __init__(self, condition: PayloadCondition):
        super().__init__(F("payload"))
        self.condition = condition

    def as_sql(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        c = self.condition
        if connection.vendor == "postgresql":
            return self._postgres(col, list(params), c)
        return self._sqlite(col, list(params), c)

    @staticmethod
    def _literal(c: PayloadCondition) -> str | None:
        return c.value if c.value in ("true", "false", "null") else None

    def _sqlite(self, col: str, p: list, c: PayloadCondition):
        path = "$" + "".join(f'."{part}"' for part in c.path)
        typ, val = f"json_type({col}, %s)", f"json_extract({col}, %s)"
        number = c.number
        if c.op == "~":
            pattern = _escape_glob(c.value)
            return f"({typ} = 'text' AND {val} GLOB %s)", (*p, path, *p, path, pattern)
        if c.op in (">", ">=", "<", "<="):
            return (
                f"({typ} IN ('integer', 'real') AND {val} {c.op} %s)",
                (*p, path, *p, path, float(number)),
            )
        eq_parts = [f"({typ} = 'text' AND {val} = %s)"]
        eq_params: list = [*p, path, *p, path, c.value]
        if number is not None:
            eq_parts.append(f"({typ} IN ('integer', 'real') AND {val} = %s)")
            eq_params += [*p, path, *p, path, float(number)]
        if lit := self._literal(c):
            eq_parts.append(f"({typ} = %s)")
            eq_params += [*p, path, lit]
        eq = " OR ".join(eq_parts)
        if c.op == "=":
            return f"({eq})", tuple(eq_params)
        return f"({typ} IS NOT NULL AND NOT ({eq}))", (*p, path, *eq_params)

    def _postgres(self, col: str, p: list, c: PayloadCondition):
        path = list(c.path)
        typ, txt = f"jsonb_typeof({col} #> %s::text[])", f"({col} #>> %s::text[])"
        number = c.number
        if c.op == "~":
            like = _escape_like(c.value).replace("*", "%")
            return (
                f"({typ} = 'string' AND {txt} LIKE %s ESCAPE '\\')",
                (*p, path, *p, path, like),
            )
        # CASE guards the cast: PostgreSQL does not promise to evaluate AND left to right.
        num = f"(CASE WHEN {typ} = 'number' THEN {txt}::numeric END)"
        if c.op in (">", ">=", "<", "<="):
            return f"({num} {c.op} %s)", (*p, path, *p, path, number)
        eq_parts = [f"({typ} = 'string' AND {txt} = %s)"]
        eq_params: list = [*p, path, *p, path, c.value]
        if number is not None:
            eq_parts.append(f"({num} = %s)")
            eq_params += [*p, path, *p, path, number]
        if lit := self._literal(c):
            # true/false/null: compare as JSON (jsonb_typeof says "boolean", not "true").
            eq_parts.append(f"(({col} #> %s::text[]) = %s::jsonb)")
            eq_params += [*p, path, lit]
        eq = " OR ".join(eq_parts)
        if c.op == "=":
            return f"({eq})", tuple(eq_params)
        return f"({typ} IS NOT NULL AND NOT ({eq}))", (*p, path, *eq_params)


def fulltext_q(text: str, *, session_id: int | None = None) -> Q:
    """Events whose message or payload contain every word of `text`, through the index.

    With a session, the SQLite FTS lookup is bounded to the session's id range, so a
    common word does not pull every match of the whole database into the join.
    """
    table = Event._meta.db_table
    if connection.vendor == "postgresql":
        tsquery = search.postgres_tsquery(text)
        if not tsquery:
            return Q()
        doc = search.PG_DOCUMENT.format(t=f'"{table}"')
        return Q(
            RawSQL(
                f"{doc} @@ to_tsquery('simple'::regconfig, %s)",
                [tsquery],
                output_field=BooleanField(),
            )
        )
    match = search.sqlite_match(text)
    if not match:
        return Q()
    sql = f"SELECT rowid FROM {search.FTS_TABLE} WHERE {search.FTS_TABLE} MATCH %s"
    params: list = [match]
    if session_id is not None:
        sql += (
            f" AND rowid >= (SELECT MIN(id) FROM {table} WHERE session_id = %s)"
            f" AND rowid <= (SELECT MAX(id) FROM {table} WHERE session_id = %s)"
        )
        params += [session_id, session_id]
    return Q(RawSQL(f'"{table}"."id" IN ({sql})', params, output_field=BooleanField()))


def filter_events(
    qs: QuerySet[Event], filters: EventFilters, *, session_id: int | None = None
) -> QuerySet[Event]:
    """Apply every filter. Pass session_id when qs is one session's events: full-text
    search then stays inside that session's part of the index."""
    if filters.types:
        qs = qs.filter(type__in=filters.types)
    if filters.min_severity is not None:
        qs = qs.filter(severity__gte=filters.min_severity)
    if filters.sources:
        cond = Q()
        for source in filters.sources:
            cond |= wildcard_q("source", source)
        qs = qs.filter(cond)
    if filters.key:
        qs = qs.filter(wildcard_q("key", filters.key))
    if filters.correlation_id:
        qs = qs.filter(correlation_id=filters.correlation_id)
    if filters.actor:
        qs = qs.filter(wildcard_q("actor", filters.actor))
    if filters.since:
        qs = qs.filter(ts__gte=filters.since)
    if filters.until:
        qs = qs.filter(ts__lt=filters.until)
    if filters.q.strip():
        qs = qs.filter(fulltext_q(filters.q, session_id=session_id))
    for condition in filters.where:
        qs = qs.filter(_PayloadTest(condition))
    return qs


# --------------------------------------------------------------------------------------
# Cursors and pages
# --------------------------------------------------------------------------------------


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


@dataclass
class Page:
    """A page in timeline order. next_cursor continues after the last item, prev_cursor
    before the first; None means there is nothing more that way (as far as we looked)."""

    items: list
    next_cursor: str | None
    prev_cursor: str | None


# A timeline is ordered by (ts, seq) within a session; across sessions seq repeats, so
# the tie-breaker is the id (which the (application, ts) index carries on SQLite).
SESSION_ORDER = ("ts", "seq")
GLOBAL_ORDER = ("ts", "id")


def _key(event: Event, order: tuple[str, str]) -> tuple[int, int]:
    return to_micros(event.ts), getattr(event, order[1])


def _after_q(order: tuple[str, str], a: int, b: int, *, inclusive: bool = False) -> Q:
    first, second = order
    tie = Q(**{f"{second}__gte" if inclusive else f"{second}__gt": b})
    return Q(**{f"{first}__gte": a}) & (Q(**{f"{first}__gt": a}) | tie)


def _before_q(order: tuple[str, str], a: int, b: int) -> Q:
    first, second = order
    return Q(**{f"{first}__lte": a}) & (Q(**{f"{first}__lt": a}) | Q(**{f"{second}__lt": b}))


def events_page(
    qs: QuerySet[Event],
    *,
    after: str | None = None,
    before: str | None = None,
    last: bool = False,
    start: datetime | None = None,
    limit: int = 100,
    order: tuple[str, str] = SESSION_ORDER,
) -> Page:
    """One page of events in timeline order, without OFFSET.

    after: the page after a cursor · before: the page before it · last: the final page
    · start: the first page at or after a time · none: the first page.
    """
    limit = _limit(limit)
    asc, desc = list(order), [f"-{o}" for o in order]
    backwards = bool(before) or (last and not after)
    if after:
        qs = qs.filter(_after_q(order, *decode_cursor(after, 2)))
    elif before:
        qs = qs.filter(_before_q(order, *decode_cursor(before, 2)))
    elif start is not None and not last:
        qs = qs.filter(**{f"{order[0]}__gte": start})
    rows = list(qs.order_by(*(desc if backwards else asc))[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return Page([], None, None)
    first, final = encode_cursor(*_key(rows[0], order)), encode_cursor(*_key(rows[-1], order))
    if backwards:
        # Going back we know whether older rows exist; newer ones exist if we came from a
        # cursor (the item it pointed at is after this page).
        return Page(rows, final if before else None, first if more else None)
    has_prev = bool(after) or start is not None
    return Page(rows, final if more else None, first if has_prev else None)


def events_around(
    qs: QuerySet[Event], event: Event, *, limit: int = 100, order=SESSION_ORDER
) -> Page:
    """A page with `event` in it, about a third of the way down (for ?at=<event id>)."""
    a, b = _key(event, order)
    before_n = limit // 3
    older = list(
        qs.filter(_before_q(order, a, b)).order_by(*[f"-{o}" for o in order])[: before_n + 1]
    )
    has_older = len(older) > before_n
    older = older[:before_n][::-1]
    newer = list(
        qs.filter(_after_q(order, a, b, inclusive=True)).order_by(*order)[: limit - len(older) + 1]
    )
    has_newer = len(newer) > limit - len(older)
    rows = older + newer[: limit - len(older)]
    if not rows:
        return Page([], None, None)
    return Page(
        rows,
        encode_cursor(*_key(rows[-1], order)) if has_newer else None,
        encode_cursor(*_key(rows[0], order)) if has_older else None,
    )


def iter_events(qs: QuerySet[Event], *, chunk: int = 1000, order=SESSION_ORDER):
    """Every event of qs in timeline order, fetched in keyset chunks (for exports)."""
    cursor = None
    while True:
        page = events_page(qs, after=cursor, limit=min(chunk, MAX_LIMIT), order=order)
        yield from page.items
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def timeline_page(
    session: Session, *, after: str | None = None, limit: int = 100, events: QuerySet | None = None
) -> tuple[list[Event], str | None]:
    """Events of one session in (ts, seq) order, starting after the cursor."""
    qs = (events if events is not None else Event.objects).filter(session=session)
    page = events_page(qs, after=after, limit=limit)
    return page.items, page.next_cursor


def histogram(qs: QuerySet[Event], *, start: datetime, end: datetime, buckets: int = 60) -> dict:
    """Event counts per time bucket and severity between start and end (inclusive).

    One grouped query: bucket = (ts - start) // width on the integer microseconds.
    Buckets with no events are returned too, so idle stretches show as gaps.
    """
    buckets = max(1, min(buckets, 500))
    start_us, end_us = to_micros(start), to_micros(end)
    width = max(1, -(-(end_us - start_us + 1) // buckets))
    bucket = RawSQL(
        f'(("{Event._meta.db_table}"."ts" - %s) / %s)',
        [start_us, width],
        output_field=BigIntegerField(),
    )
    rows = (
        qs.filter(ts__gte=start, ts__lte=end)
        .annotate(bucket=bucket)
        .values("bucket", "severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    levels = [s.label for s in Severity]
    counts = [dict.fromkeys(levels, 0) for _ in range(buckets)]
    for row in rows:
        i = min(max(int(row["bucket"]), 0), buckets - 1)
        counts[i][Severity(row["severity"]).label] += row["n"]
    return {
        "start": start,
        "end": end,
        "bucket_seconds": width / 1_000_000,
        "severities": levels,
        "buckets": [
            {"start": from_micros(start_us + i * width), "counts": c} for i, c in enumerate(counts)
        ],
    }


# --------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------


@dataclass
class SessionFilters:
    applications: list[str] = field(default_factory=list)  # names or ids
    environment: str | None = None
    version: str | None = None
    statuses: list[str] = field(default_factory=list)
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    q: str = ""  # free text over the session key and metadata

    def to_params(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            key = {"applications": "app", "statuses": "status"}.get(f.name, f.name)
            if isinstance(value, list):
                if value:
                    out[key] = list(value)
            elif isinstance(value, datetime):
                out[key] = [value.isoformat().replace("+00:00", "Z")]
            elif value:
                out[key] = [value]
        return out


SESSION_SORTS = {
    # name: (field, descending)
    "-started": ("started_at", True),
    "started": ("started_at", False),
    "-events": ("event_count", True),
    "-errors": ("error_count", True),
}


def parse_session_filters(params: Mapping[str, Any]) -> SessionFilters:
    f = SessionFilters()
    for value in _values(params, "app"):
        f.applications += [a.strip() for a in value.split(",") if a.strip()]
    f.environment = _last(params, "environment")
    f.version = _last(params, "version")
    for value in _values(params, "status"):
        for status in value.split(","):
            status = status.strip()
            if status not in Session.Status.values:
                raise FilterError(
                    f"status: {status!r} is not one of " + ", ".join(Session.Status.values)
                )
            f.statuses.append(status)
    if since := _last(params, "since"):
        f.since = parse_time(since, "since")
    if until := _last(params, "until"):
        f.until = parse_time(until, "until")
    f.q = " ".join(_values(params, "q"))
    return f


def filter_sessions(qs: QuerySet[Session], f: SessionFilters) -> QuerySet[Session]:
    if f.applications:
        ids = [int(a) for a in f.applications if a.isdigit()]
        names = [a for a in f.applications if not a.isdigit()]
        qs = qs.filter(Q(application_id__in=ids) | Q(application__name__in=names))
    if f.environment:
        qs = qs.filter(application__environment=f.environment)
    if f.version:
        qs = qs.filter(
            wildcard_q("metadata__app_version", f.version)
            if "*" in f.version
            else Q(metadata__app_version=f.version)
        )
    if f.statuses:
        qs = qs.filter(status__in=f.statuses)
    if f.since:
        qs = qs.filter(started_at__gte=f.since)
    if f.until:
        qs = qs.filter(started_at__lt=f.until)
    for word in f.q.split():
        # Metadata is small and per session; a scan of the sessions table is fine here.
        meta_text = RawSQL(
            f'CAST("{Session._meta.db_table}"."metadata" AS TEXT)', [], output_field=TextField()
        )
        qs = qs.alias(meta_text=meta_text).filter(
            Q(key__icontains=word) | Q(meta_text__icontains=word)
        )
    return qs


def sessions_page(
    sessions: QuerySet[Session],
    *,
    cursor: str | None = None,
    limit: int = 50,
    sort: str = "-started",
) -> tuple[list[Session], str | None]:
    """A page of sessions by (sort field, id), newest first by default, keyset cursor."""
    limit = _limit(limit)
    if sort not in SESSION_SORTS:
        raise FilterError(f"sort: {sort!r} is not one of " + ", ".join(SESSION_SORTS))
    name, descending = SESSION_SORTS[sort]
    is_time = name == "started_at"
    if cursor:
        value, last_id = decode_cursor(cursor, 2)
        bound: Any = from_micros(value) if is_time else value
        op = "lt" if descending else "gt"
        sessions = sessions.filter(
            Q(**{f"{name}__{op}": bound}) | Q(**{name: bound, f"id__{op}": last_id})
        )
    order = [f"-{name}", "-id"] if descending else [name, "id"]
    items = list(sessions.order_by(*order)[: limit + 1])
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        value = getattr(last, name)
        next_cursor = encode_cursor(to_micros(value) if is_time else value, last.id)
    return items, next_cursor


def compact_json(value: Any, limit: int = 300) -> str:
    """One-line JSON for summaries."""
    return orjson.dumps(value).decode()[:limit]


def _bar_value(value: str) -> str:
    return shlex.quote(value) if any(c.isspace() or c in "\"'" for c in value) else value


def filter_bar_text(f: EventFilters) -> str:
    """The filter-bar line that parses back to `f` (shown in the bar, used in links)."""
    parts = []
    if f.types:
        parts.append("type:" + ",".join(f.types))
    if f.min_severity is not None:
        parts.append("severity:>=" + Severity(f.min_severity).label)
    if f.sources:
        parts.append("source:" + ",".join(f.sources))
    for name, label in (("key", "key"), ("correlation_id", "correlation"), ("actor", "actor")):
        if getattr(f, name):
            parts.append(f"{label}:" + _bar_value(getattr(f, name)))
    for name in ("since", "until"):
        if getattr(f, name):
            parts.append(f"{name}:" + getattr(f, name).isoformat().replace("+00:00", "Z"))
    parts += [_bar_value(str(c)) for c in f.where]
    parts += [_bar_value(w) for w in shlex.split(f.q)] if f.q else []
    return " ".join(parts)


# --------------------------------------------------------------------------------------
# Correlation and latest-by-key
# --------------------------------------------------------------------------------------

MAX_LATEST_KEYS = 500


def _app_q(app: str | None) -> Q:
    if not app:
        return Q()
    return Q(application_id=int(app)) if app.isdigit() else Q(application__name=app)


def correlation_events(principal, correlation_id: str, *, app: str | None = None):
    """Events sharing a correlation id across the visible sessions (of one app if given);
    uses the (application, correlation_id) index."""
    from recorder.access import visible_events

    return (
        visible_events(principal)
        .filter(_app_q(app), correlation_id=correlation_id)
        .select_related("session__application")
    )


def latest_by_key(
    principal, *, pattern: str, n: int = 1, session_id: int | None = None, app: str | None = None
) -> list[dict]:
    """[{key, events: latest n, newest first}] for keys matching pattern, sorted by key."""
    from recorder.access import visible_events

    if not 1 <= n <= 100:
        raise FilterError("n: must be between 1 and 100")
    qs = visible_events(principal).filter(_app_q(app), key__isnull=False)
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    if pattern and pattern != "*":
        qs = qs.filter(wildcard_q("key", pattern))
    keys = list(qs.order_by("key").values_list("key", flat=True).distinct()[: MAX_LATEST_KEYS + 1])
    if len(keys) > MAX_LATEST_KEYS:
        raise FilterError(
            f"pattern: {pattern!r} matches more than {MAX_LATEST_KEYS} keys; narrow it"
        )
    out = []
    for key in keys:
        # One small query per key: each walks the (session, key, ts, seq) index backwards.
        events = list(qs.filter(key=key).order_by("-ts", "-seq", "-id")[:n])
        out.append({"key": key, "events": events})
    return out
