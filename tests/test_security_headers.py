"""Security headers on every response, CSRF on forms, HTTPS settings from the environment,
and the API docs page working under the Content-Security-Policy."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db(databases="__all__")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/v1/docs", "/api/v1/sessions", "/"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert re.search(r"script-src 'self'(;|$)", csp)  # no 'unsafe-inline', no CDN
    assert "unsafe-eval" not in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_no_template_has_an_inline_script_or_event_handler():
    for template in (ROOT / "templates").rglob("*.html"):
        html = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or "json" in tag, f"inline script in {template}"
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler in {template}"


def test_forms_are_csrf_protected(alice, shop):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/apps/{shop.id}/keys", {"name": "no token"})
    assert response.status_code == 403
    page = client.get(f"/apps/{shop.id}/keys").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/apps/{shop.id}/keys", {"name": "with token", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 200
    assert "with token" in response.content.decode()


def test_the_login_form_needs_the_csrf_token_too(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login/", {"username": "alice", "password": "password"}).status_code == 403


def test_the_api_docs_load_swagger_ui_from_our_own_static_files(client):
    html = client.get("/api/v1/docs").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == [
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/recorder/api_docs.js",
    ]
    assert "cdn" not in html.lower()
    config = re.search(
        r'<script id="swagger-settings" type="application/json">(.*?)</script>', html, re.S
    )
    assert json.loads(config.group(1))["url"] == "/api/v1/openapi.json"
    for path in ["vendor/swagger-ui/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui.css",
                 "vendor/swagger-ui/LICENSE", "recorder/api_docs.js"]:  # fmt: skip
        assert finders.find(path), path


def _settings_with(env: dict) -> dict:
    code = (
        "import json, flightrec_site.settings as s; print(json.dumps({k: getattr(s, k, None) for k in "
        "['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
        "'SECURE_PROXY_SSL_HEADER', 'SECURE_SSL_REDIRECT', 'DEBUG']}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTREC_", "DJANGO_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**clean, "FLIGHTREC_DATA_DIR": str(settings.DATA_DIR), **env},
    )  # fmt: skip
    return json.loads(out.stdout)


def test_plain_http_keeps_cookies_usable_and_debug_off():
    s = _settings_with({})
    assert s["SESSION_COOKIE_SECURE"] is None or s["SESSION_COOKIE_SECURE"] is False
    assert not s["SECURE_HSTS_SECONDS"]
    assert s["DEBUG"] is False


@pytest.mark.parametrize(
    "env", [{"FLIGHTREC_HTTPS": "1"}, {"FLIGHTREC_PROXY_SSL_HEADER": "X-Forwarded-Proto"}]
)
def test_https_turns_on_secure_cookies_and_hsts(env):
    s = _settings_with(env)
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["CSRF_COOKIE_SECURE"] is True
    assert s["SECURE_HSTS_SECONDS"] >= 31_536_000
    if "FLIGHTREC_PROXY_SSL_HEADER" in env:
        assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_hsts_is_sent_on_https_requests_once_enabled(client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    assert "Strict-Transport-Security" not in client.get("/healthz")
    response = client.get("/healthz", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
