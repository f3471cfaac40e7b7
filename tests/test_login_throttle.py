"""Failed log-ins lock out a (username, address) pair for a while, on every login path."""

from datetime import timedelta

import pytest
from django.utils import timezone

from recorder.login_throttle import login_lockout_remaining
from recorder.models import LoginFailure

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.FLIGHTREC_LOGIN_MAX_FAILURES = 3
    settings.FLIGHTREC_LOGIN_MAX_FAILURES_PER_IP = 10
    settings.FLIGHTREC_LOGIN_LOCKOUT_SECONDS = 600


def login(client, username, password, ip="10.0.0.1", path="/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_good_password_logs_in(client, alice):
    response = login(client, "alice", "password")
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_after_too_many_failures_even_the_right_password_is_refused(client, alice):
    for _ in range(3):
        assert login(client, "alice", "wrong").status_code == 200
    response = login(client, "alice", "password")
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert "10 minutes" in response.content.decode()
    assert client.get("/").status_code == 302  # not logged in


def test_the_lockout_is_per_username_and_address(client, alice, bob):
    for _ in range(3):
        login(client, "alice", "wrong")
    assert login(client, "bob", "password").status_code == 302  # another user, same address
    client.logout()
    assert login(client, "alice", "password", ip="10.0.0.2").status_code == 302


def test_usernames_are_counted_case_insensitively(client, alice):
    for name in ["alice", "ALICE", "Alice"]:
        login(client, name, "wrong")
    assert login(client, "alice", "password").status_code == 429


def test_the_lockout_ends_when_the_failures_leave_the_window(client, alice):
    for _ in range(3):
        login(client, "alice", "wrong")
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=601))
    assert login(client, "alice", "password").status_code == 302


def test_a_successful_login_clears_the_count(client, alice):
    for _ in range(2):
        login(client, "alice", "wrong")
    assert login(client, "alice", "password").status_code == 302
    client.logout()
    for _ in range(2):
        login(client, "alice", "wrong")
    assert login(client, "alice", "password").status_code == 302


def test_attempts_while_locked_are_not_stored(client, alice):
    for _ in range(3):
        login(client, "alice", "wrong")
    for _ in range(20):
        login(client, "alice", "wrong")
    assert LoginFailure.objects.count() == 3


def test_spraying_many_usernames_from_one_address_locks_the_address(client, alice):
    for i in range(10):
        login(client, f"user{i}", "guess")
    assert login(client, "alice", "password").status_code == 429
    assert login(client, "alice", "password", ip="10.0.0.9").status_code == 302


def test_the_admin_login_is_throttled_too(client, django_user_model):
    django_user_model.objects.create_superuser("root", password="password")
    for _ in range(3):
        login(client, "root", "wrong", path="/admin/login/")
    response = login(client, "root", "password", path="/admin/login/")
    assert response.status_code == 200  # the admin form re-displayed, no session
    assert "_auth_user_id" not in client.session
    assert login_lockout_remaining(username="root", ip="10.0.0.1") > 0


def test_x_forwarded_for_is_ignored_unless_trusted(client, alice, settings):
    for i in range(3):
        client.post("/login/", {"username": "alice", "password": "wrong"},
                    REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")  # fmt: skip
    assert login(client, "alice", "password").status_code == 429
    settings.FLIGHTREC_TRUST_X_FORWARDED_FOR = True
    r = client.post("/login/", {"username": "alice", "password": "password"},
                    REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="spoofed, 192.0.2.50")  # fmt: skip
    assert r.status_code == 302
    assert LoginFailure.objects.filter(ip="192.0.2.50").count() == 0
