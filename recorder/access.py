"""Who may see what. Every read goes through these, so a user never sees another
application's data by any path (lists, search, exports, snapshots, replay)."""

from django.db.models import QuerySet

from recorder.models import ApiKey, Application, Event, Membership, Session


def visible_applications(principal) -> QuerySet[Application]:
    """Applications a user (by membership; superusers: all) or a read-scoped API key sees."""
    if isinstance(principal, ApiKey):
        return Application.objects.filter(id=principal.application_id)
    if principal is None or not principal.is_authenticated:
        return Application.objects.none()
    if principal.is_superuser:
        return Application.objects.all()
    return Application.objects.filter(membership__user=principal)


def visible_sessions(principal) -> QuerySet[Session]:
    return Session.objects.filter(application__in=visible_applications(principal))


def visible_events(principal) -> QuerySet[Event]:
    return Event.objects.filter(application__in=visible_applications(principal))


def is_app_admin(user, application: Application) -> bool:
    if user.is_superuser:
        return True
    return Membership.objects.filter(
        user=user, application=application, role=Membership.Role.ADMIN
    ).exists()


def visible_application(principal, application_id: int) -> Application:
    """One application the principal may see, else 404: a non-member learns nothing,
    not even that the application exists."""
    from django.shortcuts import get_object_or_404

    return get_object_or_404(visible_applications(principal), id=application_id)
