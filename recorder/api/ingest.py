"""Ingestion endpoints. Thin: parsing and spooling live in recorder.ingest."""

import orjson
from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema

from recorder import ingest
from recorder.api.auth import write_auth
from recorder.models import InboxBatch

router = Router(tags=["ingestion"], auth=write_auth)


class Rejected(Schema):
    index: int
    error: str


class IngestOut(Schema):
    accepted: int
    rejected: list[Rejected]


class SessionAccepted(Schema):
    accepted: int
    session: str


class Error(Schema):
    detail: str
    rejected: list[Rejected] | None = None


ENVELOPE_DOC = {
    "type": "object",
    "description": "An event envelope (see the README). A batch is a JSON array of these, "
    'an object {"session": {...}, "events": [...]}, or NDJSON; gzip allowed.',
    "properties": {
        "id": {"type": "string", "maxLength": 64},
        "session": {"type": "string", "maxLength": 128},
        "ts": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        "type": {"type": "string", "maxLength": 64},
        "source": {"type": "string"},
        "severity": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "message": {"type": "string"},
        "key": {"type": "string"},
        "correlation_id": {"type": "string"},
        "actor": {"type": "string"},
        "payload": {"type": "object"},
        "state": {"type": "object"},
    },
    "required": ["type"],
}
EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": ENVELOPE_DOC}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}
ERRORS = {400: Error, 401: Error, 413: Error, 415: Error, 429: Error, 503: Error}


def request_body(request: HttpRequest) -> bytes:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    limit = settings.FLIGHTREC_MAX_BODY_BYTES
    if length > limit:
        raise ingest.IngestError(413, f"body is {length} bytes; the limit is {limit}")
    return ingest.decode_body(
        request.body, content_encoding=request.META.get("HTTP_CONTENT_ENCODING", "")
    )


def _json_object(request: HttpRequest, *, required: bool) -> dict:
    body = request_body(request)
    if not body.strip():
        if required:
            raise ingest.IngestError(400, "body must be a JSON object")
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ingest.IngestError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ingest.IngestError(400, "body must be a JSON object")
    return doc


@router.post(
    "/events",
    response={202: IngestOut, **ERRORS},
    openapi_extra=EVENTS_BODY,
    summary="Ingest a batch of events",
)
def post_events(request: HttpRequest):
    """Answers 202 once the accepted events are durably stored; they show up in the
    timeline a moment later. Invalid items are listed in `rejected` with their index;
    the valid ones are kept. If no item is valid the answer is 400."""
    body = request_body(request)
    batch = ingest.parse_batch(body, request.META.get("CONTENT_TYPE", "application/json"))
    result = ingest.events_accept(
        application=request.auth.application, batch=batch, body=body, api_key_id=request.auth.id
    )
    if result.accepted == 0 and result.rejected:
        return 400, {"detail": "no valid events in the batch", "rejected": result.rejected}
    return 202, {"accepted": result.accepted, "rejected": result.rejected}


SESSION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": {"type": "string", "maxLength": 128},
                        "started_at": {"type": "string", "format": "date-time"},
                        "metadata": {"type": "object"},
                    },
                    "additionalProperties": True,
                }
            }
        },
    }
}


@router.post(
    "/sessions",
    response={202: SessionAccepted, **ERRORS},
    openapi_extra=SESSION_BODY,
    summary="Start a session or update its metadata",
)
def post_session(request: HttpRequest):
    """Fields other than key, started_at and metadata are taken as metadata too
    (app_version, build, device, os, host, pid, ...)."""
    doc = _json_object(request, required=True)
    key = doc.pop("key", None) or doc.pop("id", None)
    extra = doc.pop("metadata", None) or {}
    if not isinstance(extra, dict):
        raise ingest.IngestError(400, "metadata must be a JSON object")
    ingest.session_accept(
        application=request.auth.application,
        key=key,
        metadata={**doc, **extra},
        api_key_id=request.auth.id,
    )
    return 202, {"accepted": 1, "session": key}


END_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "ts": {"type": "string", "format": "date-time"},
                        "status": {"type": "string", "enum": ["ended", "crashed"]},
                        "reason": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/sessions/{key}/end",
    response={202: SessionAccepted, **ERRORS},
    openapi_extra=END_BODY,
    summary="Mark a session as ended",
)
def end_session(request: HttpRequest, key: str):
    doc = _json_object(request, required=False)
    status = doc.get("status", "ended")
    if status not in ("ended", "crashed"):
        raise ingest.IngestError(400, "status must be ended or crashed")
    meta = {"status": status, "reason": doc.get("reason"), "ts": doc.get("ts")}
    ingest.session_accept(
        application=request.auth.application,
        key=key,
        metadata=meta,
        kind=InboxBatch.Kind.END,
        api_key_id=request.auth.id,
    )
    return 202, {"accepted": 1, "session": key}
