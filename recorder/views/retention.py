"""/storage/apps/<id>/retention: an application's retention overrides (admins only)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from recorder import retention
from recorder.access import is_app_admin, visible_applications
from recorder.forms import RetentionForm


@login_required
@require_http_methods(["GET", "POST"])
def retention_settings(request, app_id: int):
    app = get_object_or_404(visible_applications(request.user), id=app_id)
    if not is_app_admin(request.user, app):
        raise PermissionDenied("only administrators of this application may change retention")
    form = RetentionForm(request.POST or None, instance=app)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Retention settings of {app.name} saved.")
        return redirect("storage")
    return render(
        request,
        "recorder/retention_form.html",
        {"app": app, "form": form, "effective": retention.policy_for(app)},
    )
