"""OTLP/HTTP: POST /v1/logs and /v1/traces, so an OpenTelemetry SDK pointed at the
server's root works unchanged. Thin: mapping lives in recorder.otlp, spooling in
recorder.ingest. Answers in the request's encoding, as the OTLP/HTTP spec requires."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from recorder import ingest, otlp
from recorder.api.auth import key_lookup
from recorder.api.ingest import request_body


def request_key(request: HttpRequest) -> str | None:
    """The raw API key from X-API-Key or Authorization: Bearer."""
    if key := request.META.get("HTTP_X_API_KEY"):
        return key.strip()
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _export(request: HttpRequest, parse, to_batch, respond) -> HttpResponse:
    kind = otlp.JSON
    try:
        kind = otlp.content_kind(request.META.get("CONTENT_TYPE", ""))
        api_key = key_lookup(request_key(request))
        if api_key is None:
            raise ingest.IngestError(
                401, "missing, invalid or revoked API key (send X-API-Key or Authorization: Bearer)"
            )
        body = request_body(request)
        batch = to_batch(parse(body, kind))
        result = ingest.events_accept(
            application=api_key.application, batch=batch, body=body, api_key_id=api_key.id
        )
    except ingest.IngestError as exc:
        response = HttpResponse(
            otlp.status_body(exc.status, exc.message, kind), status=exc.status, content_type=kind
        )
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    return HttpResponse(respond(result.rejected, kind), status=200, content_type=kind)


@csrf_exempt
@require_POST
def logs(request: HttpRequest) -> HttpResponse:
    return _export(request, otlp.logs_request, otlp.logs_batch, otlp.logs_response)


@csrf_exempt
@require_POST
def traces(request: HttpRequest) -> HttpResponse:
    return _export(request, otlp.traces_request, otlp.traces_batch, otlp.traces_response)
