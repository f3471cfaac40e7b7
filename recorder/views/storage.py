"""/storage: where the bytes are, growth, inbox, last purges, retention policies."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from recorder import retention, storage
from recorder.access import is_app_admin, visible_applications


@login_required
def storage_page(request):
    apps = visible_applications(request.user)
    samples = storage.growth()
    context = {
        "files": storage.database_files(),
        "used_bytes": storage.database_used_bytes(),
        "free_bytes": storage.free_disk_bytes(),
        "usage": storage.applications_usage(apps),
        "largest": storage.largest_sessions(apps),
        "chart": storage.growth_chart(samples),
        "inbox": storage.inbox_status(),
        "purges": storage.last_purges(),
        "policies": [
            (app, retention.policy_for(app), is_app_admin(request.user, app))
            for app in apps.order_by("name")
        ],
    }
    return render(request, "recorder/storage.html", context)
