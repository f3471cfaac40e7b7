from django.urls import path

from recorder.views import health, metrics, retention, sessions, storage

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("storage", storage.storage_page, name="storage"),
    path("storage/apps/<int:app_id>/retention", retention.retention_settings, name="retention"),
    path("", sessions.sessions_list, name="sessions"),
]
