"""The JSON API under /api/v1/ (django-ninja; OpenAPI at /api/v1/openapi.json)."""

from ninja import NinjaAPI
from ninja.errors import AuthenticationError

from recorder.api.docs import VendoredSwagger
from recorder.api.export import router as export_router
from recorder.api.ingest import router as ingest_router
from recorder.api.sessions import router as sessions_router
from recorder.api.timetravel import router as timetravel_router
from recorder.ingest import IngestError
from recorder.queries import FilterError

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


api.add_router("", ingest_router)
api.add_router("", sessions_router)
api.add_router("", export_router)
api.add_router("", timetravel_router)
