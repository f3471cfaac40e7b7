"""Ingestion endpoints. Thin: parsing and spooling live in recorder.ingest."""

import orjson
from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema, Status

from recorder import ingest
from recorder.api.auth import write_auth
from recorder.api.errors import Error, Rejected
from recorder.models import InboxBatch

router = Router(tags=["ingestion"], auth=write_auth)


class IngestOut(Schema):
    accepted: int
    rejected: list[Rejected]


class SessionAccepted(Schema):
    accepted: int
    session: str


# The OpenAPI document describes what is accepted as precisely as JSON Schema can, so
# clients generated from it send valid events. What it cannot say (ts within 1970..2100
# for RFC 3339 strings, valid JSON pointers in state ops) is checked per item and
# reported in `rejected`.
TS_DOC = {
    "oneOf": [
        {"type": "string", "format": "date-time"},
        {"type": "number", "minimum": 0, "exclusiveMaximum": 4102444800},
    ],
    "description": "RFC 3339, or seconds since the Unix epoch; 1970..2100",
}
ENVELOPE_FIELDS = {
    "id": {"type": "string", "minLength": 1, "maxLength": 64},
    "ts": TS_DOC,
    "type": {"type": "string", "pattern": r"^[A-Za-z0-9_.:/\-]{1,64}$"},
    "source": {"type": "string", "maxLength": 128},
    "severity": {
        "oneOf": [
            {"type": "string", "enum": sorted(ingest.SEVERITY_NAMES)},
            {"type": "integer", "minimum": 1, "maximum": 24},
        ]
    },
    "message": {"type": "string"},
    "key": {"type": "string", "maxLength": 200},
    "correlation_id": {"type": "string", "maxLength": 128},
    "actor": {"type": "string", "maxLength": 128},
    "payload": {"type": "object"},
    "state": {
        "type": "object",
        "required": ["op"],
        "properties": {"op": {"type": "string", "enum": ["set", "merge", "patch"]}},
    },
}
SESSION_KEY_DOC = {"type": "string", "minLength": 1, "maxLength": 128}
ENVELOPE_DOC = {
    "type": "object",
    "description": "An event envelope (see the README). Unknown fields are ignored.",
    "properties": {"session": SESSION_KEY_DOC, **ENVELOPE_FIELDS},
    "required": ["type", "session"],
}
# In the {"session", "events"} form the session may be given once for the batch.
BATCH_EVENT_DOC = {**ENVELOPE_DOC, "required": ["type"]}
EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": ENVELOPE_DOC},
                        {
                            "type": "object",
                            "required": ["session", "events"],
                            "properties": {
                                "session": {
                                    "oneOf": [
                                        SESSION_KEY_DOC,
                                        {
                                            "type": "object",
                                            "required": ["key"],
                                            "properties": {"key": SESSION_KEY_DOC},
                                            "additionalProperties": True,
                                        },
                                    ]
                                },
                                "events": {"type": "array", "items": BATCH_EVENT_DOC},
                            },
                        },
                    ]
                }
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one event envelope per line"}
            },
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
        return Status(400, {"detail": "no valid events in the batch", "rejected": result.rejected})
    return Status(202, {"accepted": result.accepted, "rejected": result.rejected})


SESSION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": SESSION_KEY_DOC,
                        "started_at": TS_DOC,
                        "metadata": {"type": "object"},
                    },
                    "additionalProperties": True,
                }
            }
        },
    }
}


# GET /sessions is registered on this router too (see recorder/api/sessions.py): two
# routers holding the same path make two URL patterns, and the first one would answer
# the other's method with 405.
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
    return Status(202, {"accepted": 1, "session": key})


END_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "ts": TS_DOC,
                        "status": {"type": "string", "enum": ["ended", "crashed"]},
                        "reason": {"type": "string", "maxLength": 200},
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
    if doc.get("reason") is not None and not isinstance(doc["reason"], str):
        raise ingest.IngestError(400, "reason must be a string")
    meta = {"status": status, "reason": doc.get("reason"), "ts": doc.get("ts")}
    ingest.session_accept(
        application=request.auth.application,
        key=key,
        metadata=meta,
        kind=InboxBatch.Kind.END,
        api_key_id=request.auth.id,
    )
    return Status(202, {"accepted": 1, "session": key})
