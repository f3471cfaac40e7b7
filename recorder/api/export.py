"""Export and import endpoints. Thin: the formats live in recorder.export and
recorder.importer, the filters in recorder.queries (the timeline's own)."""

from datetime import UTC, datetime

from django.http import HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from ninja import File, Router, Schema, Status
from ninja.files import UploadedFile

from recorder import export, importer, queries
from recorder.access import visible_applications, visible_events, visible_sessions
from recorder.api.auth import read_auth, write_auth
from recorder.api.errors import READ_ERRORS, Error
from recorder.api.sessions import principal
from recorder.ingest import IngestError

router = Router(tags=["export"])

CONTENT_TYPES = {
    "ndjson": "application/x-ndjson",
    "json": "application/json",
    "har": "application/json",
}
# Parameters of ours, next to the timeline filters in the same query string.
OWN_PARAMS = {"format", "gzip", "application"}


def _filters(request: HttpRequest) -> "queries.EventFilters":
    params = request.GET.copy()
    for name in OWN_PARAMS:
        params.pop(name, None)
    try:
        return queries.parse_event_filters(params)
    except queries.FilterError as exc:
        raise IngestError(400, str(exc)) from None


def _format(value: str, allowed) -> str:
    if value not in allowed:
        raise IngestError(400, f"format must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _download(chunks, *, filename: str, fmt: str, gzipped: bool) -> StreamingHttpResponse:
    if gzipped:
        chunks = export.gzip_chunks(chunks)
    # A gzip file to save, not a gzip-encoded response: with Content-Encoding the
    # browser would unpack it and save plain text under a .gz name.
    ctype = "application/gzip" if gzipped else CONTENT_TYPES[fmt]
    response = StreamingHttpResponse(chunks, content_type=ctype)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get(
    "/sessions/{session_id}/export",
    auth=read_auth,
    response={200: None, **READ_ERRORS},
    summary="Download a session as NDJSON, JSON or HAR",
)
def export_session(request: HttpRequest, session_id: int, format: str = "ndjson", gzip: int = 0):
    """Streamed in timeline order. NDJSON: a session header line, then one ingestion
    envelope per line (the file can be POSTed to /api/v1/events or imported). JSON: the
    header with an "events" array. HAR 1.2: the session's `http` events. The timeline
    filters (type, severity, source, key, correlation_id, actor, since, until, q, where,
    filter) narrow the events."""
    fmt = _format(format, export.FORMATS)
    who = principal(request)
    session = get_object_or_404(visible_sessions(who).select_related("application"), id=session_id)
    filters = _filters(request)
    events = visible_events(who)
    extra = {}
    if not filters.is_empty():
        events = queries.filter_events(events, filters, session_id=session.id)
        extra["filters"] = filters.to_params()
    chunks = export.session_export(session, fmt=fmt, events=events, extra=extra)
    name = export.export_filename(session.application, session=session, fmt=fmt, gzipped=bool(gzip))
    return _download(chunks, filename=name, fmt=fmt, gzipped=bool(gzip))


@router.get(
    "/export",
    auth=read_auth,
    response={200: None, **READ_ERRORS},
    summary="Audit export: an application's events across sessions",
)
def export_application(
    request: HttpRequest, application: str | None = None, format: str = "ndjson", gzip: int = 0
):
    """Events of one application in time order across its sessions, narrowed by the
    timeline filters — `since` and `until` give the time range. NDJSON starts with one
    header line per session involved; every event line names its session."""
    fmt = _format(format, ("ndjson", "json"))
    who = principal(request)
    apps = visible_applications(who)
    if application is None:
        if apps.count() != 1:
            raise IngestError(400, "application is required (the name of the application)")
        app = apps.get()
    else:
        app = get_object_or_404(apps, name=application)
    filters = _filters(request)
    events = queries.filter_events(visible_events(who), filters)
    chunks = export.application_export(app, events=events, fmt=fmt)
    when = filters.since or datetime.now(UTC)
    name = export.export_filename(app, fmt=fmt, gzipped=bool(gzip), when=when)
    return _download(chunks, filename=name, fmt=fmt, gzipped=bool(gzip))


class LineErrorOut(Schema):
    line: int
    error: str


class ImportOut(Schema):
    application: str
    sessions: list[str]
    imported: int
    duplicates: int
    error_count: int
    errors: list[LineErrorOut]


class ImportFailedOut(ImportOut):
    detail: str


@router.post(
    "/import",
    auth=write_auth,
    response={
        200: ImportOut,
        400: Error,
        401: Error,
        413: Error,
        415: Error,
        422: ImportFailedOut,
        429: Error,
        503: Error,
    },
    summary="Import an export file into the key's application",
)
def import_file(request: HttpRequest, file: UploadedFile | None = File(None)):  # noqa: B008
    """Upload a file (multipart field `file`, or the file as the raw request body):
    NDJSON or JSON as exported, gzip detected. One transaction: every session in the file
    is imported whole. Original ids and times are kept; events whose id is already
    stored are counted as duplicates, so importing twice changes nothing. Bad lines are
    skipped and listed with their line numbers, and the answer is then 422 (the valid
    lines are imported)."""
    application = request.auth.application
    try:
        if file is not None:
            result = importer.import_stream(file.file, application=application)
        elif request.content_type == "multipart/form-data":
            # The form was parsed (so the raw body is gone) but held no file part.
            raise IngestError(400, 'a multipart upload needs the file in a part named "file"')
        else:
            result = importer.import_bytes(request.body, application=application)
    except importer.ImportFailed as exc:
        raise IngestError(400, str(exc)) from None
    body = result.as_dict()
    if not result.ok:
        detail = (
            f"{result.error_count} bad lines were skipped; the {result.imported} valid events "
            "were imported"
        )
        return Status(422, {"detail": detail, **body})
    return Status(200, body)
