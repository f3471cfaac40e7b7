"""The JSON API under /api/v1/ (django-ninja; OpenAPI at /api/v1/openapi.json)."""

import logging

from django.db import DataError, OperationalError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError

from recorder.api.docs import VendoredSwagger
from recorder.api.export import router as export_router
from recorder.api.ingest import router as ingest_router
from recorder.api.sessions import router as sessions_router
from recorder.api.timetravel import router as timetravel_router
from recorder.ingest import IngestError
from recorder.queries import FilterError

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="flightrec",
    version="1",
    description="Ingest application events and read sessions, timelines and snapshots.",
    urls_namespace="api",
    # Swagger UI from static/vendor/: no CDN (offline installs, and our CSP forbids it).
    docs=VendoredSwagger(),
)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    return api.create_response(
        request,
        {"detail": "missing, invalid or revoked API key (send X-API-Key or Authorization: Bearer)"},
        status=401,
    )


@api.exception_handler(IngestError)
def ingest_error(request, exc: IngestError):
    response = api.create_response(request, {"detail": exc.message}, status=exc.status)
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(FilterError)
def filter_error(request, exc: FilterError):
    return api.create_response(request, {"detail": str(exc)}, status=400)


@api.exception_handler(OverflowError)
@api.exception_handler(DataError)
def number_out_of_range(request, exc):
    # An id or count past 64 bits passes parameter validation (Python ints have no size)
    # and fails in the database driver: SQLite raises OverflowError, PostgreSQL DataError.
    return api.create_response(
        request, {"detail": "a number in the request is out of range (64-bit)"}, status=400
    )


@api.exception_handler(OperationalError)
def database_unavailable(request, exc: OperationalError):
    # A full disk, an I/O error or a lock held past the busy timeout can surface in any
    # query (the key lookup, the admission check), not only in the inbox write. Nothing
    # was acknowledged: 503 + Retry-After tells the sender to keep the batch and retry.
    # The SQLite error name (SQLITE_IOERR_SHORT_READ, SQLITE_FULL...) tells causes apart
    # that share one message.
    name = getattr(exc.__cause__, "sqlite_errorname", None) or type(exc).__name__
    log.error("database unavailable for %s: %s (%s)", request.path, exc, name)
    response = api.create_response(
        request, {"detail": f"the database is unavailable, retry later: {exc}"}, status=503
    )
    response["Retry-After"] = "5"
    return response


api.add_router("", ingest_router)
api.add_router("", sessions_router)
api.add_router("", export_router)
api.add_router("", timetravel_router)
