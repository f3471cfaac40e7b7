"""An application's redaction rules, with a live preview of what a sample event becomes.

The defaults (recorder/redaction.py) always apply; this page edits what is added on top.
Members see the rules and may preview; only admins may save.
"""

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from recorder import app_settings, redaction
from recorder.access import is_app_admin, visible_application

SAMPLE_EVENT = {
    "session": "checkout-42",
    "type": "http",
    "message": "POST /v1/pay?token=7f3a9c2e from 203.0.113.7 for jane.doe@example.com",
    "payload": {
        "method": "POST",
        "url": "https://jane:hunter2@api.example.com/v1/pay?X-Amz-Signature=3f9c0b&page=2",
        "status": 201,
        "client_ip": "203.0.113.7",
        "request": {
            "headers": {
                "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",
                "Cookie": "sessionid=9f8e7d6c5b4a",
                "Content-Type": "application/json",
            },
            "body": {"card": "4111 1111 1111 1111", "password": "hunter2", "amount": 42},
        },
        "customer": {"email": "jane.doe@example.com", "plan": "pro"},
    },
}

LIST_FIELDS = ("extra_keys", "patterns", "keep_keys")


def _lines(text: str, *, strip: bool) -> list[str]:
    lines = (line.rstrip("\r") for line in text.split("\n"))
    return [line.strip() if strip else line for line in lines if line.strip()]


class RedactionForm(forms.Form):
    """The policy fields of recorder.redaction, one text line per list item."""

    extra_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="More key names whose values are replaced, one per line (e.g. ssn, pin).",
    )
    patterns = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="Regular expressions, one per line; every match in any text is replaced.",
    )
    keep_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Key names never replaced by a key rule (e.g. auth_method).",
    )
    capture_bodies = forms.BooleanField(
        required=False,
        label="Keep HTTP request/response bodies",
        help_text="Off by default: bodies of http events are dropped.",
    )
    body_limit = forms.IntegerField(
        min_value=0,
        max_value=10 * 1024 * 1024,
        label="Body size cap (bytes)",
        help_text="Kept bodies are cut to this size.",
    )
    mask_emails = forms.BooleanField(
        required=False,
        label="Mask e-mail addresses",
        help_text="jane@example.com → j***@example.com",
    )
    mask_ips = forms.BooleanField(
        required=False,
        label="Mask IP addresses",
        help_text="IPv4 keeps /24 (203.0.113.0), IPv6 keeps /48.",
    )

    @classmethod
    def from_policy(cls, policy: dict) -> "RedactionForm":
        full = redaction.compile_policy(policy or {}).policy
        initial = {k: "\n".join(v) if k in LIST_FIELDS else v for k, v in full.items()}
        return cls(initial=initial)

    def _clean_field(self, name: str, value):
        # Each field is checked alone so the message lands next to the field it is about.
        try:
            redaction.compile_policy({name: value})
        except ValueError as exc:
            raise forms.ValidationError(str(exc).replace("redaction policy ", "")) from None
        return value

    def clean_extra_keys(self):
        return self._clean_field("extra_keys", _lines(self.cleaned_data["extra_keys"], strip=True))

    def clean_patterns(self):
        return self._clean_field("patterns", _lines(self.cleaned_data["patterns"], strip=False))

    def clean_keep_keys(self):
        return self._clean_field("keep_keys", _lines(self.cleaned_data["keep_keys"], strip=True))

    def policy(self) -> dict:
        return {name: self.cleaned_data[name] for name in redaction.DEFAULT_POLICY}


@login_required
def app_redaction(request, app_id: int):
    application = visible_application(request.user, app_id)
    can_manage = is_app_admin(request.user, application)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("only the application's admins may change redaction rules")
        form = RedactionForm(request.POST)
        if form.is_valid():
            app_settings.application_redaction_set(application=application, policy=form.policy())
            messages.success(request, "Redaction rules saved; they apply to the next event.")
            return redirect("app_redaction", app_id=application.id)
    else:
        form = RedactionForm.from_policy(application.redaction)
    return render(
        request,
        "recorder/app_redaction.html",
        {
            "application": application,
            "can_manage": can_manage,
            "form": form,
            "sample": json.dumps(SAMPLE_EVENT, indent=2),
            "tab": "redaction",
        },
    )


@require_POST
@login_required
def app_redaction_preview(request, app_id: int):
    """What the posted (unsaved) rules would make of the posted sample event.

    Answers {"event", "scrubbed"} or 400 with {"errors": {field: [message, ...]}}.
    """
    visible_application(request.user, app_id)  # members only; nothing is stored
    form = RedactionForm(request.POST)
    errors = {} if form.is_valid() else {k: list(v) for k, v in form.errors.items()}
    try:
        sample = json.loads(request.POST.get("sample", ""))
        if not isinstance(sample, dict):
            raise ValueError("the sample event must be a JSON object")
    except ValueError as exc:
        errors["sample"] = [f"not a JSON object: {exc}"]
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    try:
        result = redaction.preview(sample, form.policy())
    except ValueError as exc:  # the fields passed alone but not together
        return JsonResponse({"errors": {"__all__": [str(exc)]}}, status=400)
    return JsonResponse(result)
