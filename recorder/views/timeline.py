"""The timeline of one session: filters, keyset pages, histogram, live tail, ?at=<event>.

The first page is rendered on the server (it works without JS and is shareable as a
URL); static/recorder/timeline.js adds the histogram, the detail pane and the live tail.
"""

from dataclasses import replace

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode

from recorder import queries
from recorder.access import visible_sessions
from recorder.fields import to_micros
from recorder.models import Event, Session
from recorder.queries import EventFilters, FilterError

PAGE_SIZE = 100
# Listing the types present costs a walk of the (session, type) index; past this size
# the filter bar alone is offered.
TYPE_FACET_MAX_EVENTS = 200_000


def event_row(event: Event, session: Session) -> dict:
    """What one timeline row shows; `summary` falls back to the payload when there is no
    message, so state and sensor events are not blank lines."""
    rel_us = to_micros(event.ts) - to_micros(session.started_at)
    sign = "-" if rel_us < 0 else "+"
    rel_us = abs(rel_us)
    hours, rest = divmod(rel_us // 1000, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    relative = f"{sign}{hours:d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    summary = event.message
    if not summary:
        source = event.payload if event.payload is not None else event.state
        summary = queries.compact_json(source) if source is not None else ""
    return {
        "event": event,
        "ts_us": to_micros(event.ts),
        "relative": relative,
        "severity": event.get_severity_display(),
        "summary": summary[:300],
    }


def _page(request, qs, session: Session):
    get = request.GET
    if at := get.get("at"):
        if not at.isdigit():
            raise Http404("at must be an event id")
        target = get_object_or_404(Event, id=int(at), session=session)
        return queries.events_around(qs, target, limit=PAGE_SIZE), target
    start = None
    if jump := get.get("from"):
        start = queries.parse_time(jump, "from")
    page = queries.events_page(
        qs,
        after=get.get("after") or None,
        before=get.get("before") or None,
        last=get.get("last") == "1",
        start=start,
        limit=PAGE_SIZE,
    )
    return page, None


@login_required
def timeline(request, session_id: int):
    session = get_object_or_404(
        visible_sessions(request.user).select_related("application"), id=session_id
    )
    error = None
    try:
        filters = queries.parse_event_filters(request.GET)
    except FilterError as exc:
        error, filters = str(exc), EventFilters()
    qs = queries.filter_events(
        Event.objects.filter(session=session), filters, session_id=session.id
    )
    try:
        page, target = _page(request, qs, session)
    except FilterError as exc:
        error = str(exc)
        page, target = queries.events_page(qs, limit=PAGE_SIZE), None

    # Every link on the page carries the filters as one canonical filter-bar string; the
    # page's script passes them to the API as plain parameters.
    bar = queries.filter_bar_text(filters) if not error else request.GET.get("filter", "")
    filter_query = urlencode({"filter": bar}) if bar else ""
    types = []
    if session.event_count <= TYPE_FACET_MAX_EVENTS:
        for row in (
            Event.objects.filter(session=session)
            .values("type")
            .annotate(n=Count("id"))
            .order_by("type")
        ):
            chosen = row["type"] in filters.types
            toggled = replace(
                filters,
                types=[t for t in filters.types if t != row["type"]]
                if chosen
                else [*filters.types, row["type"]],
            )
            text = queries.filter_bar_text(toggled)
            types.append(
                {**row, "chosen": chosen, "query": urlencode({"filter": text}) if text else ""}
            )
    return render(
        request,
        "recorder/timeline.html",
        {
            "session": session,
            "rows": [event_row(e, session) for e in page.items],
            "page": page,
            "target": target,
            "filters": filters,
            "filter_bar": bar,
            "filter_query": filter_query,
            "api_query": urlencode(filters.to_params(), doseq=True) if not error else "",
            "types": types,
            "error": error,
            "base_url": reverse("timeline", args=[session.id]),
            "started_us": to_micros(session.started_at),
            "live": session.status != Session.Status.ENDED and not page.next_cursor,
            "last_cursor": (
                queries.encode_cursor(to_micros(page.items[-1].ts), page.items[-1].seq)
                if page.items
                else ""
            ),
        },
    )
