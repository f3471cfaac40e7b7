"""POST /v1/logs and /v1/traces: the real OpenTelemetry SDK exporters against a live
server (protobuf, as the Python exporters send it), and OTLP/JSON bodies written by
hand from the specification."""

import gzip
import logging

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from recorder import ingest
from recorder.models import Event, Session

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
NANOS = "1763805600000000000"  # 2025-11-22T10:00:00Z, as OTLP/JSON writes 64-bit ints


def post(client, path, body, *, key, content_type="application/json", **extra):
    if not isinstance(body, bytes):
        body = orjson.dumps(body)
    return client.generic(
        "POST", path, body, content_type=content_type, HTTP_X_API_KEY=key, **extra
    )


def json_logs(*records, resource=None):
    resource = resource or [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "service.instance.id", "value": {"stringValue": "pod-7"}},
    ]
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": resource},
                "scopeLogs": [{"scope": {"name": "shop.payments"}, "logRecords": list(records)}],
                "someFutureField": {"ignored": True},
            }
        ]
    }


def json_record(**fields):
    return {
        "timeUnixNano": NANOS,
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"stringValue": "card declined"},
        "attributes": [
            {"key": "order.id", "value": {"stringValue": "A-17"}},
            {"key": "amount", "value": {"intValue": "4200"}},
            {"key": "retry", "value": {"boolValue": False}},
        ],
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        **fields,
    }


# --- The real SDK -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_logs_and_traces_land_in_one_session_correlated_by_trace_id(
    live_server, shop_key, compression
):
    resource = Resource.create(
        {"service.name": "checkout", "service.version": "3.1", "session.id": "run-42"}
    )
    headers = {"x-api-key": shop_key}
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{live_server.url}/v1/traces", headers=headers, compression=compression
            )
        )
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(
                endpoint=f"{live_server.url}/v1/logs", headers=headers, compression=compression
            )
        )
    )
    logger = logging.getLogger("otel.test.checkout")
    logger.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    logger.addHandler(handler)
    tracer = tracer_provider.get_tracer("shop.http")
    try:
        with tracer.start_as_current_span("POST /pay", kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("http.status_code", 502)
            logger.warning("payment gateway slow", extra={"gateway": "acme"})
            span.add_event("retrying", {"attempt": 2})
            span.set_status(Status(StatusCode.ERROR, "gateway down"))
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        logger.removeHandler(handler)
        logger_provider.shutdown()
        tracer_provider.shutdown()

    session = Session.objects.get(key="run-42")
    assert session.metadata["service.name"] == "checkout"
    assert session.metadata["service.version"] == "3.1"
    events = {e.type: e for e in Event.objects.filter(session=session)}
    assert set(events) == {"log", "span", "span:event"}
    log, span_ev, point = events["log"], events["span"], events["span:event"]
    assert (log.message, log.severity) == ("payment gateway slow", 30)
    assert log.payload["attributes"]["gateway"] == "acme"
    assert span_ev.message == "POST /pay" and span_ev.severity == 40
    assert span_ev.payload["kind"] == "server"
    assert span_ev.payload["status"] == {"code": "error", "message": "gateway down"}
    assert span_ev.payload["attributes"]["http.status_code"] == 502
    assert span_ev.payload["duration_ms"] >= 0
    assert point.message == "retrying" and point.payload["attributes"] == {"attempt": 2}
    assert {log.correlation_id, span_ev.correlation_id, point.correlation_id} == {trace_id}


# --- OTLP/JSON by hand ------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(databases="__all__")


@pytestmark_db
def test_json_logs_with_hex_ids_and_string_integers_are_mapped(client, shop_key):
    r = post(client, "/v1/logs", json_logs(json_record()), key=shop_key)
    assert r.status_code == 200, r.content
    assert r["Content-Type"] == "application/json"
    assert r.json() == {}
    session = Session.objects.get(key="pod-7")  # service.instance.id
    assert session.metadata == {"service.name": "checkout", "service.instance.id": "pod-7"}
    event = Event.objects.get()
    assert (event.type, event.severity, event.message) == ("log", 40, "card declined")
    assert event.source == "shop.payments"
    assert event.correlation_id == TRACE_ID
    assert event.payload["span_id"] == SPAN_ID
    assert event.payload["attributes"] == {"order.id": "A-17", "amount": 4200, "retry": False}
    assert event.ts.isoformat() == "2025-11-22T10:00:00+00:00"


@pytestmark_db
def test_session_falls_back_to_service_name_and_day(client, shop_key):
    resource = [{"key": "service.name", "value": {"stringValue": "cron"}}]
    assert (
        post(
            client, "/v1/logs", json_logs(json_record(), resource=resource), key=shop_key
        ).status_code
        == 200
    )
    assert Session.objects.get().key == "cron-2025-11-22"


@pytestmark_db
def test_session_id_on_the_log_record_wins(client, shop_key):
    record = json_record()
    record["attributes"].append({"key": "session.id", "value": {"stringValue": "s-1"}})
    assert post(client, "/v1/logs", json_logs(record), key=shop_key).status_code == 200
    assert Session.objects.get().key == "s-1"


@pytestmark_db
def test_json_traces_map_spans_and_span_events(client, shop_key):
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "django"},
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "parentSpanId": "0102030405060708",
                                "name": "GET /cart",
                                "kind": 2,
                                "startTimeUnixNano": NANOS,
                                "endTimeUnixNano": "1763805600250000000",
                                "status": {"code": 1},
                                "events": [
                                    {
                                        "timeUnixNano": "1763805600100000000",
                                        "name": "exception",
                                        "attributes": [
                                            {"key": "exception.type", "value": {"stringValue": "KeyError"}},
                                            {"key": "exception.message", "value": {"stringValue": "sku"}},
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }  # fmt: skip
    r = post(client, "/v1/traces", body, key=shop_key)
    assert r.status_code == 200, r.content
    span, point = Event.objects.order_by("ts")
    assert span.type == "span" and span.message == "GET /cart"
    assert span.payload["duration_ms"] == 250.0
    assert span.payload["kind"] == "server" and span.payload["status"] == {"code": "ok"}
    assert span.payload["parent_span_id"] == "0102030405060708"
    assert span.uid == TRACE_ID + SPAN_ID
    assert point.type == "span:event" and point.message == "KeyError: sku"
    assert point.severity == 40 and point.correlation_id == TRACE_ID
    # The exporter retries the same request: nothing is stored twice.
    assert post(client, "/v1/traces", body, key=shop_key).status_code == 200
    assert Event.objects.count() == 2


@pytestmark_db
def test_protobuf_request_gets_a_protobuf_response_and_retries_are_idempotent(client, shop_key):
    request = ExportLogsServiceRequest()
    from google.protobuf import json_format

    from recorder.otlp import _hex_ids_to_base64

    json_format.ParseDict(_hex_ids_to_base64(json_logs(json_record(), json_record())), request,
                          ignore_unknown_fields=True)  # fmt: skip
    body = gzip.compress(request.SerializeToString())
    for _ in range(2):
        r = post(client, "/v1/logs", body, key=shop_key, content_type="application/x-protobuf",
                 HTTP_CONTENT_ENCODING="gzip")  # fmt: skip
        assert r.status_code == 200
        assert r["Content-Type"] == "application/x-protobuf"
        response = ExportLogsServiceResponse()
        response.ParseFromString(r.content)
        assert not response.HasField("partial_success")
    # Two identical records in one request are two events; the retry adds none.
    assert Event.objects.count() == 2


@pytestmark_db
def test_rejected_records_are_reported_as_partial_success(client, shop_key):
    bad = json_record(timeUnixNano="7258118400000000000")  # year 2200
    r = post(client, "/v1/logs", json_logs(json_record(), bad), key=shop_key)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "#1" in partial["errorMessage"] and "2100" in partial["errorMessage"]
    assert Event.objects.count() == 1


@pytestmark_db
def test_bad_data_is_a_400_with_a_status_body_in_the_request_encoding(client, shop_key):
    r = post(
        client, "/v1/logs", b"\xff\xff\xff", key=shop_key, content_type="application/x-protobuf"
    )
    assert r.status_code == 400
    assert r["Content-Type"] == "application/x-protobuf"
    assert r.content[:2] == b"\x08\x03"  # google.rpc.Status code INVALID_ARGUMENT
    r = post(client, "/v1/traces", b"{not json", key=shop_key)
    assert r.status_code == 400 and r.json()["code"] == 3
    r = post(client, "/v1/logs", {"resourceLogs": "nope"}, key=shop_key)
    assert r.status_code == 400


@pytestmark_db
def test_other_content_types_get_415_and_missing_keys_401(client, shop_key):
    r = post(client, "/v1/logs", b"hello", key=shop_key, content_type="text/plain")
    assert r.status_code == 415
    r = post(client, "/v1/logs", json_logs(json_record()), key="fr_wrong")
    assert r.status_code == 401
    r = client.generic("POST", "/v1/logs", orjson.dumps(json_logs(json_record())),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop_key}")  # fmt: skip
    assert r.status_code == 200


@pytestmark_db
def test_oversized_bodies_get_413(client, shop_key, settings):
    settings.FLIGHTREC_MAX_BODY_BYTES = 200
    r = post(client, "/v1/logs", json_logs(json_record(), json_record()), key=shop_key)
    assert r.status_code == 413
    # Small on the wire, large once inflated.
    body = gzip.compress(b" " * 10_000 + b"{}")
    r = post(client, "/v1/logs", body, key=shop_key, HTTP_CONTENT_ENCODING="gzip")
    assert r.status_code == 413


@pytestmark_db
def test_backlog_gets_429_with_retry_after(client, shop_key, settings, monkeypatch):
    settings.FLIGHTREC_INBOX_MAX_EVENTS = 0
    monkeypatch.setattr(ingest, "_checks", {})
    r = post(client, "/v1/logs", json_logs(json_record()), key=shop_key)
    assert r.status_code == 429
    assert r["Retry-After"] == "5"
    assert r.json()["code"] == 8
