from django.urls import path

from recorder.views import (
    correlation,
    health,
    logging_ingest,
    metrics,
    otlp,
    retention,
    sessions,
    storage,
    timeline,
)

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Ingestion from tools people already run (see docs/clients.md).
    path("v1/logs", otlp.logs, name="otlp-logs"),
    path("v1/traces", otlp.traces, name="otlp-traces"),
    path("ingest/logging", logging_ingest.logging_record, name="ingest-logging"),
    path("storage", storage.storage_page, name="storage"),
    path("storage/apps/<int:app_id>/retention", retention.retention_settings, name="retention"),
    path("", sessions.sessions_list, name="sessions"),
    path("sessions/<int:session_id>", timeline.timeline, name="timeline"),
    path("correlation/<str:correlation_id>", correlation.correlation, name="correlation"),
]
