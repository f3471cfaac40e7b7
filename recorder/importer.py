"""Imports: our NDJSON / JSON exports (or any ingestion batch), gzip or not, back in.

Why not through the inbox and the drain, like every other way in? Three reasons:
- atomicity: the drain commits whatever inbox rows fit in one transaction, and one
  inbox row is limited to FLIGHTREC_MAX_BATCH_EVENTS events, so a big session would
  become visible in pieces. Here a whole file is one transaction: every session in it
  is all there or not there at all.
- memory: spooling a million-event session means holding it as one document; here the
  file is read line by line and written in chunks inside that one transaction.
- fidelity: the session header carries status, reason and times that the ingestion
  envelope has no place for.
Each event still goes through the same validation and redaction as ingestion
(recorder.ingest.event_prepare, with the target application's policy), and rows are
written by the drain's own row builder, so an imported event is stored exactly like an
ingested one. Original ids (uids) and times are kept; uids already stored for the
application are skipped, so importing a file twice changes nothing.

Bad lines (not JSON, not a valid envelope, truncated) are reported by line number and
skipped; the valid ones are imported.
"""

import gzip
import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from django.db import connection, transaction

from recorder import drain, ingest, payloads, redaction, tasks
from recorder.fields import from_micros, to_micros
from recorder.models import Application, Session

# Events per INSERT chunk: large enough to amortise the uid lookups and executemany,
# small enough to keep memory flat.
CHUNK_EVENTS = 5000
MAX_ERRORS_KEPT = 1000


class ImportFailed(Exception):
    """The file cannot be imported at all (nothing was written)."""


@dataclass
class LineError:
    line: int  # 1-based line of an NDJSON file, or 1-based position in a JSON "events" array
    error: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.error}"


@dataclass
class ImportResult:
    application: str = ""
    sessions: list[str] = field(default_factory=list)
    imported: int = 0
    duplicates: int = 0
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0  # errors beyond MAX_ERRORS_KEPT are counted, not kept

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def as_dict(self) -> dict:
        return {
            "application": self.application,
            "sessions": self.sessions,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "error_count": self.error_count,
            "errors": [{"line": e.line, "error": e.error} for e in self.errors],
        }


# --- Reading the file ------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"


def open_input(raw: IO[bytes]) -> IO[bytes]:
    """The file as bytes, gunzipped if it starts with the gzip magic number."""
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    return buffered


def _is_header(obj: Any) -> bool:
    # Same rule as the ingestion parser: a session object and no event type.
    return isinstance(obj, dict) and "type" not in obj and isinstance(obj.get("session"), dict)


def read_items(stream: IO[bytes]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed object or None, error) for each non-blank item of the file.

    NDJSON is read line by line. A JSON document (our JSON export, an ingestion batch
    {"session", "events"}, or an array of events) is parsed whole — JSON has no
    streaming form — and its header(s) and events come out as if they were lines.
    """
    first = stream.readline()
    while first and not first.strip():
        first = stream.readline()
    if not first:
        return
    stripped = first.lstrip()
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        obj = None
    whole = None
    if stripped[:1] == b"[" or (isinstance(obj, dict) and isinstance(obj.get("events"), list)):
        whole = first + stream.read()
    elif obj is None and stripped[:1] == b"{":
        # A pretty-printed JSON document spans lines; a broken first line of NDJSON
        # does not parse as a whole either, and is then reported as a line.
        rest = stream.read()
        try:
            doc = orjson.loads(first + rest)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, (dict, list)):
            whole = first + rest
        else:
            yield from _ndjson_lines(io.BytesIO(first + rest))
            return
    if whole is not None:
        yield from _document_items(whole)
        return
    yield from _ndjson_lines(stream, first=first)


def _ndjson_lines(stream: IO[bytes], first: bytes | None = None):
    number = 0
    lines = iter(stream if first is None else _prepend(first, stream))
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error) as exc:
            # A cut-off gzip file: what decompressed so far has been read.
            yield number + 1, None, f"gzip data is corrupt or truncated: {exc}"
            return
        number += 1
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line), None
        except orjson.JSONDecodeError as exc:
            truncated = not line.endswith(b"\n")
            reason = "line is not valid JSON" + (" (truncated file?)" if truncated else "")
            yield number, None, f"{reason}: {exc}"


def _prepend(first: bytes, rest: IO[bytes]):
    yield first
    yield from rest


def _document_items(body: bytes):
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        yield 1, None, f"file is not valid JSON (truncated?): {exc}"
        return
    if isinstance(doc, list):
        events = doc
    elif isinstance(doc, dict) and isinstance(doc.get("events"), list):
        events = doc.pop("events")
        for header in doc.pop("sessions", None) or []:  # application (audit) export
            yield 0, header, None
        if isinstance(doc.get("session"), str):  # {"session": "key", "events": [...]}
            doc["session"] = {"key": doc["session"]}
        if doc.get("session") is not None:
            yield 0, doc, None
    else:
        yield 1, None, 'a JSON document needs an "events" array'
        return
    for index, item in enumerate(events, start=1):
        yield index, item, None


# --- Writing ---------------------------------------------------------------------------


class _Target:
    """The sessions an import touches, created on first sight, saved at the end."""

    def __init__(self, application: Application):
        self.application = application
        self.sessions: dict[str, Session] = {}
        self.headers: dict[str, dict] = {}
        self.created: set[str] = set()

    def header(self, obj: dict) -> str:
        key, meta = ingest._session_header(obj)
        if not key or len(key) > 128:
            raise ingest.ItemError("session header needs a key of 1-128 characters")
        meta = dict(meta)
        redaction.redact_mapping(meta, ingest._policy(self.application))
        self.headers[key] = {**obj, "_metadata": meta}
        return key

    def session(self, key: str, first_ts: int) -> Session:
        found = self.sessions.get(key)
        if found is not None:
            return found
        header = self.headers.get(key, {})
        qs = Session.objects.filter(application=self.application, key=key)
        if connection.features.has_select_for_update:
            # PostgreSQL: a drain handing out seq numbers for this session waits for us.
            qs = qs.select_for_update()
        found = qs.first()
        if found is None:
            started = _time(header.get("started_at"))
            found = Session.objects.create(
                application=self.application,
                key=key,
                started_at=from_micros(started if started is not None else first_ts),
                metadata=header.get("_metadata", {}),
            )
            self.created.add(key)
        elif header.get("_metadata"):
            found.metadata = {**found.metadata, **header["_metadata"]}
        self.sessions[key] = found
        return found

    def finish(self, now_us: int) -> None:
        for key in self.headers.keys() - self.sessions.keys():
            self.session(key, now_us)  # a session exported without events
        for key, session in self.sessions.items():
            header = self.headers.get(key)
            if header and key in self.created:
                # A new session takes what its export said: the envelope has no place
                # for status, reason or end time, and the first event is not
                # necessarily when the session started.
                status = header.get("status")
                if status in Session.Status.values:
                    session.status = status
                    session.status_reason = str(header.get("status_reason") or "")[:200]
                started = _time(header.get("started_at"))
                if started is not None:
                    session.started_at = from_micros(started)
                ended = _time(header.get("ended_at"))
                if ended is not None:
                    session.ended_at = from_micros(ended)
            session.save(
                update_fields=[
                    "status", "status_reason", "started_at", "ended_at", "last_event_at",
                    "metadata", "event_count", "error_count", "byte_count", "last_seq",
                ]
            )  # fmt: skip


def _time(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return ingest.parse_ts(value)
    except ingest.ItemError:
        return None


def import_stream(
    raw: IO[bytes],
    *,
    application: Application | None = None,
    app_name: str | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK_EVENTS,
) -> ImportResult:
    """Import a file object (NDJSON or JSON, gzip detected) in one transaction.

    The target is `application`, else the application named `app_name` (created if
    missing), else the one the file's first session header names.
    Raises ImportFailed when there is no target; bad lines are in the result.
    """
    items = read_items(open_input(raw))
    result = ImportResult()
    pending: list[tuple[int, dict]] = []
    buffered: list[tuple[int, Any, str | None]] = []

    if application is None and app_name:
        application, _ = Application.objects.get_or_create(name=app_name)
    if application is None:
        # Read up to the first header to learn which application the file is for.
        for item in items:
            buffered.append(item)
            _, obj, _ = item
            if _is_header(obj) and isinstance(obj.get("application"), str):
                application, _ = Application.objects.get_or_create(
                    name=obj["application"][:100],
                    defaults={"environment": str(obj.get("environment") or "production")[:50]},
                )
                break
            if obj is not None and not _is_header(obj):
                break
        if application is None:
            raise ImportFailed(
                "the file names no application (no session header): pass --app or use an "
                "application's key"
            )
    result.application = application.name
    policy = ingest._policy(application)
    received_us = to_micros(datetime.now(UTC))

    def fail(line: int, error: str) -> None:
        result.error_count += 1
        if len(result.errors) < MAX_ERRORS_KEPT:
            result.errors.append(LineError(line, error))

    def all_items():
        yield from buffered
        yield from items

    with transaction.atomic():
        target = _Target(application)
        current: str | None = None
        for line, obj, error in all_items():
            if error is not None:
                fail(line, error)
                continue
            if _is_header(obj):
                try:
                    current = target.header(obj)
                except (ingest.ItemError, ingest.IngestError) as exc:
                    fail(line, str(getattr(exc, "message", exc)))
                continue
            try:
                event = ingest.event_prepare(
                    obj, session_key=current, received_us=received_us, policy=policy,
                    body_digest=_digest(obj, current), index=line,
                )  # fmt: skip
            except ingest.ItemError as exc:
                fail(line, str(exc))
                continue
            ingest.event_spool_form(event)
            pending.append((line, event))
            if len(pending) >= chunk:
                _flush(target, pending, received_us, result)
                if progress:
                    progress(len(pending))
                pending = []
        if pending:
            _flush(target, pending, received_us, result)
            if progress:
                progress(len(pending))
        target.finish(received_us)
        # As after a drain: keyframes for what was imported, once it is committed.
        session_ids = sorted(session.id for session in target.sessions.values())
        transaction.on_commit(lambda: tasks.build_keyframes(session_ids))
    result.sessions = list(target.sessions)
    return result


def _digest(obj: Any, session_key: str | None) -> bytes:
    """Seed for the uid of an event without an id: its content, session and line, so
    that importing the same file again gives the same uids (and skips them)."""
    if isinstance(obj, dict) and obj.get("id") is not None:
        return b""
    seed = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + (session_key or "").encode()
    return hashlib.blake2b(seed, digest_size=16).digest()


def _flush(target: _Target, pending: list[tuple[int, dict]], received: int, result) -> None:
    app_id = target.application.id
    known = drain._known_uids(app_id, [ev["uid"] for _, ev in pending])
    values = []
    for _, ev in pending:
        if ev["uid"] in known:
            result.duplicates += 1
            continue
        known.add(ev["uid"])  # the same uid twice in one file
        session = target.session(ev["session"], ev["ts"])
        session.last_seq += 1
        drain._count(session, ev)
        values.append(drain.event_row(app_id, session, ev, received))
    if values:
        drain.insert_events(values)
        # A big import into a new database: pack from its first few thousand events on.
        payloads.dictionary_maybe_train()
    result.imported += len(values)


def import_bytes(body: bytes, **kwargs) -> ImportResult:
    return import_stream(io.BytesIO(body), **kwargs)
