"""GET /metrics: Prometheus text built from the databases at scrape time."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from recorder import retention
from recorder.models import InboxBatch

pytestmark = pytest.mark.django_db(databases="__all__")


def scrape(client) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.content.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def ev(i, **extra):
    return {"id": f"e{i}", "session": "s", "type": "log", "ts": time.time(), **extra}


def test_metrics_need_no_login_and_count_accepted_rejected_and_stored_events(client, ingest):
    ingest.post([ev(1), ev(2), {"type": "log"}])  # the last one has no session: rejected
    ingest.post([ev(1)])  # a retry: accepted again, stored once
    m = scrape(client)
    assert m[("flightrec_events_accepted_total", ())] == 3
    assert m[("flightrec_events_rejected_total", (("reason", "invalid"),))] == 1
    assert m[("flightrec_events_stored_total", ())] == 2
    assert m[("flightrec_events_duplicate_total", ())] == 1
    assert m[("flightrec_events", ())] == 2


def test_inbox_depth_and_age_of_the_oldest_row(client, shop):
    InboxBatch.objects.create(application_id=shop.id, event_count=7, body=b"{}")
    m = scrape(client)
    assert m[("flightrec_inbox_events", ())] == 7
    assert m[("flightrec_inbox_batches", ())] == 1
    assert 0 <= m[("flightrec_inbox_oldest_age_seconds", ())] < 60
    assert m[("flightrec_events_accepted_total", ())] == 7  # waiting counts as accepted


def test_drain_batch_sizes_and_durations_are_histograms(client, ingest):
    ingest.post([ev(i) for i in range(50)])
    ingest.post([ev(100)])
    m = scrape(client)
    assert m[("flightrec_drain_batch_events_count", ())] == 2
    assert m[("flightrec_drain_batch_events_sum", ())] == 51
    assert m[("flightrec_drain_batch_events_bucket", (("le", "10"),))] == 1
    assert m[("flightrec_drain_batch_events_bucket", (("le", "+Inf"),))] == 2
    assert m[("flightrec_drain_duration_seconds_count", ())] == 2
    assert m[("flightrec_drain_duration_seconds_sum", ())] > 0


def test_purges_and_database_bytes(client, ingest, shop):
    ingest.post([{**ev(1), "ts": time.time() - 90 * 86_400}])
    retention.purge_run()
    m = scrape(client)
    assert m[("flightrec_purges_total", (("policy", "max_age"),))] == 1
    assert m[("flightrec_purged_events_total", (("policy", "max_age"),))] == 1
    assert m[("flightrec_purged_sessions_total", (("policy", "max_age"),))] == 1
    assert m[("flightrec_database_used_bytes", ())] > 0
    assert any(name == "flightrec_database_bytes" for name, _ in m)
    assert m[("flightrec_ingestion_paused", ())] == 0


def test_admission_refusals_are_counted_by_reason(client, ingest, settings):
    from recorder import ingest as ingest_module

    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 1 << 60
    ingest_module._checks.clear()
    assert ingest.post([ev(1)]).status_code == 503
    m = scrape(client)
    assert m[("flightrec_events_rejected_total", (("reason", "low_disk"),))] == 1
    assert m[("flightrec_ingestion_paused", ())] == 1


def test_session_limit_refusals_are_counted(client, ingest, shop):
    shop.max_events_per_session = 1
    shop.session_overflow = "refuse"
    shop.save()
    ingest.post([ev(1), ev(2), ev(3)])
    m = scrape(client)
    assert m[("flightrec_events_rejected_total", (("reason", "session_limit"),))] == 2
