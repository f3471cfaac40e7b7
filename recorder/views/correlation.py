"""A correlation chain: every event with one correlation id, across the sessions of the
application, each linking to its place in its session's timeline."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from recorder import queries


@login_required
def correlation(request, correlation_id: str):
    app = request.GET.get("app") or None
    qs = queries.correlation_events(request.user, correlation_id, app=app)
    page = queries.events_page(
        qs, after=request.GET.get("after") or None, limit=200, order=queries.GLOBAL_ORDER
    )
    return render(
        request,
        "recorder/correlation.html",
        {"correlation_id": correlation_id, "app": app or "", "page": page},
    )
