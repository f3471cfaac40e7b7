from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from recorder.api import api
from recorder.views.login import login_view

urlpatterns = [
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("login/", login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("recorder.urls")),
]
