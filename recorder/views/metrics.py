"""/metrics in Prometheus text format. No login, like /healthz: counts and sizes only."""

from django.http import HttpResponse

from recorder import metrics


def metrics_view(request):
    """Prometheus text format; values come from the databases (see recorder.metrics)."""
    return HttpResponse(metrics.metrics_text(), content_type="text/plain; version=0.0.4")
