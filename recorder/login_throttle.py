"""Login throttling: too many failed log-ins for one username from one address lock
that pair out for a while; too many from one address (password spraying) lock the
address out.

Enforced in the authentication backend, so every log-in path is covered (our login
page, the admin's), and recorded from Django's user_login_failed / user_logged_in
signals. The login page asks `login_lockout_remaining` first to say why and for how long.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from recorder.models import LoginFailure

# Set on the request when the backend refused because of the throttle: such attempts
# are not counted again, so hammering a locked account does not grow the table.
THROTTLED_ATTR = "_flightrec_login_throttled"


def client_ip(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    if settings.FLIGHTREC_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The last entry is the one our own proxy appended; earlier ones are
            # whatever the client claimed.
            return forwarded.split(",")[-1].strip()[:45]
    return (request.META.get("REMOTE_ADDR") or "")[:45]


def _normal(username: str | None) -> str:
    return (username or "").strip().lower()[:150]


def login_lockout_remaining(*, username: str | None, ip: str, now=None) -> int:
    """Seconds until this username may try again from this address; 0 = not locked."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.FLIGHTREC_LOGIN_LOCKOUT_SECONDS)
    recent = LoginFailure.objects.filter(ip=ip, at__gt=now - window)
    waits = []
    pair = recent.filter(username=_normal(username)).order_by("-at")
    pair_times = list(pair.values_list("at", flat=True)[: settings.FLIGHTREC_LOGIN_MAX_FAILURES])
    if len(pair_times) >= settings.FLIGHTREC_LOGIN_MAX_FAILURES:
        # Locked until the oldest of the last N failures leaves the window.
        waits.append(pair_times[-1] + window - now)
    limit = settings.FLIGHTREC_LOGIN_MAX_FAILURES_PER_IP
    ip_times = list(recent.order_by("-at").values_list("at", flat=True)[:limit])
    if len(ip_times) >= limit:
        waits.append(ip_times[-1] + window - now)
    if not waits:
        return 0
    return max(1, int(max(waits).total_seconds() + 0.999))


def login_failure_record(*, username: str | None, ip: str) -> None:
    now = timezone.now()
    # Old rows are useless once out of the window; dropping them here keeps the
    # table at the size of the last window without a periodic task.
    window = timedelta(seconds=settings.FLIGHTREC_LOGIN_LOCKOUT_SECONDS)
    LoginFailure.objects.filter(at__lt=now - window).delete()
    LoginFailure.objects.create(username=_normal(username), ip=ip, at=now)


def login_failures_clear(*, username: str | None, ip: str) -> None:
    LoginFailure.objects.filter(username=_normal(username), ip=ip).delete()


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses, without checking the password, while locked out."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if request is not None and login_lockout_remaining(
            username=username, ip=client_ip(request)
        ):
            setattr(request, THROTTLED_ATTR, True)
            # PermissionDenied stops Django from asking any other backend.
            raise PermissionDenied("too many failed log-ins")
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


@receiver(user_login_failed)
def _on_login_failed(sender, credentials, request=None, **kwargs):
    if request is None or getattr(request, THROTTLED_ATTR, False):
        return
    from django.contrib.auth import get_user_model

    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username")
    login_failure_record(username=username, ip=client_ip(request))


@receiver(user_logged_in)
def _on_logged_in(sender, request, user, **kwargs):
    if request is not None:
        login_failures_clear(username=user.get_username(), ip=client_ip(request))
