"""An application's API keys: create (the key is shown once), list, revoke.

Members see the list; only the application's admins may create or revoke.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from recorder import app_settings
from recorder.access import is_app_admin, visible_application
from recorder.models import ApiKey


def _admin_application(request, app_id):
    application = visible_application(request.user, app_id)
    if not is_app_admin(request.user, application):
        raise PermissionDenied("only the application's admins may change its keys")
    return application


@never_cache  # the page that shows a new key must not be kept by the browser or a proxy
@login_required
def app_keys(request, app_id: int):
    application = visible_application(request.user, app_id)
    can_manage = is_app_admin(request.user, application)
    created = None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("only the application's admins may create keys")
        key, raw = app_settings.apikey_create(
            application=application,
            name=request.POST.get("name", ""),
            can_read=request.POST.get("can_read") == "on",
        )
        # Rendered in this response, not after a redirect: the raw key exists nowhere
        # else, and a reload must not show it again.
        created = {"key": key, "raw": raw}
    keys = ApiKey.objects.filter(application=application).order_by("revoked_at", "-created_at")
    return render(
        request,
        "recorder/app_keys.html",
        {
            "application": application,
            "can_manage": can_manage,
            "keys": keys,
            "created": created,
            "tab": "keys",
        },
    )


@require_POST
@login_required
def app_key_revoke(request, app_id: int, key_id: int):
    application = _admin_application(request, app_id)
    try:
        key = app_settings.apikey_revoke(application=application, key_id=key_id)
    except ApiKey.DoesNotExist:
        raise Http404("no such key in this application") from None
    messages.success(request, f"Key {key.prefix}… is revoked; requests with it now get 401.")
    return redirect("app_keys", app_id=application.id)
