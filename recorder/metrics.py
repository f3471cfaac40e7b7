"""Prometheus metrics, read from the databases at scrape time.

gunicorn runs several web processes and the Huey consumer is another process, so a
counter kept in one process's memory would give a different (and wrong) value depending
on which worker answers the scrape. prometheus_client's multiprocess mode fixes that with
files per pid, but needs an environment variable before import, a cleanup hook per dead
worker, and still misses the consumer unless it shares the directory. Instead, every value
here lives in the database: counters the drain moves inside its own transaction (so they
are exactly as durable as the events), rejections counted in the inbox database, and
gauges computed at scrape time (inbox rows, session counters, PurgeLog, file sizes).
"""

from django.conf import settings
from django.db import connections
from django.db.models import Count, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from recorder.models import Counter, IngestCounter, PurgeLog, Session

BATCH_BUCKETS = (1, 10, 100, 1_000, 5_000, 20_000)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def counters_add(values: dict[str, float], *, model=Counter) -> None:
    """Add to named counters in the caller's transaction (one upsert per name)."""
    if not values:
        return
    alias = settings.INBOX_DB if model is IngestCounter else "default"
    table = connections[alias].ops.quote_name(model._meta.db_table)
    with connections[alias].cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (name, value) VALUES (%s, %s) "
            f"ON CONFLICT (name) DO UPDATE SET value = {table}.value + excluded.value",
            sorted(values.items()),  # same order everywhere: no deadlock on PostgreSQL
        )


def _observe(out: dict, name: str, value: float, buckets) -> None:
    for le in buckets:
        if value <= le:
            out[f"{name}_bucket:{le}"] = out.get(f"{name}_bucket:{le}", 0) + 1
    out[f"{name}_count"] = out.get(f"{name}_count", 0) + 1
    out[f"{name}_sum"] = out.get(f"{name}_sum", 0) + value


def drain_observe(*, accepted: int, stored: int, duplicates: int, refused: int, seconds: float):
    """Called by the drain inside its transaction."""
    values = {
        "events_drained": accepted,
        "events_stored": stored,
        "events_duplicate": duplicates,
        "events_refused_session_limit": refused,
    }
    _observe(values, "drain_batch_events", accepted, BATCH_BUCKETS)
    _observe(values, "drain_seconds", seconds, SECONDS_BUCKETS)
    counters_add({k: v for k, v in values.items() if v})


def ingest_rejected(reason: str, n: int = 1) -> None:
    """Count refused items/requests. Best effort: a full disk must not turn a 503 into 500."""
    try:
        counters_add({f"rejected:{reason}": n}, model=IngestCounter)
    except Exception:
        pass


class DatabaseCollector:
    """Builds every metric family from the databases, once per scrape."""

    def collect(self):
        from recorder import storage  # storage imports models; keep import time light

        counters = dict(Counter.objects.values_list("name", "value"))
        rejected = dict(IngestCounter.objects.values_list("name", "value"))
        inbox = storage.inbox_status()

        accepted = CounterMetricFamily(
            "flightrec_events_accepted",
            "Events acknowledged with 2xx (drained so far plus waiting in the inbox).",
        )
        accepted.add_metric([], counters.get("events_drained", 0) + inbox["events"])
        yield accepted

        rej = CounterMetricFamily(
            "flightrec_events_rejected",
            "Events or requests refused: invalid items, admission (disk, backlog), "
            "session event limit.",
            labels=["reason"],
        )
        for name, value in sorted(rejected.items()):
            rej.add_metric([name.split(":", 1)[1]], value)
        rej.add_metric(["session_limit"], counters.get("events_refused_session_limit", 0))
        yield rej

        stored = CounterMetricFamily("flightrec_events_stored", "Events written by the drain.")
        stored.add_metric([], counters.get("events_stored", 0))
        yield stored
        dup = CounterMetricFamily(
            "flightrec_events_duplicate", "Events skipped by the drain as already stored."
        )
        dup.add_metric([], counters.get("events_duplicate", 0))
        yield dup

        totals = Session.objects.aggregate(events=Sum("event_count"), sessions=Count("id"))
        yield GaugeMetricFamily("flightrec_events", "Events stored now.", totals["events"] or 0)
        yield GaugeMetricFamily("flightrec_sessions", "Sessions stored now.", totals["sessions"])

        yield GaugeMetricFamily(
            "flightrec_inbox_events", "Accepted events waiting in the inbox.", inbox["events"]
        )
        yield GaugeMetricFamily(
            "flightrec_inbox_batches", "Accepted batches waiting in the inbox.", inbox["batches"]
        )
        yield GaugeMetricFamily(
            "flightrec_inbox_oldest_age_seconds",
            "Age of the oldest inbox row (0 when empty).",
            inbox["oldest_age"],
        )

        yield _histogram(counters, "drain_batch_events", BATCH_BUCKETS,
                         "flightrec_drain_batch_events", "Events per drain transaction.")  # fmt: skip
        yield _histogram(counters, "drain_seconds", SECONDS_BUCKETS,
                         "flightrec_drain_duration_seconds", "Duration of drain transactions.")  # fmt: skip

        purges = PurgeLog.objects.values("policy").annotate(
            runs=Count("id"), sessions=Sum("sessions_removed"), events=Sum("events_removed"),
            bodies=Sum("bodies_dropped"), bytes=Sum("bytes_removed"),
        )  # fmt: skip
        families = {
            "runs": CounterMetricFamily("flightrec_purges", "Purge steps run, by policy.", labels=["policy"]),
            "sessions": CounterMetricFamily("flightrec_purged_sessions", "Sessions removed by purges.", labels=["policy"]),
            "events": CounterMetricFamily("flightrec_purged_events", "Events removed by purges.", labels=["policy"]),
            "bodies": CounterMetricFamily("flightrec_purged_http_bodies", "HTTP bodies dropped by purges.", labels=["policy"]),
            "bytes": CounterMetricFamily("flightrec_purged_bytes", "Envelope bytes removed by purges.", labels=["policy"]),
        }  # fmt: skip
        for row in purges:
            for key, family in families.items():
                family.add_metric([row["policy"]], row[key] or 0)
        yield from families.values()

        size = GaugeMetricFamily(
            "flightrec_database_bytes", "Size of the database files.", labels=["file"]
        )
        files = storage.database_files()
        for f in files:
            size.add_metric([f.name], f.bytes)
        if not files:  # PostgreSQL, or an in-memory test database
            size.add_metric(["default"], storage.database_file_bytes())
        yield size
        yield GaugeMetricFamily(
            "flightrec_database_used_bytes",
            "Bytes in use in the main database (free pages excluded).",
            storage.database_used_bytes(),
        )
        yield GaugeMetricFamily(
            "flightrec_disk_free_bytes", "Free bytes in the data directory.",
            storage.free_disk_bytes(),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "flightrec_ingestion_paused",
            "1 while ingestion answers 503 for lack of disk space.",
            1 if storage.ingestion_refusal() else 0,
        )


def _histogram(counters: dict, name: str, buckets, metric: str, doc: str):
    family = HistogramMetricFamily(metric, doc)
    pairs = [(str(le), counters.get(f"{name}_bucket:{le}", 0)) for le in buckets]
    count = counters.get(f"{name}_count", 0)
    pairs.append(("+Inf", count))
    family.add_metric([], pairs, counters.get(f"{name}_sum", 0))
    return family


def metrics_text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
