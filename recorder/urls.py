from django.urls import path

from recorder.views import health, sessions

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", sessions.sessions_list, name="sessions"),
]
