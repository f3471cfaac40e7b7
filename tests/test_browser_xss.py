"""Event data is text, never markup: HTML and script in every field a sender controls,
rendered by every page and pane that shows it, in a real Chromium.

A payload that ran would either open a dialog, set a flag on window, or leave an
element we planted in the DOM; the test fails on any of the three. A filter-bar syntax
error is shown to the user, never a server error.
"""

import os

import orjson
import pytest
from playwright.sync_api import expect

from recorder.models import ApiKey, Application, Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

# See tests/test_browser_timeline.py: Playwright keeps an event loop in this thread.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x id="planted" onerror="window.__pwned = 1">'
SVG = '<svg onload="window.__pwned = 1" id="planted-svg"></svg>'
HOSTILE = f"{SCRIPT}{IMG}{SVG}\"'><b id=planted-b>bold</b>"


@pytest.fixture
def hostile_session(client, django_user_model):
    app = Application.objects.create(name=f"xss{IMG}", environment=f"env{SCRIPT}")
    key = ApiKey.generate(app, name="xss")[1]
    body = {
        "session": {"key": f"run{IMG}", "app_version": SCRIPT, "device": IMG, "host": SVG},
        "events": [
            {
                "type": "log", "ts": 1_790_000_000 + i, "severity": "error",
                "source": f"src{IMG}", "key": f"k{SCRIPT}", "actor": f"a{SVG}",
                "correlation_id": f"c{IMG}", "message": f"m{i} {HOSTILE}",
                "payload": {f"field{IMG}": HOSTILE, "nested": {"x": SCRIPT}},
                "state": {"op": "set", "path": f"/v{i}", "value": HOSTILE},
            }
            for i in range(3)
        ],
    }  # fmt: skip
    r = client.post("/api/v1/events", orjson.dumps(body), content_type="application/json",
                    HTTP_X_API_KEY=key)  # fmt: skip
    assert r.status_code == 202, r.content
    django_user_model.objects.create_superuser("ops", password="correct horse battery")
    return Session.objects.get(application=app)


def assert_inert(page):
    assert page.evaluate("window.__pwned") is None, "a script from event data ran"
    for planted in ("#planted", "#planted-svg", "#planted-b"):
        assert page.locator(planted).count() == 0, f"{planted} became a DOM element"


def test_hostile_event_fields_render_as_text_everywhere(page, live_server, hostile_session):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    expect(page.locator("#sessions")).to_be_visible()
    expect(page.locator("#sessions")).to_contain_text("<img src=x")  # shown, as text
    assert_inert(page)

    page.goto(f"{live_server.url}/sessions/{hostile_session.id}")
    expect(page.locator("#events tr[data-event-id]").first).to_be_visible()
    expect(page.locator("#events")).to_contain_text("<script>")
    assert_inert(page)

    # The detail pane (payload, correlation links) and the snapshot pane (state, latest).
    page.locator("#events tr[data-event-id]").first.click()
    expect(page.locator("#detail")).to_contain_text("field<img")
    page.wait_for_timeout(500)  # the snapshot pane loads after the selection
    assert_inert(page)

    page.goto(f"{live_server.url}/correlation/{hostile_session.events.first().correlation_id}")
    assert_inert(page)
    page.goto(f"{live_server.url}/storage")
    assert_inert(page)
    assert dialogs == []


def test_a_filter_syntax_error_is_shown_not_a_server_error(page, live_server, hostile_session):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    response = page.goto(
        f"{live_server.url}/sessions/{hostile_session.id}?filter=status>>5 nosuchfield:1"
    )
    assert response.status < 500
    expect(page.locator("#filter-error")).to_be_visible()
    assert_inert(page)
