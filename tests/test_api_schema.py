"""schemathesis against /api/v1/openapi.json: every operation, with a write key and with a
read key, must never answer 5xx and must answer what the document says (status codes,
bodies, content types). Examples are bounded so the run stays well under a minute.

Runs in-process through Django's WSGI handler on the test database; requests go through
the same middleware and URL routing as in production.
"""

from datetime import UTC, datetime

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from recorder.models import Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")

MAX_EXAMPLES = 40


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    # As Django's test client does: a request must not close the connection that holds
    # the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schemathesis.serializer("application/x-ndjson")
def ndjson_text(ctx, value):
    # The document describes an NDJSON body as text, one envelope per line: send the
    # generated text as it is, so the NDJSON parser gets fuzzed too.
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


# Fetched from the served route (no database involved), so the document under test is
# the one clients get. Loaded at import: schemathesis' lazy fixture loader does not work
# with this pytest version.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", WSGIHandler())


@pytest.fixture
def seen(shop):
    """Something to read: a session with events, so ids and cursors can hit real rows."""
    now = datetime.now(UTC)
    session = Session.objects.create(application=shop, key="seen", started_at=now)
    for i in range(3):
        Event.objects.create(
            application=shop, session=session, seq=i + 1, ts=now, received_at=now,
            type="log", uid=f"u{i}",
        )  # fmt: skip
    return session


# No 5xx, and status, content type, headers and body as documented. Not the
# positive-acceptance / negative-rejection checks: a batch with some invalid items is
# answered 202 with the items listed in `rejected` (documented), and rules JSON Schema
# cannot state (ts of an RFC 3339 string within 1970..2100, JSON pointers in state ops)
# are enforced per item.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ
def test_every_operation_with_a_write_key_answers_as_documented(case, shop_key, seen):
    case.call_and_validate(headers={"X-API-Key": shop_key}, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_every_operation_with_a_read_key_answers_as_documented(case, read_key, seen):
    case.call_and_validate(headers={"X-API-Key": read_key}, checks=CHECKS)


def test_get_and_post_on_sessions_both_reach_their_views(client, read_key, shop_key, seen):
    # Two routers with the same path once made GET /sessions a 405.
    r = client.get("/api/v1/sessions", HTTP_X_API_KEY=read_key)
    assert r.status_code == 200, r.content
    assert [s["key"] for s in r.json()["items"]] == ["seen"]
    r = client.post("/api/v1/sessions", {"key": "new"}, "application/json",
                    HTTP_X_API_KEY=shop_key)  # fmt: skip
    assert r.status_code == 202, r.content


def test_the_document_declares_the_ingestion_bodies_and_read_errors(client):
    doc = client.get("/api/v1/openapi.json").json()
    events = doc["paths"]["/api/v1/events"]["post"]
    body = events["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(body)
    assert body["application/json"]["schema"]["oneOf"][0]["items"]["required"] == [
        "type", "session"
    ]  # fmt: skip
    timeline = doc["paths"]["/api/v1/sessions/{session_id}/events"]["get"]
    assert {"200", "400", "401", "404", "422"} <= set(timeline["responses"])
