"""OpenTelemetry (OTLP/HTTP) requests in, flightrec envelopes out.

The views in recorder/views/otlp.py parse a body with `logs_request` / `traces_request`,
turn it into an `ingest.Batch` with `logs_batch` / `traces_batch`, and hand that to
`ingest.events_accept` like any other batch: same validation, redaction and durable
inbox. Mapping (DESIGN.md, issue #8):

- session: the `session.id` attribute (record/span, else resource), else the resource's
  `service.instance.id`, else `service.name` + the UTC day; resource attributes become
  session metadata.
- log records -> `log` events: severity from severityNumber (else a known severityText),
  body as message, attributes in the payload, trace id as correlation_id.
- spans -> `span` events at their start time with duration and status; span events ->
  `span:event` point events. Both carry the trace id as correlation_id, so a trace and
  its logs line up.
- uids are derived from the data (trace/span ids, or a digest of the record), so an
  exporter retrying the same request is stored once.

OTLP/JSON differs from protobuf's canonical JSON in one way that matters: trace and
span ids are hex, not base64. `_hex_ids_to_base64` rewrites them before json_format.
"""

import base64
import hashlib
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from recorder import ingest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ID_FIELDS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


# --- Parsing ----------------------------------------------------------------------------


def content_kind(content_type: str) -> str:
    """PROTOBUF or JSON; anything else is a 415."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if ctype == JSON:
        return JSON
    raise ingest.IngestError(
        415, f"Content-Type {ctype!r} is not supported: send {PROTOBUF} or {JSON}"
    )


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ID_FIELDS and isinstance(value, str):
                if HEX_RE.match(value):
                    node[name] = base64.b64encode(bytes.fromhex(value)).decode()
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _hex_ids_to_base64(value)
    return node


def parse(body: bytes, kind: str, message: Message) -> Message:
    try:
        if kind == PROTOBUF:
            message.ParseFromString(body)
        else:
            doc = orjson.loads(body) if body.strip() else {}
            if not isinstance(doc, dict):
                raise ingest.IngestError(400, "OTLP/JSON body must be a JSON object")
            json_format.ParseDict(_hex_ids_to_base64(doc), message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, orjson.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, ingest.IngestError):
            raise
        what = "protobuf" if kind == PROTOBUF else "OTLP/JSON"
        raise ingest.IngestError(400, f"body is not a valid {what} export request: {exc}") from None
    return message


def logs_request(body: bytes, kind: str) -> ExportLogsServiceRequest:
    return parse(body, kind, ExportLogsServiceRequest())


def traces_request(body: bytes, kind: str) -> ExportTraceServiceRequest:
    return parse(body, kind, ExportTraceServiceRequest())


# --- Responses --------------------------------------------------------------------------


def _encode(message: Message, kind: str) -> bytes:
    if kind == PROTOBUF:
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))


def logs_response(rejected: list[dict], kind: str) -> bytes:
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(
                rejected_log_records=len(rejected), error_message=_rejections(rejected)
            )
        )
    return _encode(response, kind)


def traces_response(rejected: list[dict], kind: str) -> bytes:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=len(rejected), error_message=_rejections(rejected)
            )
        )
    return _encode(response, kind)


def _rejections(rejected: list[dict]) -> str:
    shown = "; ".join(f"#{r['index']}: {r['error']}" for r in rejected[:5])
    more = f" (and {len(rejected) - 5} more)" if len(rejected) > 5 else ""
    return shown + more


# gRPC codes, which OTLP/HTTP puts in its google.rpc.Status error body.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 503: 14}


def status_body(http_status: int, message: str, kind: str) -> bytes:
    """A google.rpc.Status (code, message) in the request's encoding. Encoded by hand:
    two fields do not justify a dependency on googleapis-common-protos."""
    code = GRPC_CODES.get(http_status, 2)
    if kind != PROTOBUF:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --- Values -----------------------------------------------------------------------------


def any_value(value) -> Any:
    """An OTLP AnyValue as plain JSON."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


def rfc3339(nanos: int) -> str:
    secs, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1000:06d}Z"


def session_for(resource: dict, item: dict, nanos: int) -> str:
    """session.id (item, then resource), else service.instance.id, else service.name + day."""
    for attrs in (item, resource):
        value = attrs.get("session.id")
        if value not in (None, ""):
            return str(value)[:128]
    if instance := resource.get("service.instance.id"):
        return str(instance)[:128]
    service = str(resource.get("service.name") or "unknown_service")[:100]
    day = datetime.fromtimestamp(nanos / 1e9 if nanos else datetime.now(UTC).timestamp(), UTC)
    return f"{service}-{day:%Y-%m-%d}"


def _severity(number: int, text: str) -> int | str | None:
    if 1 <= number <= 24:
        return number
    if text and text.strip().lower() in ingest.SEVERITY_NAMES:
        return text
    return None


def _enum_name(enum, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


class _Uids:
    """Content uids for records without ids of their own; identical records in one
    request are told apart by their count so far, which a retry reproduces."""

    def __init__(self) -> None:
        self.seen: Counter = Counter()

    def __call__(self, prefix: str, *parts: bytes) -> str:
        digest = hashlib.blake2b(b"\x00".join(parts), digest_size=15).digest()
        self.seen[digest] += 1
        n = self.seen[digest]
        return f"{prefix}{base64.urlsafe_b64encode(digest).decode()}" + (f".{n}" if n > 1 else "")


# --- Mapping ----------------------------------------------------------------------------


def _add(batch: ingest.Batch, item: dict, session: str, meta: dict) -> None:
    item["session"] = session
    batch.headers[len(batch.items)] = (session, meta)
    batch.items.append(item)


def logs_batch(request: ExportLogsServiceRequest) -> ingest.Batch:
    batch = ingest.Batch()
    uid = _Uids()
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        resource_bytes = resource_logs.resource.SerializeToString(deterministic=True)
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name or None
            for record in scope_logs.log_records:
                attrs = attributes(record.attributes)
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                payload: dict[str, Any] = {}
                if attrs:
                    payload["attributes"] = attrs
                if record.severity_text:
                    payload["severity_text"] = record.severity_text
                if record.event_name:
                    payload["event_name"] = record.event_name
                if scope:
                    payload["scope"] = scope
                body = any_value(record.body)
                item: dict[str, Any] = {
                    "id": uid(
                        "otlp-",
                        resource_bytes,
                        scope.encode() if scope else b"",
                        record.SerializeToString(deterministic=True),
                    ),
                    "type": "log",
                    "severity": _severity(record.severity_number, record.severity_text),
                }
                if nanos:
                    item["ts"] = rfc3339(nanos)
                if isinstance(body, str):
                    item["message"] = body
                elif body is not None:
                    payload["body"] = body
                    item["message"] = orjson.dumps(body).decode()[:2000]
                if record.trace_id:
                    item["correlation_id"] = record.trace_id.hex()
                    payload["trace_id"] = record.trace_id.hex()
                if record.span_id:
                    payload["span_id"] = record.span_id.hex()
                if scope:
                    item["source"] = scope[:128]
                if payload:
                    item["payload"] = payload
                _add(batch, item, session_for(resource, attrs, nanos), resource)
    return batch


def traces_batch(request: ExportTraceServiceRequest) -> ingest.Batch:
    batch = ingest.Batch()
    uid = _Uids()
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        resource_bytes = resource_spans.resource.SerializeToString(deterministic=True)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            for span in scope_spans.spans:
                _span_items(batch, span, resource, resource_bytes, scope, uid)
    return batch


def _span_items(batch, span, resource: dict, resource_bytes: bytes, scope, uid) -> None:
    attrs = attributes(span.attributes)
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    session = session_for(resource, attrs, start)
    status = _enum_name(Status.StatusCode, span.status.code, "STATUS_CODE_")
    payload: dict[str, Any] = {
        "name": span.name,
        "kind": _enum_name(Span.SpanKind, span.kind, "SPAN_KIND_"),
        "trace_id": trace_id,
        "span_id": span_id,
        "status": {
            "code": status,
            **({"message": span.status.message} if span.status.message else {}),
        },
    }
    if span.parent_span_id:
        payload["parent_span_id"] = span.parent_span_id.hex()
    if start and end >= start:
        payload["duration_ms"] = (end - start) / 1e6
        payload["end"] = rfc3339(end)
    if attrs:
        payload["attributes"] = attrs
    if span.links:
        payload["links"] = [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
             **({"attributes": attributes(link.attributes)} if link.attributes else {})}
            for link in span.links
        ]  # fmt: skip
    if scope:
        payload["scope"] = scope
    # Span ids are unique within a trace, so trace + span is the natural uid; a span
    # exported without ids (hand-built JSON) falls back to its content.
    base = (
        f"{trace_id}{span_id}"
        if trace_id and span_id
        else uid("otlp-span-", resource_bytes, span.SerializeToString(deterministic=True))
    )
    item: dict[str, Any] = {
        "id": base[:64],
        "type": "span",
        "message": span.name or "span",
        "severity": "error" if status == "error" else "info",
        "payload": payload,
    }
    if start:
        item["ts"] = rfc3339(start)
    if trace_id:
        item["correlation_id"] = trace_id
    if scope:
        item["source"] = scope[:128]
    _add(batch, item, session, resource)
    for index, event in enumerate(span.events):
        event_attrs = attributes(event.attributes)
        is_exception = event.name == "exception"
        message = event.name or "event"
        if is_exception and event_attrs.get("exception.type"):
            message = f"{event_attrs['exception.type']}: {event_attrs.get('exception.message', '')}"
        point: dict[str, Any] = {
            "id": f"{base[:58]}e{index}",
            "type": "span:event",
            "message": message,
            "severity": "error" if is_exception else "info",
            "payload": {
                "name": event.name,
                "span": span.name,
                "trace_id": trace_id,
                "span_id": span_id,
                **({"attributes": event_attrs} if event_attrs else {}),
            },
        }
        if event.time_unix_nano:
            point["ts"] = rfc3339(event.time_unix_nano)
        if trace_id:
            point["correlation_id"] = trace_id
        if scope:
            point["source"] = scope[:128]
        _add(batch, point, session, resource)
