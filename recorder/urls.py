from django.urls import path

from recorder.views import (
    app_keys,
    app_members,
    app_redaction,
    applications,
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
    # Application settings (members see them; admins change them).
    path("apps/", applications.applications_list, name="applications"),
    path("apps/<int:app_id>/keys", app_keys.app_keys, name="app_keys"),
    path(
        "apps/<int:app_id>/keys/<int:key_id>/revoke",
        app_keys.app_key_revoke,
        name="app_key_revoke",
    ),
    path("apps/<int:app_id>/members", app_members.app_members, name="app_members"),
    path("apps/<int:app_id>/members/set", app_members.app_member_set, name="app_member_set"),
    path(
        "apps/<int:app_id>/members/<int:user_id>/remove",
        app_members.app_member_remove,
        name="app_member_remove",
    ),
    path("apps/<int:app_id>/redaction", app_redaction.app_redaction, name="app_redaction"),
    path(
        "apps/<int:app_id>/redaction/preview",
        app_redaction.app_redaction_preview,
        name="app_redaction_preview",
    ),
]
