"""Admission control: a low disk or a long backlog refuses with 503/429 + Retry-After,
before anything is accepted (the sender keeps its batch and retries)."""

import pytest

from recorder import ingest as ingest_module
from recorder.models import Event, InboxBatch

pytestmark = pytest.mark.django_db(databases="__all__")

BATCH = [{"session": "s", "type": "log", "message": "m"}]


@pytest.fixture(autouse=True)
def fresh_checks():
    # The disk and backlog checks are cached for a second per process.
    ingest_module._checks.clear()
    yield
    ingest_module._checks.clear()


def test_low_disk_space_is_503_with_retry_after(ingest, settings):
    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 1 << 60
    r = ingest.post(BATCH)
    assert r.status_code == 503
    assert int(r["Retry-After"]) > 0
    assert "low disk space" in r.json()["detail"]
    assert InboxBatch.objects.count() == 0 and Event.objects.count() == 0


def test_a_backlog_over_the_limit_is_429_with_retry_after(ingest, settings):
    settings.FLIGHTREC_INBOX_MAX_EVENTS = 0
    r = ingest.post(BATCH)
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    assert Event.objects.count() == 0


def test_sessions_endpoints_are_refused_too(ingest, settings):
    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 1 << 60
    r = ingest.post({"key": "s"}, path="/api/v1/sessions")
    assert r.status_code == 503
    assert "Retry-After" in r
