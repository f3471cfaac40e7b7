"""/api/v1/docs: Swagger UI from our vendored copy (static/vendor/swagger-ui/).

django-ninja loads Swagger UI from a CDN unless "ninja" is an installed app. A CDN is
neither reachable on an offline install nor allowed by our Content-Security-Policy
(script-src 'self'), so the page is rendered from our own template and files, with the
configuration passed as JSON data and read by a static init script.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja.openapi.docs import Swagger


class VendoredSwagger(Swagger):
    template = "recorder/api_docs.html"

    def render_page(self, request: HttpRequest, api, **kwargs) -> HttpResponse:
        config = {**self.settings, "url": self.get_openapi_url(api, kwargs)}
        return render(request, self.template, {"api": api, "swagger_settings": config})
