"""A Django middleware that records each request as an `http` event.

    MIDDLEWARE = [..., "recorder.client_django.RecorderMiddleware"]
    FLIGHTREC_CLIENT = {"url": "https://flightrec.example", "api_key": "fr_…",
                        "app_version": "1.4.2"}   # or call recorder.client.init() yourself

Records method, path, query, status, duration, view name, user and the request id or
W3C trace id as correlation; an exception raised by the view goes in the payload with
its traceback. Headers and bodies are not recorded (the redaction rules would drop most
of them anyway). Paths in FLIGHTREC_CLIENT_IGNORE (prefixes) are skipped; by default
the ingestion routes, so a flightrec server never records itself recording.
"""

import threading
import time
import traceback

from django.conf import settings

from recorder import client

DEFAULT_IGNORE = ("/api/v1/events", "/api/v1/sessions", "/v1/logs", "/v1/traces",
                  "/ingest/", "/static/", "/healthz", "/metrics")  # fmt: skip
_init_lock = threading.Lock()


def _recorder():
    rec = client.get()
    if not rec.enabled and getattr(settings, "FLIGHTREC_CLIENT", None):
        with _init_lock:
            rec = client.get()
            if not rec.enabled:
                rec = client.init(**settings.FLIGHTREC_CLIENT)
    return rec


def _severity(status: int) -> str:
    return "error" if status >= 500 else "warn" if status >= 400 else "info"


class RecorderMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.ignore = tuple(getattr(settings, "FLIGHTREC_CLIENT_IGNORE", DEFAULT_IGNORE))

    def __call__(self, request):
        rec = _recorder()
        if not rec.enabled or request.path.startswith(self.ignore):
            return self.get_response(request)
        ts = time.time()
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        status = response.status_code
        payload = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": duration_ms,
        }
        if query := request.META.get("QUERY_STRING"):
            payload["query"] = query  # secret parameters are scrubbed before sending
        match = getattr(request, "resolver_match", None)
        if match is not None and match.view_name:
            payload["view"] = match.view_name
        if exc := getattr(request, "_flightrec_exception", None):
            payload["exception"] = "".join(traceback.format_exception(exc))
        fields = {}
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            fields["actor"] = str(user.get_username())[:128]
        if correlation := _correlation(request):
            fields["correlation_id"] = correlation
        rec.record(
            "http",
            payload,
            ts=ts,
            severity=_severity(status),
            message=f"{request.method} {request.path} {status}",
            source="django",
            **fields,
        )
        return response

    def process_exception(self, request, exception):
        request._flightrec_exception = exception  # the response is built by Django
        return None


def _correlation(request) -> str | None:
    if rid := request.META.get("HTTP_X_REQUEST_ID"):
        return rid[:128]
    # W3C traceparent: version-traceid-spanid-flags; the trace id matches OTLP events.
    parts = request.META.get("HTTP_TRACEPARENT", "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return None
