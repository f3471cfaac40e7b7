"""The replay player in a real Chromium against a live server: play the web-checkout demo
session at 8×, pause, step, then open a share link and check the snapshot pane."""

import os
import re

import pytest
from playwright.sync_api import expect

from recorder import timetravel
from recorder.demo import demo_load
from recorder.fields import to_micros
from recorder.models import Event, Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

# Playwright's sync API keeps an event loop running in this thread; Django refuses ORM
# calls from such a thread unless told it is deliberate. Only browser tests import this.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture
def checkout(django_user_model):
    demo_load(events_per_session=300)
    django_user_model.objects.create_superuser("ops", password="correct horse battery")
    session = Session.objects.get(key="web-checkout")
    return session, list(Event.objects.filter(session=session).order_by("ts", "seq"))


def log_in(page, live_server):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit], input[type=submit]")
    expect(page.locator("#sessions")).to_be_visible()


def current_id(page) -> int:
    return int(page.locator(".replay").get_attribute("data-event-id") or 0)


def test_play_pause_step_and_open_a_share_link_with_its_snapshot(page, live_server, checkout):
    session, events = checkout
    order = [e.id for e in events]
    log_in(page, live_server)
    page.goto(f"{live_server.url}/sessions/{session.id}")
    expect(page.locator(".replay[data-ready='1']")).to_be_visible()

    # Play at 8×, skipping idle gaps: the player walks forward through the timeline.
    page.select_option("[data-role=speed]", "8")
    page.click("[data-action=play]")
    expect(page.locator(".replay.playing")).to_have_count(1)
    page.wait_for_function(
        "() => Number(document.querySelector('.replay').dataset.eventId) > 0", timeout=5000
    )
    page.wait_for_timeout(1500)
    page.keyboard.press("Space")  # pause
    expect(page.locator(".replay.playing")).to_have_count(0)
    paused_at = current_id(page)
    assert order.index(paused_at) >= 2, "8× for 1.5 s should have passed a few events"
    page.wait_for_timeout(500)
    assert current_id(page) == paused_at, "pause must stop the clock"
    expect(page.locator(f"#events tr.replay-current[data-event-id='{paused_at}']")).to_have_count(1)
    expect(page.locator(f"#snapshot[data-event-id='{paused_at}']")).to_be_visible()

    # Step forward and back with the buttons and the keyboard.
    page.click("[data-action=next]")
    following = order[order.index(paused_at) + 1]
    expect(page.locator(f"#snapshot[data-event-id='{following}']")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(page.locator(f"#snapshot[data-event-id='{paused_at}']")).to_be_visible()
    assert re.search(rf"[?&]at={paused_at}\b", page.url), "the address is a link to the instant"

    # The speed choice is remembered across page loads.
    page.reload()
    expect(page.locator("[data-role=speed]")).to_have_value("8")

    # A share link deep in the session opens there, with the state the server computes.
    target = [e for e in events if e.state is not None][-5]
    page.goto(f"{live_server.url}/sessions/{session.id}?at={target.id}")
    expect(page.locator(f"#snapshot[data-event-id='{target.id}']")).to_be_visible()
    expect(page.locator(f"#events tr.replay-current[data-event-id='{target.id}']")).to_have_count(1)
    expected = timetravel.snapshot_at(
        session=session,
        at=timetravel.Position(to_micros(target.ts), target.seq, target.id),
    )
    state_pane = page.locator("#snapshot [data-role=state]")
    expect(state_pane).to_contain_text('"Ada"')
    items = expected["state"]["cart"]["items"]
    expect(state_pane.locator("summary", has_text="items")).to_contain_text(f"[{len(items)}]")
    counts = page.locator("#snapshot [data-role=counts]")
    expect(counts.locator("[data-type=state]")).to_have_text(
        f"state {expected['counts']['type']['state']}"
    )
    for key in expected["latest"]:
        expect(page.locator(f"#snapshot [data-role=latest] tr[data-key='{key}']")).to_have_count(1)
