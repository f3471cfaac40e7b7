"""The sessions list: the page people open first. Filters, sort, keyset pages, and a
live view of open sessions (the page's script re-fetches the rows fragment)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.http import urlencode

from recorder import queries
from recorder.access import visible_applications, visible_sessions
from recorder.models import Session
from recorder.queries import FilterError, SessionFilters

SORTS = [("-started", "Newest"), ("started", "Oldest"), ("-events", "Most events"),
         ("-errors", "Most errors")]  # fmt: skip


@login_required
def sessions_list(request):
    error = None
    try:
        filters = queries.parse_session_filters(request.GET)
    except FilterError as exc:
        error, filters = str(exc), SessionFilters()
    sort = request.GET.get("sort") or "-started"
    if sort not in queries.SESSION_SORTS:
        error, sort = (
            f"sort: {sort!r} is not one of " + ", ".join(queries.SESSION_SORTS),
            "-started",
        )
    sessions = visible_sessions(request.user).select_related("application")
    sessions = queries.filter_sessions(sessions, filters)
    items, next_cursor = queries.sessions_page(
        sessions, cursor=request.GET.get("cursor") or None, limit=50, sort=sort
    )
    params = filters.to_params()
    if sort != "-started":
        params["sort"] = [sort]
    live = request.GET.get("live") == "1"
    if live:
        params["live"] = ["1"]
    context = {
        "sessions": items,
        "next_cursor": next_cursor,
        "filters": filters,
        "query": urlencode(params, doseq=True),
        "sort": sort,
        "sorts": SORTS,
        "statuses": Session.Status.values,
        "applications": visible_applications(request.user).order_by("name"),
        "live": live,
        "error": error,
        "since": params.get("since", [""])[0],
        "until": params.get("until", [""])[0],
    }
    if request.GET.get("fragment") == "rows":
        return render(request, "recorder/_session_rows.html", context)
    return render(request, "recorder/sessions.html", context)
