"""/healthz: can we read both databases? No login, no data revealed."""

from django.conf import settings
from django.db import connections
from django.http import JsonResponse


def healthz(request):
    checks = {}
    for alias in {"default", settings.INBOX_DB}:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
            checks[alias] = "ok"
        except Exception as exc:  # report, don't crash: this is what monitors poll
            checks[alias] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "databases": checks},
        status=200 if healthy else 503,
    )
