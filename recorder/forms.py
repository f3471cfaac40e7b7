"""Dashboard forms."""

from django import forms

from recorder.models import Application


class RetentionForm(forms.ModelForm):
    """Per-application overrides; an empty field means "use the global default"."""

    class Meta:
        model = Application
        fields = ["retention_days", "max_sessions", "max_events_per_session", "session_overflow"]
        labels = {
            "retention_days": "Keep sessions for (days)",
            "max_sessions": "Max sessions",
            "max_events_per_session": "Max events per session",
            "session_overflow": "When a session is full",
        }
        help_texts = {
            "retention_days": "Empty: global default. 0: keep forever.",
            "max_sessions": "Empty: global default. 0: no limit.",
            "max_events_per_session": "Empty: global default. 0: no limit.",
            "session_overflow": "Empty: global default.",
        }
