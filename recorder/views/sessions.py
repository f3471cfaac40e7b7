"""The sessions list: the page people open first."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from recorder import queries
from recorder.access import visible_sessions


@login_required
def sessions_list(request):
    sessions = visible_sessions(request.user).select_related("application")
    items, next_cursor = queries.sessions_page(
        sessions, cursor=request.GET.get("cursor") or None, limit=50
    )
    return render(
        request, "recorder/sessions.html", {"sessions": items, "next_cursor": next_cursor}
    )
