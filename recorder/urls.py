from django.urls import path

from recorder.views import correlation, health, sessions, timeline

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", sessions.sessions_list, name="sessions"),
    path("sessions/<int:session_id>", timeline.timeline, name="timeline"),
    path("correlation/<str:correlation_id>", correlation.correlation, name="correlation"),
]
