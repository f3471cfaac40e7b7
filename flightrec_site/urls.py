from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from recorder.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("recorder.urls")),
]
