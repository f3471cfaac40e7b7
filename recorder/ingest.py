"""Raw request bodies in, accepted events durably spooled out.

This is the request side of the durability invariant (see DESIGN.md): validate, redact,
give every event a uid, write the accepted batch as ONE inbox row, commit — and only then
may the caller answer 202. Everything here is plain functions so that the HTTP views,
the OTLP and logging endpoints and `manage.py import` share one path.

Spool format (the inbox row's body): an orjson document
    {"sessions": {key: {metadata…}}, "events": [normalized event, …]}
where a normalized event holds the Event columns that the drain writes: uid, session
(the key), ts (µs since epoch), type, severity (int), and whichever of source, key,
correlation_id, actor, message, payload, state, redacted are present — the last three
as JSON text — plus size.
"""

import base64
import functools
import hashlib
import re
import shutil
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ciso8601
import orjson
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Sum

from recorder import metrics, redaction, state
from recorder.fields import to_micros
from recorder.models import Application, InboxBatch, Severity


class IngestError(Exception):
    """The whole request is refused: status code, message, optional Retry-After seconds."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class ItemError(Exception):
    """One item of a batch is refused; the rest of the batch goes on."""


@dataclass
class Batch:
    """A parsed body: batch-level session (key and metadata) and the raw items."""

    session_key: str | None = None
    session_meta: dict = field(default_factory=dict)
    items: list = field(default_factory=list)
    # Items that failed before validation (unparseable NDJSON lines): (index, reason).
    errors: list = field(default_factory=list)
    # Per-item session header overrides from NDJSON header lines: index -> (key, meta).
    headers: dict = field(default_factory=dict)


@dataclass
class AcceptResult:
    accepted: int
    rejected: list  # [{"index": i, "error": "..."}]
    inbox_id: int | None


# --- Bodies ----------------------------------------------------------------------------


def decode_body(raw: bytes, *, content_encoding: str = "", max_bytes: int | None = None) -> bytes:
    """Undo Content-Encoding gzip/deflate, refusing anything that inflates past the limit."""
    max_bytes = max_bytes or settings.FLIGHTREC_MAX_BODY_BYTES
    if len(raw) > max_bytes:
        raise IngestError(413, f"body is {len(raw)} bytes; the limit is {max_bytes}")
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise IngestError(415, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    # wbits 47 = auto-detect zlib or gzip header. Bounded output defeats gzip bombs.
    inflater = zlib.decompressobj(wbits=47)
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise IngestError(400, f"body is not valid {encoding}: {exc}") from None
    if len(out) > max_bytes:
        raise IngestError(413, f"body inflates past the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise IngestError(400, f"body is truncated {encoding} data")
    return out


def _is_ndjson(content_type: str, body: bytes) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return True
    if ctype in ("application/json", ""):
        return False
    raise IngestError(
        415,
        f"Content-Type {ctype!r} is not supported: send application/json or application/x-ndjson",
    )


def _session_header(obj: dict) -> tuple[str | None, dict]:
    """A batch-level `session` is either the key string or an object with key + metadata."""
    value = obj.get("session")
    if value is None:
        return None, {}
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict):
        meta = dict(value)
        key = meta.pop("key", None) or meta.pop("id", None)
        if key is not None and not isinstance(key, str):
            raise IngestError(400, "session.key must be a string")
        return key, meta
    raise IngestError(400, "session must be a string (the session key) or an object")


def parse_batch(body: bytes, content_type: str = "application/json") -> Batch:
    """Parse a JSON array, a {"session", "events"} object, a single event, or NDJSON."""
    if _is_ndjson(content_type, body):
        return _parse_ndjson(body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    if isinstance(doc, list):
        return Batch(items=doc)
    if isinstance(doc, dict):
        if "events" in doc:
            if not isinstance(doc["events"], list):
                raise IngestError(400, "events must be a JSON array")
            key, meta = _session_header(doc)
            return Batch(session_key=key, session_meta=meta, items=doc["events"])
        if "type" in doc:  # a single event
            return Batch(items=[doc])
        raise IngestError(400, 'a JSON object body needs an "events" array')
    raise IngestError(400, "body must be a JSON array of events or an object with events")


def _parse_ndjson(body: bytes) -> Batch:
    """One event per line. A line {"session": {...}} with no "type" sets the session of the
    lines after it (this is the header line of our own NDJSON export)."""
    batch = Batch()
    header: tuple[str | None, dict] | None = None
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        index = len(batch.items)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            batch.items.append(None)
            batch.errors.append((index, f"line is not valid JSON: {exc}"))
            continue
        if isinstance(obj, dict) and "type" not in obj and isinstance(obj.get("session"), dict):
            header = _session_header(obj)
            if batch.session_key is None and not batch.items:
                batch.session_key, batch.session_meta = header
            continue
        if header is not None:
            batch.headers[index] = header
        batch.items.append(obj)
    return batch


# --- Events ----------------------------------------------------------------------------

TYPE_RE = re.compile(r"[A-Za-z0-9_.:/\-]{1,64}")  # fullmatch: "$" would let "log\n" in
SEVERITY_NAMES = {
    "trace": Severity.DEBUG,
    "debug": Severity.DEBUG,
    "info": Severity.INFO,
    "information": Severity.INFO,
    "notice": Severity.INFO,
    "warn": Severity.WARN,
    "warning": Severity.WARN,
    "error": Severity.ERROR,
    "err": Severity.ERROR,
    "fatal": Severity.FATAL,
    "critical": Severity.FATAL,
    "crit": Severity.FATAL,
    "emergency": Severity.FATAL,
    "alert": Severity.FATAL,
}
# Bounds for ts: before 1970 or after 2100 is a broken clock or a unit mistake
# (milliseconds sent as seconds land in the year 50000).
MIN_TS = 0
MAX_TS = to_micros(datetime(2100, 1, 1, tzinfo=UTC))
STRING_LIMITS = {"source": 128, "key": 200, "correlation_id": 128, "actor": 128}


def parse_ts(value: Any) -> int:
    """RFC 3339 string or epoch seconds (int/float) -> µs since the epoch."""
    if isinstance(value, bool):
        raise ItemError("ts must be an RFC 3339 string or epoch seconds")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ItemError("ts must be a finite number")
        if not MIN_TS <= value < MAX_TS / 1_000_000:
            # Checked before scaling: 1e308 seconds is finite, its microseconds are not.
            raise ItemError("ts is outside 1970..2100 (seconds expected, not milliseconds)")
        micros = round(value * 1_000_000)
    elif isinstance(value, str):
        try:
            parsed = ciso8601.parse_rfc3339(value)
        except ValueError:
            raise ItemError(f"ts {value[:40]!r} is not an RFC 3339 timestamp") from None
        micros = to_micros(parsed)
    else:
        raise ItemError("ts must be an RFC 3339 string or epoch seconds")
    if not MIN_TS <= micros < MAX_TS:
        raise ItemError("ts is outside 1970..2100 (seconds expected, not milliseconds)")
    return micros


def parse_severity(value: Any) -> int:
    if value is None:
        return Severity.INFO
    if isinstance(value, str):
        sev = SEVERITY_NAMES.get(value.strip().lower())
        if sev is None:
            raise ItemError(
                f"severity {value[:20]!r} is not one of debug, info, warn, error, fatal"
            )
        return int(sev)
    if isinstance(value, int) and not isinstance(value, bool):
        # OpenTelemetry SeverityNumber: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN,
        # 17-20 ERROR, 21-24 FATAL.
        if 1 <= value <= 24:
            return (Severity.DEBUG, Severity.DEBUG, Severity.INFO, Severity.WARN,
                    Severity.ERROR, Severity.FATAL)[(value - 1) // 4]  # fmt: skip
        raise ItemError("severity number must be an OpenTelemetry SeverityNumber 1..24")
    raise ItemError("severity must be a name or an OpenTelemetry SeverityNumber")


def _text(item: dict, name: str, limit: int | None) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "message":
        value = str(value)
    if not isinstance(value, str):
        raise ItemError(f"{name} must be a string")
    if limit is not None and len(value) > limit:
        raise ItemError(f"{name} is longer than {limit} characters")
    return value


# Type names already checked against TYPE_RE: a batch repeats a handful of them, and a
# set lookup is cheaper than the regex. Bounded, so odd senders cannot grow it forever.
_VALID_TYPES: set[str] = set()
_VALID_TYPES_LIMIT = 10_000


_INFO = Severity.INFO
_SEVERITY_INTS = {name: int(sev) for name, sev in SEVERITY_NAMES.items()}
_MAX_TS_SECONDS = MAX_TS / 1_000_000
_STRING_FIELDS = tuple(STRING_LIMITS.items())


def normalize_event(item: Any, *, session_key: str | None, received_us: int) -> dict:
    """Validate one envelope and return it in spool form (without uid and size).

    Runs for every event of every request: the usual values (a string session, an
    epoch-seconds float, an exact severity name, short strings) are checked inline, and
    anything else goes through parse_ts / parse_severity / _text, which give the same
    answer for the usual values (tests/test_ingest.py holds them to it)."""
    if not isinstance(item, dict):
        raise ItemError("event must be a JSON object")
    get = item.get
    session_value = get("session", session_key)
    if type(session_value) is not str:
        if isinstance(session_value, dict):  # per-event session object: use its key
            session_value = session_value.get("key") or session_value.get("id")
        if not session_value or not isinstance(session_value, str):
            raise ItemError("session is missing: give it per event or once for the batch")
    elif not session_value:
        raise ItemError("session is missing: give it per event or once for the batch")
    if len(session_value) > 128:
        raise ItemError("session is longer than 128 characters")
    etype = get("type")
    if type(etype) is not str or etype not in _VALID_TYPES:
        if not isinstance(etype, str) or not TYPE_RE.fullmatch(etype):
            raise ItemError("type must be 1-64 characters of letters, digits and _ . : / -")
        if len(_VALID_TYPES) < _VALID_TYPES_LIMIT:
            _VALID_TYPES.add(etype)
    ts = get("ts")
    if ts is None:
        ts = received_us
    elif type(ts) is float and 0.0 <= ts < _MAX_TS_SECONDS:
        # The common case inline; NaN, infinities and everything else take parse_ts.
        ts = round(ts * 1_000_000)
        if ts >= MAX_TS:
            raise ItemError("ts is outside 1970..2100 (seconds expected, not milliseconds)")
    else:
        ts = parse_ts(ts)
    severity = get("severity")
    if severity is None:
        severity = _INFO
    elif (sev := _SEVERITY_INTS.get(severity) if type(severity) is str else None) is not None:
        severity = sev
    else:
        severity = parse_severity(severity)
    event = {"session": session_value, "ts": ts, "type": etype, "severity": severity}
    for name, limit in _STRING_FIELDS:
        # Most events carry few of these: skip the absent ones without a call.
        if name in item:
            value = item[name]
            if type(value) is str and 0 < len(value) <= limit:
                event[name] = value
            elif (value := _text(item, name, limit)) is not None:
                event[name] = value
    if (message := get("message")) is not None:
        if not isinstance(message, str):
            try:
                message = orjson.dumps(message).decode()
            except orjson.JSONEncodeError:  # orjson parses 1024 levels but writes only 254
                raise ItemError("message is nested too deeply: send it as a string") from None
        event["message"] = message
    if (payload := get("payload")) is not None:
        if not isinstance(payload, dict):
            raise ItemError("payload must be a JSON object")
        event["payload"] = payload
    if (op := get("state")) is not None:
        if error := state.validate_op(op):
            raise ItemError(error)
        event["state"] = op
    return event


REDACTED_LIMIT = 200


def _redacted_claims(item: dict) -> list[str]:
    """`redacted` as sent: our own exports carry the paths scrubbed at the first
    ingestion, so that an export -> import round trip keeps them (the values are long
    gone; these are only labels, never secrets)."""
    claims = item.get("redacted")
    if claims is None:
        return []
    if (
        not isinstance(claims, list)
        or len(claims) > REDACTED_LIMIT
        or not all(isinstance(c, str) and 0 < len(c) <= REDACTED_LIMIT for c in claims)
    ):
        raise ItemError(f"redacted must be a list of at most {REDACTED_LIMIT} path strings")
    return claims


def event_prepare(
    item: Any,
    *,
    session_key: str | None,
    received_us: int,
    policy: "redaction.CompiledPolicy",
    body_digest: bytes,
    index: int,
) -> dict:
    """One envelope -> the spool form the drain (or the importer) writes: validated,
    given its uid, redacted, with `redacted` listing the scrubbed paths. The caller
    adds `size`, the length of the encoded result (it encodes it anyway)."""
    event = normalize_event(item, session_key=session_key, received_us=received_us)
    event["uid"] = _uid(item, body_digest, index)
    scrubbed = redaction.redact_event(event, policy)
    if "redacted" in item and (claims := _redacted_claims(item)):
        scrubbed = sorted(set(scrubbed).union(claims))
    if scrubbed:
        event["redacted"] = scrubbed
    return event


def _derived_uid(body_digest: bytes, index: int) -> str:
    """A uid for an event the sender gave no id: the same batch retried gets the same uids,
    so retries of id-less batches are idempotent too."""
    digest = hashlib.blake2b(body_digest + index.to_bytes(4, "big"), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _uid(item: dict, body_digest: bytes, index: int) -> str:
    given = item.get("id")
    if given is None:
        return _derived_uid(body_digest, index)
    if isinstance(given, int) and not isinstance(given, bool):
        given = str(given)
    if not isinstance(given, str) or not 1 <= len(given) <= 64:
        raise ItemError("id must be a string of 1-64 characters")
    return given


# --- Admission control -----------------------------------------------------------------

_checks: dict[str, tuple[float, Any]] = {}


def _cached(name: str, ttl: float, compute):
    """Admission checks run on every request; once a second per process is plenty."""
    now = time.monotonic()
    hit = _checks.get(name)
    if hit and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    _checks[name] = (now, value)
    return value


def inbox_depth() -> int:
    return InboxBatch.objects.aggregate(n=Sum("event_count"))["n"] or 0


def check_admission() -> None:
    """Refuse with 503/429 before accepting anything we might not be able to keep."""
    free = _cached("disk", 1.0, lambda: shutil.disk_usage(settings.DATA_DIR).free)
    if free < settings.FLIGHTREC_MIN_FREE_DISK_BYTES:
        metrics.ingest_rejected("low_disk")
        raise IngestError(503, f"low disk space: {free} bytes free in the data directory", 30)
    depth = _cached("depth", 1.0, inbox_depth)
    if depth >= settings.FLIGHTREC_INBOX_MAX_EVENTS:
        metrics.ingest_rejected("backlog")
        raise IngestError(429, f"ingestion backlog of {depth} events; slow down", 5)


# --- Accepting a batch -----------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _compiled_policy(policy_json: bytes) -> "redaction.CompiledPolicy":
    return redaction.compile_policy(orjson.loads(policy_json))


def _policy(application: Application) -> "redaction.CompiledPolicy":
    # Compiled once per distinct policy, not per request: regexes are the costly part.
    return _compiled_policy(orjson.dumps(application.redaction or {}, option=orjson.OPT_SORT_KEYS))


def events_accept(
    *,
    application: Application,
    batch: Batch,
    body: bytes,
    api_key_id: int | None = None,
) -> AcceptResult:
    """Validate, redact and spool a parsed batch. Returns after the inbox commit."""
    if len(batch.items) > settings.FLIGHTREC_MAX_BATCH_EVENTS:
        raise IngestError(
            413, f"batch has {len(batch.items)} events; the limit is "
            f"{settings.FLIGHTREC_MAX_BATCH_EVENTS}",
        )  # fmt: skip
    check_admission()
    policy = _policy(application)
    received_us = to_micros(datetime.now(UTC))
    # Only derived uids need the body's digest: when every item names its id (our
    # client's always do) the whole body is not hashed.
    if all(type(item) is dict and item.get("id") is not None for item in batch.items):
        digest = b""
    else:
        digest = hashlib.blake2b(body, digest_size=16).digest()
    rejected = [{"index": i, "error": reason} for i, reason in batch.errors]
    failed = {i for i, _ in batch.errors}
    parts: list[bytes] = []
    sessions: dict[str, dict] = {}
    if batch.session_key:
        sessions[batch.session_key] = batch.session_meta
    for index, item in enumerate(batch.items):
        if index in failed:
            continue
        key = batch.session_key
        if index in batch.headers:
            key, meta = batch.headers[index]
            if key:
                sessions.setdefault(key, meta)
        try:
            event = event_prepare(
                item, session_key=key, received_us=received_us, policy=policy,
                body_digest=digest, index=index,
            )  # fmt: skip
        except ItemError as exc:
            rejected.append({"index": index, "error": str(exc)})
            continue
        parts.append(_spool_event(event))
        sessions.setdefault(event["session"], {})
    rejected.sort(key=lambda r: r["index"])
    if rejected:
        metrics.ingest_rejected("invalid", len(rejected))
    if not parts:
        return AcceptResult(accepted=0, rejected=rejected, inbox_id=None)
    for meta in sessions.values():
        redaction.redact_mapping(meta, policy)
    spooled = b'{"sessions":' + orjson.dumps(sessions) + b',"events":[' + b",".join(parts) + b"]}"
    row = spool(
        kind=InboxBatch.Kind.EVENTS,
        application_id=application.id,
        api_key_id=api_key_id,
        event_count=len(parts),
        body=spooled,
    )
    return AcceptResult(accepted=len(parts), rejected=rejected, inbox_id=row.id)


def session_accept(
    *,
    application: Application,
    key: str,
    metadata: dict,
    kind: str = InboxBatch.Kind.SESSION,
    api_key_id: int | None = None,
) -> int:
    """Spool a session start/update (metadata) or an end marker. Returns the inbox id."""
    if not key or not isinstance(key, str) or len(key) > 128:
        raise IngestError(400, "session key must be a string of 1-128 characters")
    check_admission()
    metadata = dict(metadata)
    for name in ("started_at", "ended_at", "ts"):
        if metadata.get(name) is not None:
            try:
                metadata[name] = parse_ts(metadata[name])
            except ItemError as exc:
                raise IngestError(400, f"{name}: {exc}") from None
    redaction.redact_mapping(metadata, _policy(application))
    row = spool(
        kind=kind,
        application_id=application.id,
        api_key_id=api_key_id,
        event_count=0,
        body=orjson.dumps({"key": key, "metadata": metadata}),
    )
    return row.id


JSON_FIELDS = ("payload", "state", "redacted")


def event_spool_form(event: dict) -> dict:
    """A prepared event in the form the drain writes (in place): its JSON columns already
    serialized to text, so the drain (one process for the whole server) passes them to
    the INSERT as they are; the web processes do that work in parallel. Adds `size`."""
    size = len(orjson.dumps(event))  # the envelope as accepted, for quotas
    for name in JSON_FIELDS:
        if name in event:
            event[name] = orjson.dumps(event[name]).decode()
    event["size"] = size
    return event


def _spool_event(event: dict) -> bytes:
    """``orjson.dumps(event_spool_form(event))``, byte for byte, with one encoding of the
    event instead of two: `size` is worked out from the encoding that is written.

    A JSON column encoded as text differs from it encoded in place only by its two
    quotes and one backslash before each ``"`` and ``\\`` inside it (orjson's output
    holds no raw control characters, the only other characters a string escapes)."""
    escapes = 0
    for name in JSON_FIELDS:
        if name in event:
            text = orjson.dumps(event[name])
            escapes += 2 + text.count(b'"') + text.count(b"\\")
            event[name] = text.decode()
    encoded = orjson.dumps(event)
    size = len(encoded) - escapes
    event["size"] = size
    # `size` goes last, where event_spool_form puts it.
    return b'%s,"size":%d}' % (encoded[:-1], size)


def spool(**fields) -> InboxBatch:
    """Write one inbox row and commit; wake the drain once the commit is durable."""
    from recorder.tasks import wake_drain  # tasks import this module

    try:
        with transaction.atomic(using=settings.INBOX_DB):
            row = InboxBatch.objects.create(**fields)
    except OperationalError as exc:
        # "database or disk is full", or the busy timeout ran out: nothing was
        # acknowledged, so the sender keeps the batch and retries.
        metrics.ingest_rejected("spool_failed")
        raise IngestError(503, f"could not store the batch: {exc}", 5) from None
    wake_drain()
    return row
