"""The timeline in a real Chromium against a live server: log in, open a demo session,
filter by type and by a payload condition, open an event's detail, follow its
correlation chain, and watch a live event arrive after ingesting it through the API."""

import os
import re
import time

import orjson
import pytest
from playwright.sync_api import expect

from recorder.demo import demo_load
from recorder.models import ApiKey, Application

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]


# Playwright's sync API keeps an event loop running in this thread for the whole
# session, and Django refuses ORM calls (fixtures, database teardown) from a thread with
# a running loop unless told it is deliberate. Only browser tests import this module.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture
def demo(django_user_model):
    demo_load(events_per_session=300)
    django_user_model.objects.create_superuser("ops", password="correct horse battery")
    app = Application.objects.get(name="demo")
    return {"key": ApiKey.generate(app, name="browser test")[1]}


def test_filter_inspect_follow_and_tail_a_demo_session(page, live_server, demo):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit], input[type=submit]")
    expect(page.locator("#sessions")).to_be_visible()

    page.click("#sessions a:text-is('mobile-run')")
    expect(page.locator("#events tr[data-event-id]").first).to_be_visible()
    expect(page.locator("#histogram svg")).to_be_visible()

    # Filter by type through the filter bar: every row is an http event.
    page.fill("#filter", "type:http")
    page.press("#filter", "Enter")
    page.wait_for_url(re.compile(r"filter=type%3Ahttp"))
    types = page.locator("#events tr[data-event-id] td:nth-child(3)").all_inner_texts()
    assert types and set(types) == {"http"}

    # ...and by a payload condition on top: only POST requests are left.
    page.fill("#filter", "type:http method=POST")
    page.press("#filter", "Enter")
    page.wait_for_url(re.compile(r"method%3DPOST"))
    messages = page.locator("#events tr[data-event-id] td.msg").all_inner_texts()
    assert messages and all(m.startswith("POST ") for m in messages)

    # Open the first event's detail: pretty-printed payload and a correlation link.
    page.locator("#events tr[data-event-id]").first.click()
    expect(page.locator("#detail-payload")).to_contain_text('"method": "POST"')
    link = page.locator("#detail-correlation")
    expect(link).to_be_visible()

    # Follow the correlation chain: it lists the event, which links back to its place.
    link.click()
    expect(page.locator("#chain tbody tr")).to_have_count(1)
    page.locator("#chain tbody tr a").first.click()
    expect(page.locator("#events tr.selected")).to_have_count(1)
    expect(page.locator("#detail-payload")).to_be_visible()

    # Live tail: on the last page of the session, an event ingested now shows up.
    page.goto(page.url.split("?")[0] + "?last=1")
    expect(page.locator("#live-state")).to_be_visible()
    body = orjson.dumps([{"session": "mobile-run", "type": "log", "ts": time.time(),
                          "message": "live-probe-4711"}]).decode()  # fmt: skip
    response = page.request.post(
        live_server.url + "/api/v1/events",
        data=body,
        headers={"X-API-Key": demo["key"], "Content-Type": "application/json"},
    )
    assert response.status == 202, response.text()
    expect(page.locator("#events tr[data-event-id]", has_text="live-probe-4711")).to_be_visible(
        timeout=15_000
    )
