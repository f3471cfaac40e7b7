"""In a real browser: logging in, the API keys page (create, shown once, revoke), the
redaction preview, and the API docs, all without a single CSP violation."""

import os
import re

import pytest
from playwright.sync_api import expect

from recorder.models import ApiKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]


@pytest.fixture(scope="session", autouse=True)
def _sync_orm_next_to_playwright():
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the
    # test (and the test database set-up) are still plain synchronous code. Session
    # scope, autouse: it must be in place before the session-scoped database fixture.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if before is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def csp_violations(page):
    found = []
    page.on(
        "console",
        lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return found


def log_in(page, live_server, username="alice", password="password"):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".logout span")).to_have_text(username)


def test_login_then_create_a_key_see_it_once_and_revoke_it(
    page, live_server, alice, shop, csp_violations
):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/apps/{shop.id}/keys")
    page.get_by_label("Name").fill("ci runner")
    page.get_by_role("button", name="Create key").click()

    shown = page.locator("#new-key-value")
    expect(shown).to_have_text(re.compile(r"^fr_\S{40,}$"))
    raw = shown.inner_text()
    key = ApiKey.objects.get(application=shop, name="ci runner")
    assert raw.startswith(key.prefix)

    page.reload()  # a reload never shows it again
    expect(page.locator("#new-key")).to_have_count(0)
    assert raw not in page.content()
    assert ApiKey.objects.filter(name="ci runner").count() == 1  # the reload made no second key
    row = page.locator(f'tr[data-key-prefix="{key.prefix}"]')
    expect(row).to_contain_text("ci runner")
    expect(row).to_contain_text("never")

    page.on("dialog", lambda dialog: dialog.accept())  # "Revoke fr_…? Senders … get 401"
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(f'tr[data-key-prefix="{key.prefix}"]')).to_contain_text("revoked")
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert csp_violations == []


def test_the_redaction_preview_follows_the_rules_as_they_are_typed(
    page, live_server, alice, shop, csp_violations
):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/apps/{shop.id}/redaction")
    out = page.locator("#preview-event")
    # The sample as stored with the default rules.
    expect(out).to_contain_text('"Authorization": "[Filtered]"')
    expect(out).to_contain_text('"plan": "pro"')
    expect(page.locator("#preview-scrubbed")).to_contain_text("payload.request.body (dropped)")

    page.get_by_label("Extra keys").fill("plan")
    expect(out).to_contain_text('"plan": "[Filtered]"')
    page.get_by_label("Mask e-mail addresses").check()
    expect(out).to_contain_text("j***@example.com")

    page.get_by_label("Patterns").fill("(unclosed")
    expect(page.locator('[data-error-for="patterns"]')).to_contain_text("is not a valid regex")
    page.get_by_label("Patterns").fill(r"pay\b")
    expect(page.locator('[data-error-for="patterns"]')).to_have_text("")
    expect(out).to_contain_text("/v1/[Filtered]?")

    page.locator("#sample").fill('{"type": "log", "message": "password=hunter2"')
    expect(page.locator('[data-error-for="sample"]')).to_contain_text("not a JSON object")
    page.locator("#sample").fill('{"type": "log", "message": "password=hunter2"}')
    expect(out).to_contain_text('"message": "password=[Filtered]"')

    page.get_by_role("button", name="Save rules").click()
    expect(page.locator(".messages")).to_contain_text("Redaction rules saved")
    shop.refresh_from_db()
    assert shop.redaction["extra_keys"] == ["plan"]
    assert shop.redaction["mask_emails"] is True
    assert csp_violations == []


def test_a_viewer_previews_but_has_nothing_to_save(page, live_server, bob, shop, csp_violations):
    log_in(page, live_server, "bob")
    page.goto(f"{live_server.url}/apps/{shop.id}/redaction")
    expect(page.locator("#preview-event")).to_contain_text("[Filtered]")
    expect(page.get_by_role("button", name="Save rules")).to_have_count(0)
    expect(page.get_by_label("Extra keys")).to_be_disabled()
    assert csp_violations == []


def test_the_api_docs_work_under_the_content_security_policy(page, live_server, csp_violations):
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("flightrec")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert csp_violations == []
