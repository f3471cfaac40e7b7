"""Applications the user belongs to, with their role and links to each one's settings."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from recorder.access import visible_applications
from recorder.models import Membership


@login_required
def applications_list(request):
    roles = dict(Membership.objects.filter(user=request.user).values_list("application_id", "role"))
    apps = []
    for app in visible_applications(request.user).order_by("name"):
        role = roles.get(app.id) or ("admin" if request.user.is_superuser else "")
        apps.append({"app": app, "role": role})
    return render(request, "recorder/applications.html", {"apps": apps})
