"""An application's members and their roles (admin / viewer).

Members see the list; only the application's admins may add, remove or change roles.
An application always keeps at least one admin.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from recorder import app_settings
from recorder.access import is_app_admin, visible_application
from recorder.models import Membership


@login_required
def app_members(request, app_id: int):
    application = visible_application(request.user, app_id)
    members = (
        Membership.objects.filter(application=application)
        .select_related("user")
        .order_by("user__username")
    )
    return render(
        request,
        "recorder/app_members.html",
        {
            "application": application,
            "can_manage": is_app_admin(request.user, application),
            "members": members,
            "roles": Membership.Role.choices,
            "tab": "members",
        },
    )


@require_POST
@login_required
def app_member_set(request, app_id: int):
    """Add a member by username, or change a member's role."""
    application = visible_application(request.user, app_id)
    if not is_app_admin(request.user, application):
        raise PermissionDenied("only the application's admins may change its members")
    username = request.POST.get("username", "").strip()
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        messages.error(request, f"There is no user named {username!r}.")
        return redirect("app_members", app_id=application.id)
    try:
        app_settings.membership_set(
            application=application, user=user, role=request.POST.get("role", "")
        )
    except app_settings.SettingsError as exc:
        messages.error(request, f"Not changed: {exc}.")
    else:
        messages.success(request, f"{user.username} is now {request.POST['role']}.")
    return redirect("app_members", app_id=application.id)


@require_POST
@login_required
def app_member_remove(request, app_id: int, user_id: int):
    application = visible_application(request.user, app_id)
    if not is_app_admin(request.user, application):
        raise PermissionDenied("only the application's admins may change its members")
    user = get_user_model().objects.filter(id=user_id).first()
    if user is not None:
        try:
            app_settings.membership_remove(application=application, user=user)
        except app_settings.SettingsError as exc:
            messages.error(request, f"Not removed: {exc}.")
        else:
            messages.success(request, f"{user.username} no longer has access.")
    return redirect("app_members", app_id=application.id)
