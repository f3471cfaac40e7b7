"""Changes an application's admins make: API keys, members, redaction rules.

Plain functions called by the settings pages; who may call them is the views' business
(recorder.access.is_app_admin). Reads that pages show live in recorder.access.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from recorder import redaction
from recorder.models import ApiKey, Application, Membership


class SettingsError(ValueError):
    """A change that would leave the application in a bad state; the message says why."""


def apikey_create(
    *, application: Application, name: str = "", can_read: bool = False
) -> tuple[ApiKey, str]:
    """A new key; returns (ApiKey, raw key). The raw key is shown once and never stored."""
    return ApiKey.generate(application, name=name.strip()[:100], can_read=can_read)


def apikey_revoke(*, application: Application, key_id: int) -> ApiKey:
    """Revoke at once: every request looks the key up, so the next one gets 401."""
    key = ApiKey.objects.get(application=application, id=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def _other_admins(application: Application, user) -> bool:
    return (
        Membership.objects.filter(application=application, role=Membership.Role.ADMIN)
        .exclude(user=user)
        .exists()
    )


@transaction.atomic
def membership_set(*, application: Application, user: AbstractBaseUser, role: str) -> Membership:
    """Add a user to the application, or change their role."""
    if role not in Membership.Role.values:
        raise SettingsError(f"role must be one of {', '.join(Membership.Role.values)}")
    membership = Membership.objects.filter(application=application, user=user).first()
    if membership is None:
        return Membership.objects.create(application=application, user=user, role=role)
    if (
        membership.role == Membership.Role.ADMIN
        and role != Membership.Role.ADMIN
        and not _other_admins(application, user)
    ):
        raise SettingsError(f"{user.get_username()} is the last admin of {application.name}")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, application: Application, user: AbstractBaseUser) -> None:
    membership = Membership.objects.filter(application=application, user=user).first()
    if membership is None:
        return
    if membership.role == Membership.Role.ADMIN and not _other_admins(application, user):
        raise SettingsError(f"{user.get_username()} is the last admin of {application.name}")
    membership.delete()


def application_redaction_set(*, application: Application, policy: dict) -> dict:
    """Validate and store the per-application rules; raises ValueError if invalid.

    Stores the normalised policy (every field present), so what the page shows is
    exactly what ingestion applies. Ingestion compiles it on its next request.
    """
    compiled = redaction.compile_policy(policy)
    application.redaction = compiled.policy
    application.save(update_fields=["redaction"])
    return compiled.policy
