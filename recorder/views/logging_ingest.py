"""/ingest/logging: the stdlib `logging.handlers.HTTPHandler`, unchanged, GET or POST.

HTTPHandler("flightrec.example:8000", "/ingest/logging", method="POST",
            credentials=("flightrec", KEY))   # or url "/ingest/logging?key=KEY"
"""

import base64
import binascii

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from recorder import ingest
from recorder.api.auth import key_lookup
from recorder.logrecords import logrecord_batch
from recorder.views.otlp import request_key


def _basic_password(request: HttpRequest) -> str | None:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _user, _, password = base64.b64decode(token.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password or None


def _error(status: int, detail: str, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def logging_record(request: HttpRequest) -> JsonResponse:
    raw_key = _basic_password(request) or request.GET.get("key") or request_key(request)
    api_key = key_lookup(raw_key)
    if api_key is None:
        return _error(
            401,
            "missing, invalid or revoked API key: use credentials=('flightrec', KEY) or ?key=KEY",
        )
    fields = (
        request.GET.dict()
        if request.method == "GET"
        else {**request.GET.dict(), **request.POST.dict()}
    )
    if not fields.get("msg") and not fields.get("message"):
        return _error(400, "not a log record: the msg field is missing")
    try:
        batch = logrecord_batch(fields, peer=request.META.get("REMOTE_ADDR", ""))
        body = (
            request.body
            if request.method == "POST"
            else request.META.get("QUERY_STRING", "").encode()
        )
        result = ingest.events_accept(
            application=api_key.application, batch=batch, body=body, api_key_id=api_key.id
        )
    except ingest.IngestError as exc:
        return _error(exc.status, exc.message, exc.retry_after)
    if not result.accepted:
        return _error(400, f"log record rejected: {result.rejected[0]['error']}")
    return JsonResponse({"accepted": result.accepted}, status=202)
