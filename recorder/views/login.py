"""The login page, with the throttle's answer spelled out (recorder/login_throttle.py)."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView

from recorder.login_throttle import client_ip, login_lockout_remaining


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed log-ins. Try again in %(wait)s.",
    }
    throttled = False

    def clean(self):
        wait = login_lockout_remaining(
            username=self.cleaned_data.get("username"), ip=client_ip(self.request)
        )
        if wait:
            self.throttled = True
            minutes = (wait + 59) // 60
            raise forms.ValidationError(
                self.error_messages["throttled"],
                code="throttled",
                params={"wait": f"{minutes} minute{'s' if minutes != 1 else ''}"},
            )
        return super().clean()


class ThrottledLoginView(LoginView):
    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429
        return response


login_view = ThrottledLoginView.as_view()
