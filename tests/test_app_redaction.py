"""The redaction rules page and its preview endpoint."""

import json
import re

import pytest

from recorder.models import Event

pytestmark = pytest.mark.django_db(databases="__all__")

FORM = {"extra_keys": "", "patterns": "", "keep_keys": "", "body_limit": "65536"}


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


def preview(client, app, sample, **fields):
    data = {**FORM, **fields, "sample": json.dumps(sample)}
    return client.post(f"/apps/{app.id}/redaction/preview", data)


def test_the_page_shows_the_current_rules_and_a_sample(admin_client, shop):
    shop.redaction = {"extra_keys": ["ssn", "pin"], "mask_emails": True}
    shop.save()
    html = admin_client.get(f"/apps/{shop.id}/redaction").content.decode()
    assert "ssn\npin</textarea>" in html
    assert re.search(r'<input type="checkbox" name="mask_emails"[^>]* checked>', html)
    assert not re.search(r'<input type="checkbox" name="mask_ips"[^>]* checked>', html)
    assert 'value="65536"' in html
    assert "Authorization" in html  # the sample event


def test_saving_rules_stores_the_normalised_policy_and_ingestion_applies_it(
    admin_client, shop, ingest
):
    data = {**FORM, "extra_keys": "ssn\r\n  \r\nloyalty_number", "patterns": r"ORD-\d{6}",
            "keep_keys": "auth_method", "capture_bodies": "on", "body_limit": "1024",
            "mask_ips": "on"}  # fmt: skip
    assert admin_client.post(f"/apps/{shop.id}/redaction", data).status_code == 302
    shop.refresh_from_db()
    assert shop.redaction == {
        "extra_keys": ["ssn", "loyalty_number"], "patterns": [r"ORD-\d{6}"],
        "keep_keys": ["auth_method"], "capture_bodies": True, "body_limit": 1024,
        "mask_emails": False, "mask_ips": True,
    }  # fmt: skip
    ingest.post([{"session": "s", "type": "log", "message": "order ORD-123456 from 10.1.2.3",
                  "payload": {"ssn": "078-05-1120", "auth_method": "sso"}}])  # fmt: skip
    event = Event.objects.get()
    assert event.message == "order [Filtered] from 10.1.2.0"
    assert event.payload == {"ssn": "[Filtered]", "auth_method": "sso"}


def test_an_invalid_regex_is_shown_next_to_its_field_and_nothing_is_saved(admin_client, shop):
    r = admin_client.post(f"/apps/{shop.id}/redaction", {**FORM, "patterns": "ok\n(unclosed"})
    assert r.status_code == 200
    html = r.content.decode()
    assert '<p class="error" data-error-for="patterns">patterns[1]' in html
    assert "is not a valid regex" in html
    shop.refresh_from_db()
    assert shop.redaction == {}


def test_preview_shows_what_the_sample_becomes(admin_client, shop):
    sample = {"type": "http", "message": "token=abc123", "payload": {
        "headers": {"Authorization": "Bearer abcdefghijklmnop1234"},
        "customer_ref": "C-778899", "response_body": "{\"ok\": true}"}}  # fmt: skip
    r = preview(admin_client, shop, sample, extra_keys="customer_ref")
    assert r.status_code == 200
    result = r.json()
    assert result["event"]["message"] == "token=[Filtered]"
    assert result["event"]["payload"]["customer_ref"] == "[Filtered]"
    assert result["event"]["payload"]["headers"]["Authorization"] == "[Filtered]"
    assert "response_body" not in result["event"]["payload"]
    assert "payload.response_body (dropped)" in result["scrubbed"]
    assert "payload.customer_ref" in result["scrubbed"]


def test_preview_does_not_save_anything(admin_client, shop):
    preview(admin_client, shop, {"type": "log"}, extra_keys="x")
    shop.refresh_from_db()
    assert shop.redaction == {}


def test_preview_reports_errors_per_field(admin_client, shop):
    r = preview(admin_client, shop, {"type": "log"}, patterns="[", body_limit="-1")
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert "not a valid regex" in errors["patterns"][0]
    assert "body_limit" in errors
    r = admin_client.post(f"/apps/{shop.id}/redaction/preview", {**FORM, "sample": "[1, 2"})
    assert "sample" in r.json()["errors"]
    r = admin_client.post(f"/apps/{shop.id}/redaction/preview", {**FORM, "sample": "[1, 2]"})
    assert "JSON object" in r.json()["errors"]["sample"][0]


def test_a_viewer_may_preview_but_not_save(client, bob, shop):
    client.force_login(bob)
    assert preview(client, shop, {"type": "log", "message": "password=x"}).status_code == 200
    assert client.post(f"/apps/{shop.id}/redaction", {**FORM, "extra_keys": "x"}).status_code == 403
