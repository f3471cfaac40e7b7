"""The sessions list page."""

import pytest

from recorder.demo import demo_load

pytestmark = pytest.mark.django_db(databases="__all__")


def test_it_requires_login(client):
    r = client.get("/")
    assert r.status_code == 302
    assert "/login/" in r["Location"]


def test_it_lists_the_demo_sessions_with_status_and_counts(client, admin_user):
    demo_load(events_per_session=100)
    client.force_login(admin_user)
    r = client.get("/")
    assert r.status_code == 200
    html = r.content.decode()
    for key in ("mobile-run", "iot-gateway", "web-checkout", "audit-trail"):
        assert key in html
    assert "crashed" in html and "Pixel 7" in html and "rpi-gw-17" in html


def test_a_user_sees_only_sessions_of_their_applications(client, alice, charlie, ingest):
    ingest.post([{"session": "shop-run", "type": "log"}])
    client.force_login(charlie)
    assert "shop-run" not in client.get("/").content.decode()
    client.force_login(alice)
    assert "shop-run" in client.get("/").content.decode()
