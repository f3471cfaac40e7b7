"""Template context shared by every dashboard page."""

from recorder import storage


def ingestion_status(request) -> dict:
    """Why ingestion is refused right now (low disk), for the banner in base.html.

    Only for logged-in pages: the login page and anonymous requests skip the disk check.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"ingestion_refusal": storage.ingestion_refusal()}
