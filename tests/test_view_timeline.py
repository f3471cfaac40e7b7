"""The timeline page (/sessions/<id>) and the correlation page, rendered by the server."""

import pytest
from django.urls import reverse

from recorder.models import Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")

T0 = 1_700_000_000


@pytest.fixture
def session(ingest, shop):
    events = [{"session": "run-1", "type": "http" if i % 3 == 0 else "log", "ts": T0 + i,
               "message": f"m{i}", "correlation_id": "c-7" if i == 3 else None,
               "payload": {"status": 500 + i}} for i in range(150)]  # fmt: skip
    ingest.post(events)
    return Session.objects.get(application=shop, key="run-1")


def rows(response) -> list[str]:
    return [r["event"].message for r in response.context["rows"]]


def test_it_requires_login(client, session):
    r = client.get(reverse("timeline", args=[session.id]))
    assert r.status_code == 302 and "/login/" in r["Location"]


def test_it_hides_other_applications_sessions(client, session, charlie):
    client.force_login(charlie)
    assert client.get(reverse("timeline", args=[session.id])).status_code == 404


def test_it_renders_the_first_page_with_the_slots_for_replay_and_snapshot(client, alice, session):
    client.force_login(alice)
    r = client.get(reverse("timeline", args=[session.id]))
    assert r.status_code == 200
    html = r.content.decode()
    assert '<tbody id="events">' in html
    assert '<div id="replay-bar"></div>' in html and '<section id="snapshot"></section>' in html
    assert 'data-event-id="' in html and 'data-ts="' in html and 'data-seq="1"' in html
    assert rows(r)[:2] == ["m0", "m1"] and len(rows(r)) == 100
    assert "recorder/timeline.js" in html


def test_filter_bar_narrows_and_is_kept_in_page_links(client, alice, session):
    client.force_login(alice)
    r = client.get(reverse("timeline", args=[session.id]), {"filter": "type:http status>=600"})
    assert rows(r) == [f"m{i}" for i in range(102, 150, 3)]
    assert "filter=type%3Ahttp+status%3E%3D600" in r.content.decode()


def test_a_bad_filter_shows_the_error_and_all_events(client, alice, session):
    client.force_login(alice)
    r = client.get(reverse("timeline", args=[session.id]), {"filter": "severity:loud"})
    assert r.status_code == 200 and "severity:loud" in r.context["error"]
    assert len(rows(r)) == 100


def test_pages_last_and_jump_to_time(client, alice, session):
    client.force_login(alice)
    url = reverse("timeline", args=[session.id])
    last = client.get(url, {"last": "1"})
    assert rows(last)[-1] == "m149" and last.context["live"]
    nxt = client.get(url, {"after": client.get(url).context["page"].next_cursor})
    assert rows(nxt)[0] == "m100"
    jump = client.get(url, {"from": str(T0 + 120)})
    assert rows(jump)[0] == "m120"


def test_at_opens_the_page_positioned_at_the_event(client, alice, session):
    client.force_login(alice)
    target = Event.objects.get(session=session, message="m140")
    r = client.get(reverse("timeline", args=[session.id]), {"at": target.id})
    assert "m140" in rows(r) and r.context["target"] == target
    assert f'data-at="{target.id}"' in r.content.decode()


def test_correlation_page_lists_the_chain_with_links_to_each_event(client, alice, session):
    client.force_login(alice)
    r = client.get(reverse("correlation", args=["c-7"]))
    assert r.status_code == 200
    event = Event.objects.get(correlation_id="c-7")
    assert f"?at={event.id}" in r.content.decode()
