"""Response headers Django's SecurityMiddleware does not send (Django 5.2 has no CSP).

SecurityMiddleware already sends X-Content-Type-Options, Referrer-Policy,
Cross-Origin-Opener-Policy and, over HTTPS, HSTS; XFrameOptionsMiddleware sends
X-Frame-Options. This adds the Content-Security-Policy (settings.FLIGHTREC_CSP).
"""

from django.conf import settings

# Browser features no page of ours uses: a script injected despite the CSP gets none.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.FLIGHTREC_CSP

    def __call__(self, request):
        response = self.get_response(request)
        # setdefault: a view that needs a narrower policy may set its own.
        response.headers.setdefault("Content-Security-Policy", self.policy)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
