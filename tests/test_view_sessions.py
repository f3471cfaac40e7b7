"""The sessions list page: filters, sort, status reasons, the live rows fragment."""

import pytest
from django.urls import reverse

from recorder.demo import demo_load

pytestmark = pytest.mark.django_db(databases="__all__")

T0 = 1_700_000_000


@pytest.fixture
def sessions(ingest):
    ingest.post({"session": {"key": "phone", "app_version": "4.2.1", "device": "Pixel 7"},
                 "events": [{"type": "crash", "ts": T0, "severity": "fatal", "message": "boom"}]})  # fmt: skip
    ingest.post({"session": {"key": "gateway", "app_version": "1.9.0", "host": "gw17"},
                 "events": [{"type": "log", "ts": T0 + 10}]})  # fmt: skip


def keys(response):
    return [s.key for s in response.context["sessions"]]


def test_it_lists_visible_sessions_newest_first(client, alice, sessions):
    client.force_login(alice)
    r = client.get(reverse("sessions"))
    assert keys(r) == ["gateway", "phone"]


def test_it_filters_by_version_status_and_text(client, alice, sessions):
    client.force_login(alice)
    assert keys(client.get(reverse("sessions"), {"version": "4.*"})) == ["phone"]
    assert keys(client.get(reverse("sessions"), {"status": "open"})) == ["gateway"]
    assert keys(client.get(reverse("sessions"), {"q": "gw17"})) == ["gateway"]


def test_it_shows_why_a_session_crashed(client, alice, sessions):
    client.force_login(alice)
    html = client.get(reverse("sessions")).content.decode()
    assert "fatal event: boom" in html


def test_live_view_serves_a_rows_fragment(client, alice, sessions):
    client.force_login(alice)
    r = client.get(reverse("sessions"), {"status": "open", "live": "1", "fragment": "rows"})
    html = r.content.decode()
    assert "gateway" in html and "phone" not in html and "<html" not in html


def test_a_bad_filter_is_reported_not_a_crash(client, alice, sessions):
    client.force_login(alice)
    r = client.get(reverse("sessions"), {"status": "zombie", "sort": "sideways"})
    assert r.status_code == 200 and r.context["error"]


def test_charlie_sees_no_sessions(client, charlie, sessions):
    client.force_login(charlie)
    assert keys(client.get(reverse("sessions"))) == []


def test_it_requires_login(client):
    r = client.get("/")
    assert r.status_code == 302
    assert "/login/" in r["Location"]


def test_it_lists_the_demo_sessions_with_device_or_host(client, admin_user):
    demo_load(events_per_session=100)
    client.force_login(admin_user)
    html = client.get("/").content.decode()
    for key in ("mobile-run", "iot-gateway", "web-checkout", "audit-trail"):
        assert key in html
    assert "Pixel 7" in html and "rpi-gw-17" in html
